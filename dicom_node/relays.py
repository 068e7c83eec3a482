"""Validated relays (issue 12): what the outputs copy from a received image into the hospital's
PACS is checked against its Value Representation first (PS3.5 6.1, 6.2, 9.1); an invalid value
fails the receipt at triage with a reason instead of being forwarded."""

import datetime
import re
import unicodedata
from dataclasses import dataclass

from pydicom import config as pydicom_config
from pydicom.charset import python_encoding
from pydicom.datadict import dictionary_has_tag, dictionary_VM, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import MAX_VALUE_LEN, VR_REGEXES, validate_value

from dicom_node.outputs.common import IDENTITY_KEYWORDS, TEXT_VRS, emptied_by_reference_header

IDENTITY_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def _keywords(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# What the outputs copy from a received image, by module (PS3.3): ``reference_header`` in
# dicom_node/outputs/common.py hands the header to highdicom, which copies the root attributes of
# the Patient, Clinical Trial Subject, General Study, Patient Study, Clinical Trial Study and
# Specimen modules into the SR, the Secondary Captures and the SEG, and the Contributing Equipment
# item (PS3.3 C.12.1) from the General Equipment module; the SR, SC and SEG reference the source's
# UIDs; the SC builder copies Patient Orientation, Body Part Examined and the lossy compression
# history; the SEG copies the Frame of Reference. Sequences are copied whole.
COPIED_BY_MODULE: dict[str, tuple[str, ...]] = {
    "SOP Common (C.12.1), General Series (C.7.3.1)": _keywords(
        "SpecificCharacterSet SOPClassUID SOPInstanceUID SeriesInstanceUID"
    ),
    "Patient (C.7.1.1)": _keywords(
        "PatientName PatientID IssuerOfPatientID TypeOfPatientID IssuerOfPatientIDQualifiersSequence "
        "OtherPatientIDsSequence OtherPatientNames PatientBirthDate PatientBirthTime "
        "PatientBirthDateInAlternativeCalendar PatientDeathDateInAlternativeCalendar "
        "PatientAlternativeCalendar PatientSex ReferencedPatientPhotoSequence QualityControlSubject "
        "ReferencedPatientSequence PatientComments PatientSpeciesDescription PatientSpeciesCodeSequence "
        "PatientBreedDescription PatientBreedCodeSequence BreedRegistrationSequence StrainDescription "
        "StrainNomenclature StrainCodeSequence StrainAdditionalInformation StrainStockSequence "
        "GeneticModificationsSequence ResponsiblePerson ResponsiblePersonRole ResponsibleOrganization "
        "PatientIdentityRemoved DeidentificationMethod DeidentificationMethodCodeSequence "
        "EthnicGroupCodeSequence GroupOfPatientsIdentificationSequence SourcePatientGroupIdentificationSequence"
    ),
    "Clinical Trial Subject (C.7.1.3)": _keywords(
        "ClinicalTrialSponsorName ClinicalTrialProtocolID IssuerOfClinicalTrialProtocolID "
        "OtherClinicalTrialProtocolIDsSequence ClinicalTrialProtocolName ClinicalTrialSiteID "
        "IssuerOfClinicalTrialSiteID ClinicalTrialSiteName ClinicalTrialSubjectID IssuerOfClinicalTrialSubjectID "
        "ClinicalTrialSubjectReadingID IssuerOfClinicalTrialSubjectReadingID "
        "ClinicalTrialProtocolEthicsCommitteeName ClinicalTrialProtocolEthicsCommitteeApprovalNumber"
    ),
    "General Study (C.7.2.1)": _keywords(
        "StudyInstanceUID StudyDate StudyTime ReferringPhysicianName ReferringPhysicianIdentificationSequence "
        "ConsultingPhysicianName ConsultingPhysicianIdentificationSequence StudyID AccessionNumber "
        "IssuerOfAccessionNumberSequence StudyDescription PhysiciansOfRecord PhysiciansOfRecordIdentificationSequence "
        "NameOfPhysiciansReadingStudy PhysiciansReadingStudyIdentificationSequence RequestingServiceCodeSequence "
        "RequestingService ReferencedStudySequence ProcedureCodeSequence ReasonForPerformedProcedureCodeSequence"
    ),
    "Patient Study (C.7.2.2)": _keywords(
        "AdmittingDiagnosesDescription AdmittingDiagnosesCodeSequence PatientAge PatientSize "
        "PatientSizeCodeSequence PatientWeight PatientBodyMassIndex MeasuredAPDimension MeasuredLateralDimension "
        "MedicalAlerts Allergies SmokingStatus PregnancyStatus LastMenstrualDate PatientState PatientSexNeutered "
        "AdditionalPatientHistory ReasonForVisit ReasonForVisitCodeSequence AdmissionID IssuerOfAdmissionIDSequence "
        "ServiceEpisodeID IssuerOfServiceEpisodeIDSequence ServiceEpisodeDescription Occupation"
    ),
    "Clinical Trial Study (C.7.2.3)": _keywords(
        "ClinicalTrialTimePointID IssuerOfClinicalTrialTimePointID ClinicalTrialTimePointDescription "
        "ClinicalTrialTimePointTypeCodeSequence LongitudinalTemporalOffsetFromEvent LongitudinalTemporalEventType "
        "ConsentForClinicalTrialUseSequence"
    ),
    "Specimen (C.7.6.22)": _keywords(
        "ContainerIdentifier IssuerOfTheContainerIdentifierSequence AlternateContainerIdentifierSequence "
        "ContainerTypeCodeSequence ContainerDescription ContainerComponentSequence SpecimenDescriptionSequence"
    ),
    "Frame of Reference (C.7.4.1), copied by the SEG": _keywords("FrameOfReferenceUID PositionReferenceIndicator"),
    "General Image (C.7.6.1), General Series (C.7.3.1), copied by the Secondary Captures": _keywords(
        "PatientOrientation BodyPartExamined LossyImageCompression LossyImageCompressionMethod "
        "LossyImageCompressionRatio"
    ),
    "General Equipment (C.7.5.1), General Acquisition (C.7.10.1): Contributing Equipment": _keywords(
        "Manufacturer ManufacturerModelName SoftwareVersions DeviceSerialNumber InstitutionName "
        "InstitutionalDepartmentName InstitutionAddress StationName AcquisitionDateTime"
    ),
}
COPIED_ATTRIBUTES = tuple(keyword for keywords in COPIED_BY_MODULE.values() for keyword in keywords)
# Attributes that identify the patient, the study and the instances: an invalid value always fails
# the receipt (see identity_problem).
# Those the outputs copy verbatim (IDENTITY_KEYWORDS, which include the UIDs), and those an
# emptied value of would contradict the study the outputs are filed in.
IDENTITY_ATTRIBUTES = IDENTITY_KEYWORDS | {
    "FrameOfReferenceUID",
    "TypeOfPatientID",
    "OtherPatientNames",
    "PatientBirthDate",
    "PatientBirthTime",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
}
# Checked elsewhere: the character set first (it decides the repertoire), Patient's Sex never.
_NOT_CHECKED = frozenset({"SpecificCharacterSet", "PatientSex"})
_CHECKED_VRS = TEXT_VRS | {"DS", "IS"}
# The VRs whose repertoire Specific Character Set extends or replaces (PS3.5 6.1.2.2).
_CHARSET_VRS = frozenset({"SH", "LO", "UC", "ST", "LT", "UT", "PN"})
_LONG_TEXT_VRS = frozenset({"ST", "LT", "UT"})  # may hold LF, FF, CR (PS3.5 6.1.3, 6.2); TAB tolerated
_LONG_TEXT_CONTROLS = frozenset("\t\n\f\r\x1b")
_ESCAPE = frozenset("\x1b")  # ESC starts ISO 2022 escape sequences (PS3.5 6.1.2.5, 6.1.3)
_DEFAULT_REPERTOIRE = frozenset({"", "ISO_IR 6", "ISO 2022 IR 6"})
# pydicom's DA/DT/TM formats without the ranges it also accepts for queries (PS3.4 C.2.2.2.5).
_SINGLE_FORMATS = {vr: re.compile(VR_REGEXES[vr].split("$|", 1)[0] + "$") for vr in ("DA", "DT", "TM")}
_FORMATS = {
    "AE": "printable ASCII, at most 16 characters",
    "AS": "nnnD, nnnW, nnnM or nnnY",
    "CS": "upper-case letters, digits, space and underscore, at most 16",
    "DA": "YYYYMMDD, a date of the Gregorian calendar",
    "DS": "a decimal number, at most 16 characters",
    "DT": "YYYY[MM[DD[HH[MM[SS[.FFFFFF]]]]]][&ZZXX], a real date",
    "IS": "an integer, at most 12 characters",
    "TM": "HH[MM[SS[.FFFFFF]]]",
    "UR": "a URI without spaces",
}


def identity_problem(ds: Dataset) -> str:
    """Why results for ``ds`` could not be filed in its study, or "".

    Study, Series and SOP Instance UIDs must be present (PS3.3 C.7.2.1, C.7.3.1, C.12.1). Every
    attribute that the outputs copy from ``ds`` (:data:`COPIED_ATTRIBUTES`) is then checked
    against its Value Representation: length, characters and format (PS3.5 6.2; UIDs PS3.5 9.1;
    dates as real Gregorian dates, never the ranges of queries, PS3.4 C.2.2.2.5), the number of
    values its dictionary entry allows (PS3.6; a backslash separates values, PS3.5 6.4), and the
    character repertoire: without Specific Character Set only the default repertoire (ASCII),
    with one only bytes valid in it, and a Specific Character Set the node can decode (PS3.5 6.1,
    PS3.3 C.12.1.1.2). Absent or empty values pass (Type 2 attributes may be empty).

    Which invalid values fail the receipt:

    - identity attributes (:data:`IDENTITY_ATTRIBUTES`: UIDs, Specific Character Set, the
      patient's name, IDs, birth date and time, the study's date, time, ID, accession number and
      referring physician), always: the PACS files the outputs by them, and ``reference_header``
      copies most of them verbatim; an emptied birth or study date would contradict the study
      the outputs are filed in;
    - values that would be copied verbatim otherwise: numbers (DS), every value inside the
      sequences the outputs copy whole, and descriptive text whose fault pydicom's own check
      (``pydicom.valuerep.validate_value``, used by ``reference_header``) does not see, such as
      a control character, 31 February or a name with six components.

    A descriptive text value that pydicom's check rejects (a Patient's Age "62" without its unit,
    a Study Description of 65 characters) is emptied by ``reference_header`` and never reaches
    the PACS, so it does not cost the result. Patient's Sex is never a reason either: the outputs
    copy only M, F or O (PS3.3 C.7.1.1, enumerated values) and empty anything else (Type 2),
    which is how "U", lower case or a second value arrive from real modalities; the PACS files
    results by patient ID and study, not by sex.

    The reason names each faulty attribute (``Sequence[0].Keyword`` inside a sequence) and the
    rule it breaks, never its value: reasons reach the journal and the log, and these values are
    patient data (PS3.15 E.1). Only a Specific Character Set term is shown.
    """
    try:
        for keyword in IDENTITY_UIDS:
            if not str(ds.get(keyword) or "").strip():
                return f"{keyword} missing: results could not be filed in the study"
        problems, charset = _character_set(ds)
        for keyword in COPIED_ATTRIBUTES:
            tag = tag_for_keyword(keyword)
            if keyword in _NOT_CHECKED or tag is None or tag not in ds:
                continue
            element = ds[tag]
            problems += _element_problems(element, keyword, charset, keyword in IDENTITY_ATTRIBUTES)
    except Exception as error:  # a value pydicom cannot even convert; never let intake crash
        return f"identity attributes cannot be read ({type(error).__name__})"
    return "; ".join(problems)


@dataclass(frozen=True)
class _Charset:
    label: str  # the Specific Character Set as received ("" when absent)
    default_only: bool  # only the default repertoire (ASCII) may be used (PS3.5 6.1.2.1)


def _character_set(ds: Dataset) -> tuple[list[str], _Charset]:
    """Problems of Specific Character Set (0008,0005) and the repertoire it allows: each value a
    defined term (PS3.3 C.12.1.1.2) that pydicom can decode; several values only with ISO 2022
    code extensions (PS3.5 6.1.2.5)."""
    value = ds.get("SpecificCharacterSet")
    if value is None or value == "":
        values: list[str] = []
    elif isinstance(value, str):
        values = [value]
    else:
        values = [str(item) for item in value]
    problems = []
    for term in values:
        shown = f"{term[:16]!r}"
        if not _valid_for("CS", term):
            problems.append(f"SpecificCharacterSet {shown} is not a valid CS: {_FORMATS['CS']} (PS3.5 6.2)")
        elif term not in python_encoding:
            problems.append(
                f"SpecificCharacterSet {shown} is not a defined term the node can decode (PS3.3 C.12.1.1.2)"
            )
    if len(values) > 1 and any(term and not term.startswith("ISO 2022") for term in values):
        problems.append(
            f"SpecificCharacterSet has {len(values)} values without ISO 2022 code extensions (PS3.3 C.12.1.1.2)"
        )
    default_only = all(term in _DEFAULT_REPERTOIRE for term in values)
    return problems, _Charset("\\".join(values), default_only)


def _element_problems(element: DataElement, path: str, charset: _Charset, identity: bool) -> list[str]:
    """Problems of one copied element (``path`` names it), recursing into sequence items, whose
    values are all copied as they are."""
    if element.VR == "SQ":
        problems = []
        for index, item in enumerate(element.value or []):
            for child in item:
                if child.tag.element != 0:  # group lengths are not copied
                    name = child.keyword or str(child.tag)
                    problems += _element_problems(child, f"{path}[{index}].{name}", charset, identity=True)
        return problems
    if element.VR not in _CHECKED_VRS or not element.VM or element.value is None:
        return []
    values = list(element.value) if element.VM > 1 else [element.value]
    if not identity and emptied_by_reference_header(element):
        return []
    if dictionary_has_tag(element.tag):  # not private, not unknown
        allowed = dictionary_VM(element.tag)
        if not _vm_allows(allowed, len(values)):
            return [
                f"{path} has {len(values)} values where its VM is {allowed} "
                "(PS3.6; a backslash separates values, PS3.5 6.4)"
            ]
    for value in values:
        problem = _value_problem(element.VR, value, charset)
        if problem:
            return [f"{path} {problem}"]
    return []


def _valid_for(vr: str, text: str) -> bool:
    """pydicom's own check of ``text`` for ``vr`` (length, characters, format; PS3.5 6.2)."""
    try:
        validate_value(vr, text, pydicom_config.RAISE)
    except ValueError:
        return False
    return True


def _value_problem(vr: str, value: object, charset: _Charset) -> str:
    """What is wrong with one value of ``vr`` (without the value), or ""."""
    if isinstance(value, bytes | bytearray):
        return f"cannot be read as {vr}"
    text = str(value)
    if vr == "UI":
        return _uid_problem(text)
    if vr == "PN":
        problem = _person_name_problem(text)
    elif not _valid_for(vr, text) or not _single_value_format(vr, text):
        problem = _format_problem(vr, text)
    else:
        problem = ""
    if problem or vr not in _CHARSET_VRS:
        return problem
    allowed = _LONG_TEXT_CONTROLS if vr in _LONG_TEXT_VRS else _ESCAPE
    if any(unicodedata.category(character) == "Cc" and character not in allowed for character in text):
        return f"contains a control character, not allowed in {vr} (PS3.5 6.2)"
    if "\ufffd" in text:
        return f"has bytes that are not valid in its Specific Character Set {charset.label} (PS3.5 6.1)"
    if charset.default_only and any(ord(character) > 0x7E for character in text):
        return "has characters outside the default repertoire (ASCII) and no Specific Character Set (PS3.5 6.1)"
    return ""


def _single_value_format(vr: str, text: str) -> bool:
    """Stricter than pydicom for DA, DT and TM: one value, not a range (ranges are for queries,
    PS3.4 C.2.2.2.5), and a date that exists in the Gregorian calendar (PS3.5 6.2)."""
    if vr not in _SINGLE_FORMATS:
        return True
    if not _SINGLE_FORMATS[vr].match(text):
        return False
    if vr in ("DA", "DT") and len(text) >= 8:
        try:
            datetime.date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            return False
    return True


def _format_problem(vr: str, text: str) -> str:
    limit = MAX_VALUE_LEN.get(vr, 0)
    if limit and len(text) > limit:
        return f"is {len(text)} characters long, above the {limit} allowed for {vr} (PS3.5 6.2)"
    return f"is not a valid {vr}: {_FORMATS.get(vr, 'see its rule')} (PS3.5 6.2)"


def _uid_problem(text: str) -> str:
    """A UID has at most 64 characters, digits in components separated by dots, no component
    empty or with a leading zero (PS3.5 9.1)."""
    if _valid_for("UI", text):
        return ""
    if len(text) > MAX_VALUE_LEN["UI"]:
        return f"is {len(text)} characters long, above the 64 allowed for a UID (PS3.5 9.1)"
    if not set(text) <= set("0123456789."):
        return "has characters other than digits and dots: not a valid UID (PS3.5 9.1)"
    return "has an empty component or one with a leading zero: not a valid UID (PS3.5 9.1)"


def _person_name_problem(text: str) -> str:
    """At most 3 component groups (alphabetic, ideographic, phonetic) of at most 64 characters,
    each of at most 5 components (PS3.5 6.2, 6.2.1)."""
    groups = text.split("=")
    if len(groups) > 3:
        return f"has {len(groups)} component groups, above the 3 allowed for PN (PS3.5 6.2)"
    for group in groups:
        if len(group) > 64:
            return f"has a component group of {len(group)} characters, above the 64 allowed for PN (PS3.5 6.2)"
        if group.count("^") > 4:
            return f"has {group.count('^') + 1} components in a group, above the 5 allowed for PN (PS3.5 6.2.1)"
    if not _valid_for("PN", text):  # pydicom's own PN check, should it ever be stricter
        return "is not a valid PN (PS3.5 6.2)"
    return ""


def _vm_allows(allowed: str, count: int) -> bool:
    """Whether ``count`` values fit a dictionary VM such as "1", "1-3", "1-n" or "2-2n" (PS3.5
    6.4); an unknown VM allows anything."""
    low, _, high = allowed.partition("-")
    try:
        if count < int(low):
            return False
        if not high:
            return count == int(low)
        if high.endswith("n"):
            return count % int(high[:-1] or 1) == 0
        return count <= int(high)
    except ValueError:
        return True
