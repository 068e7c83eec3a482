"""The Brixia score as a Comprehensive 3D SR Measurement Report (PS3.16 TID 1500).

Content tree:
- Imaging Measurement Report, with language (TID 1204), a device observer (TID 1002/1004: the
  model, its version and weights checksum) and procedure reported "Plain X-ray of chest".
- Imaging Measurements: one Measurement Group (TID 1501) per Brixia region A-F, each with a
  tracking identifier and UID (TID 4108), finding site (lung zone + laterality), algorithm
  identification (TID 4019), the source radiograph, and the region score (TID 300, 0-3).
- Derived Imaging Measurements: the global Brixia score (TID 300, 0-18, derivation "Total").
- Qualitative Evaluations: a plain-language summary and the research-use (and untrained) warning.
"""

import highdicom as hd
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from dicom_node.outputs.common import (
    CONTENT_QUALIFICATION,
    MANUFACTURER,
    copied_names_allowed,
    instance_number,
    output_uids,
    reference_header,
    safety_lines,
    series_description,
    summary_text,
)
from dicom_node.uids import derived_uid
from inference import BrixiaResult
from inference.regions import REGIONS, Region

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
SCORE_UNIT = hd.sr.CodedConcept("{score}", "UCUM", "score")
CHEST_XRAY = hd.sr.CodedConcept("399208008", "SCT", "Plain X-ray of chest")
QUALITATIVE_EVALUATIONS = hd.sr.CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")
ZONE_CODES = {  # CID 6171 "Zone of Lung"
    "upper": codes.SCT.UpperZoneOfLung,
    "middle": codes.SCT.MiddleZoneOfLung,
    "lower": codes.SCT.LowerZoneOfLung,
}
LATERALITY_CODES = {"right": codes.SCT.Right, "left": codes.SCT.Left}  # CID 244 "Laterality"


def _algorithm(result: BrixiaResult) -> hd.sr.AlgorithmIdentification:
    """TID 4019 Algorithm Identification: name, version, manufacturer, weights checksum."""
    parameters = [f"weights sha256 {result.weights_sha256}"]
    if result.untrained:
        parameters.append("untrained: randomly initialised weights")
    return hd.sr.AlgorithmIdentification(
        name=result.model_name,
        version=result.model_version,
        parameters=parameters,
        manufacturer=MANUFACTURER,
    )


def _observation_context(result: BrixiaResult) -> hd.sr.ObservationContext:
    """TID 1001 with a device observer (TID 1004); the serial number is the weights checksum."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=derived_uid("device", result.model_name, result.model_version, result.weights_sha256),
        name=result.model_name,
        manufacturer_name=MANUFACTURER,
        model_name=result.model_version,
        serial_number=result.weights_sha256,
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def _region_group(
    region: Region, header: Dataset, result: BrixiaResult
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 Measurement Group for one Brixia region."""
    tracking = hd.sr.TrackingIdentifier(
        uid=derived_uid(
            "tracking",
            str(header.SOPInstanceUID),
            result.model_name,
            result.model_version,
            result.weights_sha256,
            region.name,
        ),
        identifier=f"Brixia region {region.name}",
    )
    site = hd.sr.FindingSite(
        anatomic_location=ZONE_CODES[region.zone], laterality=LATERALITY_CODES[region.lung]
    )
    score = hd.sr.Measurement(
        name=BRIXIA_REGION_SCORE, value=result.region_scores[region.name], unit=SCORE_UNIT
    )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        finding_sites=[site],
        algorithm_id=_algorithm(result),
        measurements=[score],
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(header)],
    )


def _global_measurements(result: BrixiaResult) -> hd.sr.ContainerContentItem:
    """TID 1500 "Derived Imaging Measurements" holding the global score (TID 300)."""
    measurement = hd.sr.Measurement(
        name=BRIXIA_GLOBAL_SCORE,
        value=result.global_score,
        unit=SCORE_UNIT,
        derivation=codes.SCT.Total,
        finding_sites=[hd.sr.FindingSite(codes.SCT.Lung, laterality=codes.SCT.Bilateral)],
        algorithm_id=_algorithm(result),
    )
    container = hd.sr.ContainerContentItem(
        name=codes.DCM.DerivedImagingMeasurements,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    container.ContentSequence = hd.sr.ContentSequence(list(measurement))
    return container


def _qualitative_evaluations(result: BrixiaResult) -> hd.sr.ContainerContentItem:
    """TID 1500 "Qualitative Evaluations": the summary and each safety warning as TEXT."""
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    items = [hd.sr.TextContentItem(codes.DCM.Summary, summary_text(result), contains)]
    items += [
        hd.sr.TextContentItem(codes.DCM.Comment, line, contains) for line in safety_lines(result)
    ]
    container = hd.sr.ContainerContentItem(name=QUALITATIVE_EVALUATIONS, relationship_type=contains)
    container.ContentSequence = hd.sr.ContentSequence(items)
    return container


def measurement_report(header: Dataset, result: BrixiaResult) -> hd.sr.MeasurementReport:
    """The TID 1500 content tree for one scored radiograph."""
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(result),
        procedure_reported=CHEST_XRAY,
        imaging_measurements=[_region_group(region, header, result) for region in REGIONS],
    )
    report[0].ContentSequence.append(_global_measurements(result))
    report[0].ContentSequence.append(_qualitative_evaluations(result))
    return report


def build_sr(source: Dataset, result: BrixiaResult) -> hd.sr.Comprehensive3DSR:
    """Comprehensive 3D SR (PS3.3 A.35.13) with the Brixia scores of ``source``, in its study."""
    header = reference_header(source)
    series_uid, sop_uid = output_uids(source, result, "sr")
    with copied_names_allowed():
        return hd.sr.Comprehensive3DSR(
            evidence=[header],
            content=measurement_report(header, result),
            series_instance_uid=series_uid,
            series_number=SR_SERIES_NUMBER,
            sop_instance_uid=sop_uid,
            instance_number=instance_number(source),
            manufacturer=MANUFACTURER,
            is_complete=True,
            series_description=series_description(result, "Brixia score"),
            manufacturer_model_name=result.model_name,
            software_versions=result.model_version,
            content_qualification=CONTENT_QUALIFICATION,
            coding_schemes=[CODING_SCHEME],
            transfer_syntax_uid=ExplicitVRLittleEndian,
        )
