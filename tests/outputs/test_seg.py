"""The Segmentation of the lungs and the Brixia regions, read back with highdicom."""

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pydicom.uid import UID

from dicom_node.outputs.overlay import PALETTE
from dicom_node.outputs.seg import SEG_SERIES_NUMBER
from dicom_node.outputs.sr import LATERALITY_CODES, ZONE_CODES, region_tracking_identifier
from inference import UNTRAINED_WARNING
from inference.regions import REGIONS
from tests.outputs.conftest import LONG_VALUE_WARNING, NAMES

pytestmark = pytest.mark.filterwarnings(f"ignore:{LONG_VALUE_WARNING}:UserWarning")


def _modifier(description: hd.seg.SegmentDescription) -> hd.sr.CodedConcept:
    (type_item,) = description.SegmentedPropertyTypeCodeSequence
    (modifier,) = type_item.SegmentedPropertyTypeModifierCodeSequence
    return hd.sr.CodedConcept.from_dataset(modifier)


@pytest.mark.parametrize("name", NAMES)
def test_seg_codes_the_lungs_and_the_six_regions(name: str, built) -> None:
    data = built(name)
    result = data.result
    seg = hd.seg.segread(data.files["seg"])
    assert (seg.Modality, seg.Manufacturer, seg.SeriesNumber) == (
        "SEG",
        "dicom-node",
        SEG_SERIES_NUMBER,
    )
    assert seg.SegmentationType == "BINARY"
    assert seg.SeriesDescription == f"{UNTRAINED_WARNING} - BS-Net Brixia regions"
    assert seg.number_of_segments == 1 + len(REGIONS)
    lungs = seg.get_segment_description(1)
    assert lungs.segment_label == "Lungs"
    assert lungs.segmented_property_category == codes.SCT.AnatomicalStructure
    assert lungs.segmented_property_type == codes.SCT.Lung
    assert _modifier(lungs) == codes.SCT.Bilateral
    sr = hd.sr.srread(data.files["sr"])
    tracking = {
        group.tracking_identifier: group.tracking_uid
        for group in sr.content.get_planar_roi_measurement_groups()
    }
    for number, region in enumerate(REGIONS, start=2):
        description = seg.get_segment_description(number)
        score = result.region_scores[region.name]
        assert description.segment_label == (
            f"Brixia {region.name} ({region.lung} {region.zone}) score {score}"
        )
        assert description.segmented_property_category == codes.SCT.AnatomicalStructure
        assert description.segmented_property_type == ZONE_CODES[region.zone]
        assert _modifier(description) == LATERALITY_CODES[region.lung]
        assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        (algorithm,) = description.algorithm_identification
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == (
            result.model.name,
            result.model.version,
        )
        assert description.tracking_id == region_tracking_identifier(region)
        assert description.tracking_uid == tracking[description.tracking_id]  # same as the SR
        colour = hd.color.CIELabColor.from_dicom_value(description.RecommendedDisplayCIELabValue)
        assert np.allclose(colour.to_rgb(), PALETTE[score], atol=2)


@pytest.mark.parametrize("name", NAMES)
def test_seg_masks_are_the_regions_in_the_source_pixel_grid(name: str, built) -> None:
    data = built(name)
    source, result = data.source, data.result
    seg = hd.seg.segread(data.files["seg"])
    assert seg.get_source_image_uids() == [
        (source.StudyInstanceUID, source.SeriesInstanceUID, source.SOPInstanceUID)
    ]
    (pixels,) = seg.get_pixels_by_source_instance(source_sop_instance_uids=[source.SOPInstanceUID])
    assert pixels.shape == (source.Rows, source.Columns, 1 + len(REGIONS))
    labels = result.to_source(result.region_map, labels=True)
    lungs = result.to_source(result.lung_mask, labels=True) > 0
    assert np.array_equal(pixels[..., 0] > 0, lungs)
    for index in range(1, len(REGIONS) + 1):
        assert np.array_equal(pixels[..., index] > 0, labels == index), REGIONS[index - 1].name
        assert pixels[..., index].any()


# Spacing each source states (Philips: "0.000\\0.000", none usable; Fuji: none at all).
EXPECTED_SPACING = {
    "cr_mono1_explicit_fuji_small.dcm": [1.0, 1.0],
    "cr_mono1_j2k_lossy_philips.dcm": [1.0, 1.0],
    "dx_mono1_j2k_lossless_canon.dcm": [0.16, 0.16],
    "sc_cr_jpeg_baseline_siim.dcm": [0.168, 0.168],
}


@pytest.mark.parametrize("name", NAMES)
def test_seg_is_placed_on_the_radiograph_as_viewers_need(name: str, built) -> None:
    """Pixel Measures and Plane Orientation shared, a Plane Position per frame, in the SEG's own
    Frame of Reference where the radiograph is the plane z = 0 (OHIF reads the shared groups)."""
    data = built(name)
    source = data.source
    seg = pydicom.dcmread(data.files["seg"])
    assert (seg.Rows, seg.Columns) == (source.Rows, source.Columns)
    assert "FrameOfReferenceUID" not in source and UID(seg.FrameOfReferenceUID).is_valid
    assert (seg.get("PatientOrientation") or "") == (source.get("PatientOrientation") or "")
    (shared,) = seg.SharedFunctionalGroupsSequence
    (measures,) = shared.PixelMeasuresSequence
    assert [float(value) for value in measures.PixelSpacing] == pytest.approx(EXPECTED_SPACING[name])
    assert float(measures.SliceThickness) > 0
    assert [float(value) for value in shared.PlaneOrientationSequence[0].ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    for frame in seg.PerFrameFunctionalGroupsSequence:
        assert [float(value) for value in frame.PlanePositionSequence[0].ImagePositionPatient] == [0, 0, 0]
    read_back = hd.seg.segread(data.files["seg"])  # highdicom reads the geometry back
    assert read_back.number_of_segments == 1 + len(REGIONS)
