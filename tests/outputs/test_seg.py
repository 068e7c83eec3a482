"""The Segmentation of the lungs and the Brixia regions, read back with highdicom."""

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from dicom_node.outputs.overlay import PALETTE
from dicom_node.outputs.seg import SEG_SERIES_NUMBER
from dicom_node.outputs.sr import LATERALITY_CODES, ZONE_CODES
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
            result.model_name,
            result.model_version,
        )
        assert description.tracking_id == f"Brixia region {region.name}"
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


@pytest.mark.parametrize("name", NAMES)
def test_seg_keeps_the_source_geometry(name: str, built) -> None:
    data = built(name)
    source = data.source
    seg = pydicom.dcmread(data.files["seg"])
    assert (seg.Rows, seg.Columns) == (source.Rows, source.Columns)
    assert "FrameOfReferenceUID" not in seg  # a projection radiograph has none
    assert (seg.get("PatientOrientation") or "") == (source.get("PatientOrientation") or "")
    # No Pixel Measures: the grid is the source's (and a source's spacing may be invalid, like the
    # Philips image's "0.000\\0.000").
    assert "PixelMeasuresSequence" not in seg.SharedFunctionalGroupsSequence[0]
