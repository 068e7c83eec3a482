"""What the outputs share: output and tracking UIDs, the copied patient/study header, series
descriptions and the safety wording."""

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import validate_value

from dicom_node.config import OutputKind
from dicom_node.uids import derived_uid
from inference import UNTRAINED_WARNING, BrixiaResult, ModelIdentity
from inference.regions import MAX_GLOBAL_SCORE

MANUFACTURER = "dicom-node"
RESEARCH_ONLY = "RESEARCH USE ONLY - NOT FOR DIAGNOSIS"
PROCESSING_EQUIPMENT = ("109102", "DCM", "Processing Equipment")  # CID 7005 Contributing Equipment Purposes
CONTENT_QUALIFICATION = "RESEARCH"  # Content Qualification (0018,9004), SOP Common, PS3.3 C.12.1


# Copied verbatim even where the value breaks its VR: the PACS and RIS file outputs by them.
IDENTITY_KEYWORDS = frozenset(
    {
        "SpecificCharacterSet",
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "SOPClassUID",
        "AccessionNumber",
        "StudyID",
    }
)
# Type 2 attributes of the Patient (PS3.3 C.7.1.1) and General Study (C.7.2.1) modules.
TYPE2_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
PATIENT_SEX_VALUES = frozenset({"M", "F", "O"})  # PS3.3 C.7.1.1, Patient's Sex (0010,0040)
TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
_MAX_LO = 64


def output_uids(source: Dataset, result: BrixiaResult, kind: OutputKind) -> tuple[str, str]:
    """(Series Instance UID, SOP Instance UID) of one output.

    The series depends on the study, the model (name, version, weights checksum) and the kind;
    the instance on the source instance, the model and the kind. A retry or re-send therefore
    overwrites; another model or other weights give new instances in a new series.
    """
    series = derived_uid("series", str(source.StudyInstanceUID), *result.model.uid_parts, kind)
    instance = derived_uid("instance", str(source.SOPInstanceUID), *result.model.uid_parts, kind)
    return series, instance


def tracking_uid(source: Dataset, result: BrixiaResult, what: str) -> str:
    """Tracking UID of one region ("A".."F") or of "lungs" found in ``source`` by the model: the
    Tracking Identifier UID of the SR (TID 4108) and the Tracking UID of the SEG segment
    (PS3.3 C.8.20.4) are the same, so viewers can relate them."""
    return derived_uid("tracking", str(source.SOPInstanceUID), *result.model.uid_parts, what)


def safety_lines(result: BrixiaResult) -> list[str]:
    """The warnings every output must show."""
    return [RESEARCH_ONLY, UNTRAINED_WARNING] if result.model.untrained else [RESEARCH_ONLY]


def series_description(result: BrixiaResult, what: str) -> str:
    """Series Description (LO, at most 64 characters), led by the untrained warning if any."""
    if result.model.untrained:
        return f"{UNTRAINED_WARNING} - {result.model.name} {what}"[:_MAX_LO]
    return f"{result.model.name} {what} (research use only)"[:_MAX_LO]


def summary_text(result: BrixiaResult) -> str:
    """One plain-language line with every score, the model and the warnings."""
    regions = ", ".join(f"{name} {score}" for name, score in result.region_scores.items())
    notices = " ".join(f"{line}." for line in safety_lines(result))
    return (
        f"Brixia score {result.global_score}/{MAX_GLOBAL_SCORE} ({regions}). "
        f"{result.model.name} {result.model.version}, weights sha256 "
        f"{result.model.short_checksum} ({result.model.weights_source}). {notices}"
    )


def instance_number(source: Dataset) -> int:
    """The source's Instance Number where positive (outputs sort like their sources), else 1."""
    try:
        number = int(source.get("InstanceNumber") or 0)
    except (TypeError, ValueError):
        return 1
    return number if number > 0 else 1


def valid_for_vr(element: DataElement) -> bool:
    """Whether every value of ``element`` is valid for its VR (PS3.5 6.2)."""
    values = element.value if element.VM > 1 else [element.value]
    try:
        for value in values:
            validate_value(element.VR, str(value), config.RAISE)
    except ValueError:
        return False
    return True


def emptied_by_reference_header(element: DataElement) -> bool:
    """Whether :func:`reference_header` empties ``element`` rather than copying it: a text value
    (not an identity attribute, kept verbatim) that breaks its VR."""
    return (
        element.keyword not in IDENTITY_KEYWORDS
        and element.VR in TEXT_VRS
        and bool(element.VM)
        and not valid_for_vr(element)
    )


def reference_header(source: Dataset) -> Dataset:
    """The source's header as the outputs copy it (patient, study and instance references).

    No pixel data and no group lengths. Identity attributes are kept verbatim; any other text
    value that breaks its VR (PS3.5 6.2), or a Patient's Sex outside M/F/O, is emptied rather
    than copied; absent Type 2 patient/study attributes are added empty.
    """
    header = Dataset()
    for element in source:
        if element.tag.group >= 0x7FE0 or element.tag.element == 0:
            continue
        element = copy.deepcopy(element)
        if emptied_by_reference_header(element):
            element.value = None
        header.add(element)
    if str(header.get("PatientSex") or "") not in PATIENT_SEX_VALUES:
        header.PatientSex = None
    for keyword in TYPE2_PATIENT_STUDY:
        if keyword not in header:
            setattr(header, keyword, None)
    return header


@contextmanager
def copied_names_allowed() -> Iterator[None]:
    """Silence highdicom's warning about single-component person names: names are copied from
    the source as they are, on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"The string .* is unlikely to represent the intended person name"
        )
        yield


def add_model_as_contributing_equipment(output: Dataset, model: ModelIdentity) -> None:
    """Name the model in the output's Contributing Equipment Sequence (PS3.3 C.7.5.1, Table
    C.7-8a) as processing equipment, beside the source's acquisition equipment and the library
    that wrote the instance: manufacturer, model name, version, the weights' checksum as serial
    number, and a description with their source (and the untrained warning)."""
    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = PROCESSING_EQUIPMENT
    item = Dataset()
    item.PurposeOfReferenceCodeSequence = [purpose]
    item.Manufacturer = MANUFACTURER
    item.ManufacturerModelName = model.name
    item.SoftwareVersions = model.version
    item.DeviceSerialNumber = model.weights_sha256
    item.ContributionDescription = f"Scored by {model.label}. {RESEARCH_ONLY}."
    output.ContributingEquipmentSequence = [*output.get("ContributingEquipmentSequence", []), item]
