"""The node's DICOM outputs built from real radiographs: identity, UIDs, the SR and the overlay,
checked with highdicom, dicom3tools' dciodvfy and dcmtk's dsr2html."""

import copy
import dataclasses
import re
import subprocess
from collections.abc import Iterator

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import (
    UID,
    Comprehensive3DSRStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)

from dicom_node.outputs import (
    DEFAULT_OUTPUT_KINDS,
    OUTPUT_KINDS,
    OutputSource,
    build_outputs,
    build_overlay,
    build_sr,
)
from dicom_node.outputs.common import IDENTITY_KEYWORDS, RESEARCH_ONLY, reference_header, valid_for_vr
from dicom_node.outputs.overlay import FILL_ALPHA, PALETTE, render_overlay
from dicom_node.outputs.sr import (
    BRIXIA_GLOBAL_SCORE,
    BRIXIA_PROBABILITIES,
    BRIXIA_REGION_SCORE,
    LATERALITY_CODES,
    OHIF_FREEHAND_ROI,
    ZONE_CODES,
    region_tracking_identifier,
)
from dicom_node.uids import derived_uid
from inference import UNTRAINED_WARNING, BrixiaResult, ModelIdentity
from inference.geometry import FrameMapping
from inference.preprocessing import display_copy, display_image_from_dataset
from inference.regions import REGIONS
from tests.conftest import require_tool
from tests.outputs.conftest import (
    LONG_VALUE_WARNING,
    NAMES,
    dciodvfy_errors,
)

pytestmark = pytest.mark.filterwarnings(f"ignore:{LONG_VALUE_WARNING}:UserWarning")
SAMPLE = "cr_mono1_explicit_fuji_small.dcm"



def _with_model(result: BrixiaResult, **changes: object) -> BrixiaResult:
    """``result`` as if another model (version, weights, untrained flag) had produced it."""
    return dataclasses.replace(result, model=dataclasses.replace(result.model, **changes))

def _content_items(items: pydicom.Sequence) -> Iterator[Dataset]:
    for item in items:
        yield item
        yield from _content_items(item.get("ContentSequence", []))


def _texts(sr: Dataset) -> list[str]:
    return [item.TextValue for item in _content_items(sr.ContentSequence) if "TextValue" in item]


# --- UIDs -----------------------------------------------------------------------------------


def test_derived_uid_is_deterministic_valid_and_unambiguous() -> None:
    uid = derived_uid("1.2.3", "BS-Net", "1.0.0", "sr")
    assert uid == derived_uid("1.2.3", "BS-Net", "1.0.0", "sr")
    assert uid.startswith("2.25.") and UID(uid).is_valid and len(uid) <= 64
    assert uid != derived_uid("1.2.3", "BS-Net", "1.0.1", "sr")
    assert derived_uid("ab", "c") != derived_uid("a", "bc")
    with pytest.raises(ValueError):
        derived_uid()


@pytest.mark.parametrize("name", NAMES)
def test_output_uids_are_distinct_and_model_specific(name: str, built) -> None:
    data = built(name)
    source, result, sr = data.source, data.result, data.outputs["sr"]
    uids = {source.SOPInstanceUID, source.SeriesInstanceUID}
    for output in data.outputs.values():
        uids |= {output.SOPInstanceUID, output.SeriesInstanceUID}
    assert len(uids) == 2 + 2 * len(OUTPUT_KINDS)
    other_version = build_sr(OutputSource.of(source), _with_model(result, version="9.9.9"))
    assert other_version.SOPInstanceUID != sr.SOPInstanceUID
    assert other_version.SeriesInstanceUID != sr.SeriesInstanceUID
    other_weights = build_sr(OutputSource.of(source), _with_model(result, weights_sha256="0" * 64))
    assert other_weights.SOPInstanceUID != sr.SOPInstanceUID
    # Another radiograph of the same study: a new instance in the same output series.
    sibling = copy.deepcopy(source)
    sibling.SOPInstanceUID = "1.2.3.4"
    sibling_sr = build_sr(OutputSource.of(sibling), result)
    assert sibling_sr.SeriesInstanceUID == sr.SeriesInstanceUID
    assert sibling_sr.SOPInstanceUID != sr.SOPInstanceUID


def test_output_uids_are_deterministic(built) -> None:
    data = built(SAMPLE)
    again = build_outputs(data.source, data.result)
    assert [output.SOPInstanceUID for output in again] == [
        output.SOPInstanceUID for output in data.outputs.values()
    ]
    assert [output.SeriesInstanceUID for output in again] == [
        output.SeriesInstanceUID for output in data.outputs.values()
    ]


# --- Every output ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", OUTPUT_KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_outputs_pass_dciodvfy(name: str, kind: str, built) -> None:
    data = built(name)
    assert dciodvfy_errors(data.files[kind], data.source) == []


@pytest.mark.parametrize("name", NAMES)
def test_outputs_copy_patient_and_study(name: str, built) -> None:
    data = built(name)
    source = data.source
    for kind in OUTPUT_KINDS:
        output = pydicom.dcmread(data.files[kind])
        assert output.StudyInstanceUID == source.StudyInstanceUID
        for keyword in (
            "SpecificCharacterSet",
            "PatientName",
            "PatientID",
            "AccessionNumber",
            "StudyID",
            "PatientBirthDate",
            "StudyDate",
            "StudyTime",
        ):
            if keyword not in source:
                continue
            if keyword in IDENTITY_KEYWORDS or valid_for_vr(source[keyword]):
                assert output[keyword].value == source[keyword].value, (kind, keyword)
            else:  # broken in the source and not needed to file the output: left empty
                assert not output[keyword].value, (kind, keyword)
        assert ("SpecificCharacterSet" in output) == ("SpecificCharacterSet" in source)
        assert output.Manufacturer == "dicom-node"
        assert output.ContentQualification == "RESEARCH"
        assert output.SoftwareVersions == data.result.model.version
        assert UNTRAINED_WARNING in output.SeriesDescription  # the test model is untrained


@pytest.mark.parametrize("name", NAMES)
def test_outputs_name_the_model_as_contributing_equipment(name: str, built) -> None:
    """PS3.3 C.7.5.1: the model is processing equipment of every output, beside the source's
    acquisition equipment; its serial number is the weights' checksum."""
    data = built(name)
    model = data.result.model
    for kind in OUTPUT_KINDS:
        output = pydicom.dcmread(data.files[kind])
        items = [item for item in output.ContributingEquipmentSequence if item.Manufacturer == "dicom-node"]
        assert len(items) == 1, kind
        (item,) = items
        assert item.PurposeOfReferenceCodeSequence[0].CodeValue == "109102"
        assert (item.ManufacturerModelName, item.SoftwareVersions) == (model.name, model.version)
        assert item.DeviceSerialNumber == model.weights_sha256
        assert UNTRAINED_WARNING in item.ContributionDescription and RESEARCH_ONLY in item.ContributionDescription


@pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")
def test_reference_header_keeps_identity_and_empties_broken_values() -> None:
    source = Dataset()
    source.AccessionNumber = "x" * 40  # too long for SH, but the RIS files by it: kept
    source.PatientAge = "62"  # not a valid AS: emptied
    source.PatientSex = "MALE"  # not M/F/O: emptied
    source.PatientBirthDate = "1940.03.05"  # ACR-NEMA style, not a DA: emptied
    source.StudyDate = "20040826"
    header = reference_header(source)
    assert header.AccessionNumber == "x" * 40
    assert header.PatientAge in (None, "") and header.PatientSex in (None, "")
    assert header.PatientBirthDate in (None, "")
    assert header.StudyDate == "20040826"
    assert "PatientID" in header and not header.PatientID  # Type 2: present, empty


@pytest.mark.parametrize("name", NAMES)
def test_build_outputs_gives_every_kind_in_its_own_series(name: str, built) -> None:
    outputs = built(name).outputs
    assert tuple(outputs) == OUTPUT_KINDS == DEFAULT_OUTPUT_KINDS
    assert OUTPUT_KINDS == ("sr", "overlay", "explainability", "seg")
    classes = {kind: (output.SOPClassUID, output.Modality) for kind, output in outputs.items()}
    assert classes == {
        "sr": (Comprehensive3DSRStorage, "SR"),
        "overlay": (SecondaryCaptureImageStorage, "OT"),
        "explainability": (SecondaryCaptureImageStorage, "OT"),
        "seg": (SegmentationStorage, "SEG"),
    }
    assert len({output.SeriesNumber for output in outputs.values()}) == len(OUTPUT_KINDS)


def test_build_outputs_builds_the_chosen_kinds(built) -> None:
    data = built(SAMPLE)
    chosen = build_outputs(data.source, data.result, ["seg", "sr"])
    assert [output.Modality for output in chosen] == ["SR", "SEG"]  # in OUTPUT_KINDS order
    assert chosen[1].SOPInstanceUID == data.outputs["seg"].SOPInstanceUID
    assert build_outputs(data.source, data.result, []) == []
    with pytest.raises(ValueError, match="pdf"):
        build_outputs(data.source, data.result, ["sr", "pdf"])


# --- SR -------------------------------------------------------------------------------------


def _region_groups(sr: hd.sr.Comprehensive3DSR) -> dict[str, object]:
    """Tracking identifier -> measurement group, planar ROI (TID 1410) or not (TID 1501)."""
    groups = [
        *sr.content.get_planar_roi_measurement_groups(),
        *sr.content.get_image_measurement_groups(),
    ]
    return {group.tracking_identifier: group for group in groups}


@pytest.mark.parametrize("name", NAMES)
def test_sr_holds_region_scores_probabilities_and_global_score(name: str, built) -> None:
    data = built(name)
    source, result = data.source, data.result
    sr = hd.sr.srread(data.files["sr"])
    by_region = _region_groups(sr)
    assert sorted(by_region) == [f"{OHIF_FREEHAND_ROI}:Brixia region {region.name}" for region in REGIONS]
    assert not sr.content.get_image_measurement_groups()  # every region has pixels: TID 1410
    values = {}
    for region in REGIONS:
        group = by_region[region_tracking_identifier(region)]
        (measurement,) = group.get_measurements(name=BRIXIA_REGION_SCORE)
        values[region.name] = measurement.value
        assert measurement.unit.value == "{0-3}"
        shown = []
        for code in BRIXIA_PROBABILITIES:
            (probability,) = group.get_measurements(name=code)
            assert probability.unit.value == "%"
            shown.append(probability.value)
        assert np.allclose(shown, 100 * np.array(result.probabilities[region.name]), atol=0.051)
        (site,) = group.finding_sites
        assert site.value == ZONE_CODES[region.zone]
        assert site.laterality == LATERALITY_CODES[region.lung]
        (image,) = group.roi.ContentSequence  # SELECTED FROM the radiograph
        assert image.referenced_sop_instance_uid == source.SOPInstanceUID
        assert UID(group.tracking_uid).is_valid
    assert values == {name: float(score) for name, score in result.region_scores.items()}
    assert len({group.tracking_uid for group in by_region.values()}) == len(REGIONS)
    globals_ = [
        item
        for item in _content_items(sr.ContentSequence)
        if item.ValueType == "NUM"
        and item.ConceptNameCodeSequence[0].CodeValue == BRIXIA_GLOBAL_SCORE.value
    ]
    (global_score,) = globals_
    total = float(global_score.MeasuredValueSequence[0].NumericValue)
    assert total == result.global_score == sum(values.values())
    evidence = sr.get_evidence()
    assert (
        source.StudyInstanceUID,
        source.SeriesInstanceUID,
        source.SOPInstanceUID,
        source.SOPClassUID,
    ) in evidence


@pytest.mark.parametrize("name", NAMES)
def test_sr_outlines_each_region_on_the_radiograph(name: str, built) -> None:
    data = built(name)
    source, result = data.source, data.result
    by_region = _region_groups(hd.sr.srread(data.files["sr"]))
    labels = result.to_source(result.region_map, labels=True)
    assert labels.shape == (source.Rows, source.Columns)
    for index, region in enumerate(REGIONS, start=1):
        roi = by_region[region_tracking_identifier(region)].roi
        assert roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
        points = roi.value  # (column, row), PS3.3 C.18.6.1.2
        assert len(points) >= 4 and np.array_equal(points[0], points[-1])  # closed
        assert points.min() >= 0
        assert points[:, 0].max() <= source.Columns and points[:, 1].max() <= source.Rows
        rows, cols = np.nonzero(labels == index)
        pixel_box = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)  # pixel edges
        polygon_box = (*points.min(axis=0), *points.max(axis=0))
        assert np.allclose(polygon_box, pixel_box, atol=2), (region.name, polygon_box, pixel_box)


def test_sr_region_without_pixels_has_a_group_without_outline(built) -> None:
    data = built(SAMPLE)
    lungs = data.result.lung_mask & (data.result.region_map != 6)  # the model found no lung in region F
    without_f = dataclasses.replace(data.result, lung_mask=lungs)
    assert 6 not in without_f.region_map
    built_sr = build_sr(OutputSource.of(data.source), without_f)
    sr = hd.sr.Comprehensive3DSR.from_dataset(built_sr)
    assert len(sr.content.get_planar_roi_measurement_groups()) == 5
    (group,) = sr.content.get_image_measurement_groups()
    assert group.tracking_identifier == region_tracking_identifier(REGIONS[5])
    (image,) = group.source_images
    assert image.referenced_sop_instance_uid == data.source.SOPInstanceUID
    assert group.get_measurements(name=BRIXIA_REGION_SCORE)


@pytest.mark.parametrize("name", NAMES)
def test_sr_names_the_model_and_warns(name: str, built) -> None:
    data = built(name)
    result, sr = data.result, hd.sr.srread(data.files["sr"])
    (observer,) = sr.content.get_observer_contexts(observer_type=codes.DCM.Device)
    device = observer.observer_identifying_attributes
    assert (device.name, device.manufacturer_name) == ("BS-Net", "dicom-node")
    assert device.model_name == result.model.version
    assert device.serial_number == result.model.weights_sha256
    texts = _texts(sr)
    assert any(f"weights sha256 {result.model.weights_sha256}" in text for text in texts)
    assert any(f"weights source: {result.model.weights_source}" in text for text in texts)
    assert RESEARCH_ONLY in texts
    assert result.model.untrained  # the test model is untrained: the warning must show
    assert UNTRAINED_WARNING in texts and UNTRAINED_WARNING in sr.SeriesDescription
    assert sr.SoftwareVersions == result.model.version


@pytest.mark.parametrize("name", NAMES)
def test_sr_of_trained_model_has_no_untrained_warning(name: str, built) -> None:
    data = built(name)
    trained = _with_model(data.result, untrained=False)
    sr = build_sr(OutputSource.of(data.source), trained)
    texts = _texts(sr)
    assert RESEARCH_ONLY in texts
    assert not any(UNTRAINED_WARNING in text for text in texts)
    assert UNTRAINED_WARNING not in sr.SeriesDescription
    assert "research use only" in sr.SeriesDescription


@pytest.mark.parametrize("name", NAMES)
def test_sr_renders_scores_with_dsr2html(name: str, built) -> None:
    data = built(name)
    result = data.result
    run = subprocess.run(
        [require_tool("dsr2html"), str(data.files["sr"])],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", run.stdout))
    shown = [float(value) for value in re.findall(r"(\d+(?:\.\d+)?) \{0-3\}", text)]  # the groups, A to F
    assert shown == [result.region_scores[region.name] for region in REGIONS]
    for region in REGIONS:
        score = result.region_scores[region.name]
        assert f"Brixia {region.name} ({region.lung} {region.zone}): score {score} of 3" in text
    regions = ", ".join(f"{name} {score}" for name, score in result.region_scores.items())
    assert f"Brixia score {result.global_score}/18 ({regions})" in text
    for region in REGIONS:
        p0 = 100 * result.probabilities[region.name][0]
        line = (
            f"Region {region.name} ({region.lung} lung, {region.zone} zone): score "
            f"{result.region_scores[region.name]}/3; probability of score 0 {p0:.1f} %"
        )
        assert line in text
    assert RESEARCH_ONLY in text and UNTRAINED_WARNING in text


# --- Overlay --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_overlay_is_an_rgb_burned_in_copy_of_the_radiograph(name: str, built) -> None:
    data = built(name)
    source, result = data.source, data.result
    overlay = pydicom.dcmread(data.files["overlay"])
    assert overlay.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert (overlay.PhotometricInterpretation, overlay.SamplesPerPixel) == ("RGB", 3)
    assert overlay.BitsAllocated == 8 and overlay.BurnedInAnnotation == "YES"
    assert overlay.Modality == "OT" and overlay.Manufacturer == "dicom-node"
    assert max(overlay.Rows, overlay.Columns) <= 1024
    source_aspect = source.Columns / source.Rows
    assert abs(overlay.Columns / overlay.Rows - source_aspect) / source_aspect < 0.01
    assert overlay.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert UNTRAINED_WARNING in overlay.SeriesDescription
    assert (overlay.get("PatientOrientation") or "") == (source.get("PatientOrientation") or "")
    if source.get("LossyImageCompression") == "01":  # once lossy, always marked lossy
        assert overlay.LossyImageCompression == "01" and overlay.LossyImageCompressionMethod
    else:
        assert "LossyImageCompression" not in overlay
    # The overlay is the display image, same orientation, tinted per region: away from the text
    # panels (top and bottom), labels and outlines its pixels are exactly the tinted display
    # image, and not the tinted mirror or upside-down image.
    pixels = overlay.pixel_array.astype(np.float64)
    display = display_copy(display_image_from_dataset(source)).astype(np.float64)
    labels = result.mapping.for_shape(display.shape).map_to_source(result.region_map, labels=True)
    middle = np.zeros(display.shape, dtype=bool)
    middle[display.shape[0] // 4 : 3 * display.shape[0] // 4] = True

    def matching(reference: np.ndarray) -> float:
        fractions = []
        for index, region in enumerate(REGIONS, start=1):
            mask = middle & (labels == index)
            if mask.sum() > 100:
                colour = np.array(PALETTE[result.region_scores[region.name]])
                expected = np.round(
                    (1 - FILL_ALPHA) * reference[mask][:, None] + FILL_ALPHA * colour
                )
                fractions.append(np.mean(np.all(np.abs(pixels[mask] - expected) <= 1, axis=1)))
        return min(fractions)

    assert matching(display) > 0.9
    assert matching(np.fliplr(display)) < 0.5 and matching(np.flipud(display)) < 0.5


@pytest.mark.parametrize("name", NAMES)
def test_overlay_untrained_warning_is_burned_in_only_when_untrained(name: str, built) -> None:
    data = built(name)
    source, result = data.source, data.result
    trained = build_overlay(OutputSource.of(source), _with_model(result, untrained=False))
    assert UNTRAINED_WARNING not in trained.SeriesDescription
    untrained_pixels = data.outputs["overlay"].pixel_array
    trained_pixels = trained.pixel_array
    band = untrained_pixels.shape[0] // 5
    assert not np.array_equal(untrained_pixels[:band], trained_pixels[:band])
    assert np.array_equal(untrained_pixels[2 * band :], trained_pixels[2 * band :])


def test_render_overlay_fills_and_outlines_regions_by_score() -> None:
    scores = {"A": 3, "B": 0, "C": 0, "D": 1, "E": 0, "F": 0}
    result = BrixiaResult(
        region_scores=scores,
        probabilities={name: (0.25, 0.25, 0.25, 0.25) for name in scores},
        global_score=4,
        lung_mask=np.zeros((512, 512), dtype=bool),
        alignment=np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32),
        contributions=np.zeros((6, 16, 16), dtype=np.float32),
        mapping=FrameMapping((600, 800)),
        model=ModelIdentity("BS-Net", "2.0.0", "ab" * 32, "untrained", untrained=True),
    )
    display = np.full((600, 800), 128, dtype=np.uint8)
    labels = np.zeros((600, 800), dtype=np.uint8)
    labels[100:460, :400] = 1  # A
    labels[100:460, 400:] = 4  # D
    rgb = render_overlay(display, labels, result)
    assert rgb.shape == (600, 800, 3) and rgb.dtype == np.uint8

    def tinted(score: int) -> np.ndarray:
        return np.round((1 - FILL_ALPHA) * 128 + FILL_ALPHA * np.array(PALETTE[score]))

    assert np.array_equal(rgb[150, 60], tinted(3))
    assert np.array_equal(rgb[150, 740], tinted(1))
    assert np.array_equal(rgb[101, 60], PALETTE[3])  # outline
    assert np.array_equal(rgb[95, 600], [128, 128, 128])  # background stays grey
    assert len(set(PALETTE.values())) == 4


@pytest.mark.parametrize("name", NAMES)
def test_sr_regions_are_laid_out_as_ohif_writes_and_reads_them(name: str, built) -> None:
    """OHIF re-creates a measurement group as its PlanarFreehandROI tool when the tracking
    identifier names the tool and the first NUM carries the outline (INFERRED FROM SCOORD,
    SELECTED FROM the radiograph); it lists it under the group's comment, which says the score
    in words (OHIF prints a NUM of 0 as nothing)."""
    data = built(name)
    sr = pydicom.dcmread(data.files["sr"])
    groups = [item for item in _content_items(sr.ContentSequence) if item.get("ValueType") == "CONTAINER"
              and item.ConceptNameCodeSequence[0].CodeValue == "125007"]
    assert len(groups) == len(REGIONS)
    for group, region in zip(groups, REGIONS, strict=True):
        children = list(group.ContentSequence)
        numbers = [item for item in children if item.ValueType == "NUM"]
        assert numbers[0].ConceptNameCodeSequence[0].CodeValue == BRIXIA_REGION_SCORE.value
        (inferred,) = numbers[0].ContentSequence
        assert (inferred.RelationshipType, inferred.ValueType, inferred.GraphicType) == (
            "INFERRED FROM", "SCOORD", "POLYLINE"
        )
        outline = next(item for item in children if item.ValueType == "SCOORD")
        assert list(inferred.GraphicData) == list(outline.GraphicData)
        (image,) = inferred.ContentSequence
        assert image.RelationshipType == "SELECTED FROM"
        assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == data.source.SOPInstanceUID
        comments = [item.TextValue for item in children if item.ConceptNameCodeSequence[0].CodeValue == "121106"]
        score = data.result.region_scores[region.name]
        assert comments == [f"Brixia {region.name} ({region.lung} {region.zone}): score {score} of 3"]
