"""The Brixia score as a Comprehensive 3D SR Measurement Report (PS3.16 TID 1500).

Content tree:
- Imaging Measurement Report, with language (TID 1204), a device observer (TID 1002/1004: the
  model, its version and weights checksum) and procedure reported "Plain X-ray of chest".
- Imaging Measurements: one Planar ROI Measurement Group (TID 1410) per Brixia region A-F, each
  with a tracking identifier and UID (TID 4108), the region's outline on the source radiograph
  (TID 1410 "Image Region": SCOORD closed POLYLINE, selected from the radiograph), finding site
  (lung zone + laterality), algorithm identification (TID 4019), the region score (TID 300, 0-3),
  the outline again as what the score is inferred from (TID 300 "INFERRED FROM", TID 320), the
  model's probability of each score 0-3 (TID 300, percent) and a comment naming the region and
  its score. A region the model found no lung in has no outline: its group is a TID 1501
  Measurement Group referencing the radiograph.

  Viewers: OHIF (Cornerstone3D's SR adapters) turns a group back into one of its measurement
  tools only when the tracking identifier starts with the tool's name and the first NUM carries
  the SCOORD, the layout OHIF itself writes; it names the measurement after the comment, and it
  prints a numeric value of 0 as nothing and a unit as its code, hence the comment's wording and
  units written as the scale ("{0-3}").
- Derived Imaging Measurements: the global Brixia score (TID 300, 0-18, derivation "Total").
- Qualitative Evaluations: a plain-language summary, one plain-language line per region (score
  and probabilities) and the research-use (and untrained) warning, for text renderers.
"""

from copy import deepcopy

import highdicom as hd
import numpy as np
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from dicom_node.outputs.common import (
    CONTENT_QUALIFICATION,
    MANUFACTURER,
    add_model_as_contributing_equipment,
    copied_names_allowed,
    instance_number,
    output_uids,
    safety_lines,
    series_description,
    summary_text,
    tracking_uid,
)
from dicom_node.outputs.outline import mask_outline
from dicom_node.outputs.source import OutputSource
from dicom_node.uids import derived_uid
from inference import BrixiaResult
from inference.regions import REGIONS, SCORE_LEVELS, Region

SR_SERIES_NUMBER = 9701

# No standard code exists for the Brixia score: a private coding scheme (PS3.3 8.2, "99" prefix),
# declared in the Coding Scheme Identification Sequence.
PRIVATE_SCHEME = "99DCMNODE"
CODING_SCHEME = CodingSchemeIdentificationItem(
    designator=PRIVATE_SCHEME,
    name="dicom-node private codes",
    responsible_organization=MANUFACTURER,
)
BRIXIA_REGION_SCORE = hd.sr.CodedConcept("BRIXIA-REGION", PRIVATE_SCHEME, "Brixia region score")
BRIXIA_GLOBAL_SCORE = hd.sr.CodedConcept("BRIXIA-GLOBAL", PRIVATE_SCHEME, "Brixia global score")
BRIXIA_PROBABILITIES = tuple(
    hd.sr.CodedConcept(
        f"BRIXIA-P{score}", PRIVATE_SCHEME, f"Probability of Brixia region score {score}"
    )
    for score in range(SCORE_LEVELS)
)
REGION_SCORE_UNIT = hd.sr.CodedConcept("{0-3}", "UCUM", "score from 0 to 3")
GLOBAL_SCORE_UNIT = hd.sr.CodedConcept("{0-18}", "UCUM", "score from 0 to 18")
# The tool OHIF re-creates a region as ("<tool>:<free text>" in the tracking identifier).
OHIF_FREEHAND_ROI = "Cornerstone3DTools@^0.1.0:PlanarFreehandROI"
PERCENT = hd.sr.CodedConcept("%", "UCUM", "percent")
CHEST_XRAY = hd.sr.CodedConcept("399208008", "SCT", "Plain X-ray of chest")
QUALITATIVE_EVALUATIONS = hd.sr.CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")
CONTAINS = hd.sr.RelationshipTypeValues.CONTAINS
ZONE_CODES = {  # CID 6171 "Zone of Lung"
    "upper": codes.SCT.UpperZoneOfLung,
    "middle": codes.SCT.MiddleZoneOfLung,
    "lower": codes.SCT.LowerZoneOfLung,
}
LATERALITY_CODES = {"right": codes.SCT.Right, "left": codes.SCT.Left}  # CID 244 "Laterality"


def _algorithm(result: BrixiaResult) -> hd.sr.AlgorithmIdentification:
    """TID 4019 Algorithm Identification: name, version, manufacturer, weights checksum."""
    model = result.model
    parameters = [f"weights sha256 {model.weights_sha256}", f"weights source: {model.weights_source}"]
    if model.untrained:
        parameters.append("untrained: randomly initialised weights")
    return hd.sr.AlgorithmIdentification(
        name=model.name,
        version=model.version,
        parameters=parameters,
        manufacturer=MANUFACTURER,
    )


def _observation_context(result: BrixiaResult) -> hd.sr.ObservationContext:
    """TID 1001 with a device observer (TID 1004); the serial number is the weights checksum."""
    model = result.model
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=derived_uid("device", *model.uid_parts),
        name=model.name,
        manufacturer_name=MANUFACTURER,
        model_name=model.version,
        serial_number=model.weights_sha256,
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def _region_polygon(result: BrixiaResult, label: int) -> np.ndarray | None:
    """Outline of region ``label`` in source (column, row) coordinates (PS3.3 C.18.6.1.2), or None.

    Traced on the model-frame region map, whose pixel is the finest detail of the region, and
    scaled to the source: the same staircase as tracing the upsampled map, 16 times fewer pixels.
    """
    polygon = mask_outline(result.region_map == label, tolerance=1.0)
    if polygon is None:
        return None
    row_scale, column_scale = result.mapping.scale
    return polygon * np.array([column_scale, row_scale])


def _region_group(
    region: Region,
    header: Dataset,
    result: BrixiaResult,
    label: int,
    algorithm: hd.sr.AlgorithmIdentification,
) -> (
    hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
    | hd.sr.MeasurementsAndQualitativeEvaluations
):
    """TID 1410 Planar ROI Measurement Group for one Brixia region (``label`` in the region map),
    outlined on the source image; TID 1501 where the region is empty. ``algorithm``: the
    report's one TID 4019, whose items every group holds."""
    score = hd.sr.Measurement(
        name=BRIXIA_REGION_SCORE, value=result.region_scores[region.name], unit=REGION_SCORE_UNIT
    )
    probabilities = [
        hd.sr.Measurement(name=name, value=round(100.0 * float(probability), 1), unit=PERCENT)
        for name, probability in zip(
            BRIXIA_PROBABILITIES, result.probabilities[region.name], strict=True
        )
    ]
    content = {
        "tracking_identifier": hd.sr.TrackingIdentifier(
            uid=tracking_uid(header, result, region.name), identifier=region_tracking_identifier(region)
        ),
        "finding_sites": [
            hd.sr.FindingSite(ZONE_CODES[region.zone], laterality=LATERALITY_CODES[region.lung])
        ],
        "algorithm_id": algorithm,
        "measurements": [score, *probabilities],
    }
    polygon = _region_polygon(result, label)
    if polygon is None:
        source_image = hd.sr.SourceImageForMeasurementGroup.from_source_image(header)
        return hd.sr.MeasurementsAndQualitativeEvaluations(**content, source_images=[source_image])
    outline = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=polygon,
        source_image=hd.sr.SourceImageForRegion.from_source_image(header),
    )
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(**content, referenced_region=outline)
    items = group[0].ContentSequence
    score_item = next(item for item in items if item.ValueType == "NUM")
    inferred_from = deepcopy(outline)  # TID 300 row "INFERRED FROM" TID 320 (by value)
    inferred_from.RelationshipType = hd.sr.RelationshipTypeValues.INFERRED_FROM.value
    score_item.ContentSequence = hd.sr.ContentSequence([inferred_from])
    items.append(hd.sr.TextContentItem(codes.DCM.Comment, region_comment(region, result), CONTAINS))
    return group


def region_tracking_identifier(region: Region) -> str:
    """TID 4108 Tracking Identifier of a region: OHIF's tool name, then ours ("Brixia region A")."""
    return f"{OHIF_FREEHAND_ROI}:Brixia region {region.name}"


def region_comment(region: Region, result: BrixiaResult) -> str:
    """The name a viewer lists the region under: which region, and its score in words."""
    score = result.region_scores[region.name]
    return f"Brixia {region.name} ({region.lung} {region.zone}): score {score} of {SCORE_LEVELS - 1}"


def _global_measurements(
    result: BrixiaResult, algorithm: hd.sr.AlgorithmIdentification
) -> hd.sr.ContainerContentItem:
    """TID 1500 "Derived Imaging Measurements" holding the global score (TID 300)."""
    measurement = hd.sr.Measurement(
        name=BRIXIA_GLOBAL_SCORE,
        value=result.global_score,
        unit=GLOBAL_SCORE_UNIT,
        derivation=codes.SCT.Total,
        finding_sites=[hd.sr.FindingSite(codes.SCT.Lung, laterality=codes.SCT.Bilateral)],
        algorithm_id=algorithm,
    )
    container = hd.sr.ContainerContentItem(
        name=codes.DCM.DerivedImagingMeasurements,
        relationship_type=CONTAINS,
    )
    container.ContentSequence = hd.sr.ContentSequence(list(measurement))
    return container


def region_text(region: Region, result: BrixiaResult) -> str:
    """One plain-language line with a region's score and the model's probability of each score."""
    probabilities = ", ".join(
        f"{score} {100.0 * float(p):.1f} %"
        for score, p in enumerate(result.probabilities[region.name])
    )
    score = f"{result.region_scores[region.name]}/{SCORE_LEVELS - 1}"
    return (
        f"Region {region.name} ({region.lung} lung, {region.zone} zone): score {score}; "
        f"probability of score {probabilities}."
    )


def _qualitative_evaluations(result: BrixiaResult) -> hd.sr.ContainerContentItem:
    """TID 1500 "Qualitative Evaluations": the summary and each safety warning as TEXT."""
    items = [hd.sr.TextContentItem(codes.DCM.Summary, summary_text(result), CONTAINS)]
    items += [
        hd.sr.TextContentItem(codes.DCM.Finding, region_text(region, result), CONTAINS)
        for region in REGIONS
    ]
    items += [
        hd.sr.TextContentItem(codes.DCM.Comment, line, CONTAINS) for line in safety_lines(result)
    ]
    container = hd.sr.ContainerContentItem(name=QUALITATIVE_EVALUATIONS, relationship_type=CONTAINS)
    container.ContentSequence = hd.sr.ContentSequence(items)
    return container


def measurement_report(header: Dataset, result: BrixiaResult) -> hd.sr.MeasurementReport:
    """The TID 1500 content tree for one scored radiograph."""
    algorithm = _algorithm(result)
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(result),
        procedure_reported=CHEST_XRAY,
        imaging_measurements=[
            _region_group(region, header, result, label, algorithm)
            for label, region in enumerate(REGIONS, start=1)
        ],
    )
    report[0].ContentSequence.append(_global_measurements(result, algorithm))
    report[0].ContentSequence.append(_qualitative_evaluations(result))
    return report


def _root_without_children(root: hd.sr.ContainerContentItem) -> Dataset:
    """The root content item's own attributes (PS3.3 C.17.3: value type, concept name, continuity,
    template) with an empty Content Sequence."""
    item = Dataset()
    for element in root:
        if element.keyword != "ContentSequence":
            item.add(element)
    item.ContentSequence = []
    return item


def build_sr(output_source: OutputSource, result: BrixiaResult) -> hd.sr.Comprehensive3DSR:
    """Comprehensive 3D SR (PS3.3 A.35.13) with the Brixia scores of ``source``, in its study.

    highdicom's constructor writes the document modules (evidence, patient, study, series, SR
    document general) around the root item's attributes only: given the whole tree it would
    deep-copy it, re-type the copy item by item and walk it for referenced images, when every
    image item here is made from ``header``, which the evidence lists anyway. The tree, built of
    highdicom content items for this document alone, then becomes the root's children, in the
    dataset and in ``document.content``.
    """
    source, header = output_source.dataset, output_source.header
    series_uid, sop_uid = output_uids(source, result, "sr")
    root = measurement_report(header, result)[0]
    with copied_names_allowed():
        document = hd.sr.Comprehensive3DSR(
            evidence=[header],
            content=_root_without_children(root),
            series_instance_uid=series_uid,
            series_number=SR_SERIES_NUMBER,
            sop_instance_uid=sop_uid,
            instance_number=instance_number(source),
            manufacturer=MANUFACTURER,
            is_complete=True,
            series_description=series_description(result, "Brixia score"),
            manufacturer_model_name=result.model.name,
            software_versions=result.model.version,
            content_qualification=CONTENT_QUALIFICATION,
            coding_schemes=[CODING_SCHEME],
            transfer_syntax_uid=ExplicitVRLittleEndian,
        )
    add_model_as_contributing_equipment(document, result.model)
    document.ContentSequence = root.ContentSequence
    document.content[0].ContentSequence = root.ContentSequence
    return document
