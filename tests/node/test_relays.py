"""Validated relays: every attribute the outputs copy from a received image is checked for its VR
before anything is forwarded; reasons name the attribute and the rule, never a patient value."""

import re
from io import BytesIO

import pydicom
import pytest
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from dicom_node.outputs.common import reference_header
from dicom_node.relays import identity_problem
from tests.conftest import CHEST_RADIOGRAPHS, DICOM_DATA, require_path

CANON_DX = "dx_mono1_j2k_lossless_canon.dcm"  # Accession Number and Birth Date replaced by a hash
VALID_IDENTITY = sorted(set(CHEST_RADIOGRAPHS) - {CANON_DX})
ESCAPED_STUDY = b"../../../ESCAPED_STUDY"


def _raw(ds: Dataset, keyword: str, value: bytes) -> None:
    """Store ``value`` as the element's bytes, unchecked, as a faulty modality would send it."""
    tag = Tag(keyword)
    value += b" " * (len(value) % 2)
    ds[tag] = RawDataElement(tag, dictionary_VR(tag), len(value), value, 0, False, True)


def _part10(changes: dict[str, bytes | list[Dataset] | None], name: str = "cr_mono1_explicit_fuji_small.dcm") -> bytes:
    """A real radiograph's header with ``changes`` (raw bytes, sequence items or None to delete)
    as a Part 10 file, written as a faulty modality would send it."""
    ds = pydicom.dcmread(require_path(DICOM_DATA / name), stop_before_pixels=True)
    for keyword, value in changes.items():
        if value is None:
            if keyword in ds:
                del ds[keyword]
        elif isinstance(value, bytes):
            _raw(ds, keyword, value)
        else:
            setattr(ds, keyword, value)
    buffer = BytesIO()
    mode = pydicom_config.settings.writing_validation_mode
    pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE
    try:
        ds.save_as(buffer, enforce_file_format=True)
    finally:
        pydicom_config.settings.writing_validation_mode = mode
    return buffer.getvalue()


def _received(changes: dict[str, bytes | list[Dataset] | None]) -> Dataset:
    """The edited header as the node reads what it receives."""
    return pydicom.dcmread(BytesIO(_part10(changes)))


def _item(**values: bytes) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        _raw(item, keyword, value)
    return item


def _names(problem: str, keyword: str) -> bool:
    return re.search(rf"(?<![A-Za-z]){re.escape(keyword)}(?![A-Za-z])", problem) is not None


@pytest.mark.parametrize("name", VALID_IDENTITY)
def test_real_radiographs_have_a_valid_identity(name):
    assert identity_problem(pydicom.dcmread(require_path(DICOM_DATA / name))) == ""


def test_the_canon_dx_with_hashed_identity_values_fails_without_echoing_them():
    """Its de-identification put a 56-character hash in Accession Number (SH, at most 16) and
    Patient's Birth Date (DA): forwarding it would send an invalid Accession Number to the PACS."""
    ds = pydicom.dcmread(require_path(DICOM_DATA / CANON_DX), stop_before_pixels=True)
    problem = identity_problem(ds)
    assert _names(problem, "AccessionNumber") and "SH" in problem
    assert _names(problem, "PatientBirthDate") and "DA" in problem
    assert str(ds.AccessionNumber) not in problem and str(ds.PatientBirthDate) not in problem


INVALID_IDENTITY = [
    # Study, Series, SOP Instance, SOP Class and Frame of Reference UIDs (UI, PS3.5 9.1)
    ("StudyInstanceUID", {"StudyInstanceUID": ESCAPED_STUDY}, "UID"),
    ("StudyInstanceUID", {"StudyInstanceUID": None}, "missing"),
    ("SeriesInstanceUID", {"SeriesInstanceUID": b"1." + b"2" * 70}, "UID"),
    ("SeriesInstanceUID", {"SeriesInstanceUID": None}, "missing"),
    ("SOPInstanceUID", {"SOPInstanceUID": b"1.2.03.4"}, "UID"),
    ("SOPInstanceUID", {"SOPInstanceUID": b""}, "missing"),
    ("SOPClassUID", {"SOPClassUID": b"1.2.840.10008.5.1.4.1.1.1 CR"}, "UID"),
    ("FrameOfReferenceUID", {"FrameOfReferenceUID": b"1.2..3"}, "UID"),
    # Specific Character Set (CS, defined terms of PS3.3 C.12.1.1.2)
    ("SpecificCharacterSet", {"SpecificCharacterSet": b"ISO_IR 999"}, "C.12.1.1.2"),
    ("SpecificCharacterSet", {"SpecificCharacterSet": b"ISO_IR 100\\ISO_IR 192"}, "C.12.1.1.2"),
    ("SpecificCharacterSet", {"SpecificCharacterSet": b"iso_ir 100"}, "CS"),
    # Dates and times (DA, TM)
    ("StudyDate", {"StudyDate": b"2024-13-45"}, "DA"),
    ("StudyDate", {"StudyDate": b"20240231"}, "DA"),  # the right shape, not a date
    ("StudyDate", {"StudyDate": b"20240101-20240201"}, "DA"),  # a range is for queries only
    ("StudyTime", {"StudyTime": b"12:30:00"}, "TM"),
    ("StudyTime", {"StudyTime": b"2500"}, "TM"),
    ("PatientBirthDate", {"PatientBirthDate": b"19451399"}, "DA"),
    ("PatientBirthTime", {"PatientBirthTime": b"2461"}, "TM"),
    # Person names (PN): at most 3 component groups of 64 characters, 5 components each
    ("PatientName", {"PatientName": b"DOE^JOHN=A=B=C"}, "component groups"),
    ("PatientName", {"PatientName": b"DOE^JOHN^A^B^C^D"}, "components"),
    ("PatientName", {"PatientName": b"DOE^" + b"J" * 70}, "64"),
    ("PatientName", {"PatientName": b"DOE\x07^JOHN"}, "control character"),
    ("OtherPatientNames", {"OtherPatientNames": b"DOE^" + b"J" * 70}, "64"),
    ("ReferringPhysicianName", {"ReferringPhysicianName": b"R=E=F=X"}, "component groups"),
    # Identifiers (LO, SH, CS): length, control characters, value multiplicity
    ("PatientID", {"PatientID": b"7" * 65}, "LO"),
    ("PatientID", {"PatientID": b"12\t34"}, "control character"),
    ("PatientID", {"PatientID": b"123\\456"}, "values"),
    ("IssuerOfPatientID", {"IssuerOfPatientID": b"I" * 65}, "LO"),
    ("TypeOfPatientID", {"TypeOfPatientID": b"text"}, "CS"),
    ("AccessionNumber", {"AccessionNumber": b"A" * 17}, "SH"),
    ("StudyID", {"StudyID": b"S" * 17}, "SH"),
    # Character repertoire: no Specific Character Set means the default repertoire (ASCII)
    ("PatientName", {"PatientName": b"M\xfcller^Hans"}, "repertoire"),
    ("StudyDescription", {"StudyDescription": b"Thorax p.a. \xfcbersicht"}, "repertoire"),
    # Numbers copied as they are (DS)
    ("PatientWeight", {"PatientWeight": b"seventy"}, "DS"),
    ("PatientSize", {"PatientSize": b"1,75"}, "DS"),
    ("LossyImageCompressionRatio", {"LossyImageCompressionRatio": b"10:1"}, "DS"),
    # Descriptive text that pydicom's own checks miss (reference_header would copy it)
    ("StudyDescription", {"StudyDescription": b"CHEST\x1aPA"}, "control character"),
    ("LastMenstrualDate", {"LastMenstrualDate": b"20230229"}, "DA"),
    # Inside the sequences the outputs copy whole
    ("OtherPatientIDsSequence[0].PatientID", {"OtherPatientIDsSequence": [_item(PatientID=b"9" * 65)]}, "LO"),
    ("ProcedureCodeSequence[0].CodeValue", {"ProcedureCodeSequence": [_item(CodeValue=b"C" * 17)]}, "SH"),
    (
        "ReferencedStudySequence[0].ReferencedSOPInstanceUID",
        {"ReferencedStudySequence": [_item(ReferencedSOPInstanceUID=ESCAPED_STUDY)]},
        "UID",
    ),
]


@pytest.mark.parametrize(
    "keyword, changes, rule", INVALID_IDENTITY, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(INVALID_IDENTITY)]
)
def test_an_invalid_copied_attribute_fails_with_a_reason_naming_it(keyword, changes, rule):
    problem = identity_problem(_received(changes))
    assert _names(problem, keyword), problem
    assert rule in problem, problem
    assert "PS3." in problem or "missing" in problem, problem  # the rule's section


PHI = [
    ("PatientName", b"SECRETNAME^" + b"X" * 60, "SECRETNAME"),
    ("PatientName", b"SECRETNAME^A=B=C=D", "SECRETNAME"),
    ("PatientName", b"M\xfcller^SECRETNAME", "SECRETNAME"),
    ("PatientID", b"SECRETID" * 9, "SECRETID"),
    ("PatientID", b"SECRETID\\OTHER", "SECRETID"),
    ("IssuerOfPatientID", b"SECRETISSUER" * 6, "SECRETISSUER"),
    ("PatientBirthDate", b"1945-05-08", "1945"),
    ("PatientBirthDate", b"19451399", "1945"),
    ("OtherPatientNames", b"SECRETOTHER=A=B=C", "SECRETOTHER"),
    ("AccessionNumber", b"SECRETACCESSION42", "SECRETACCESSION"),
    ("StudyID", b"SECRETSTUDYID4242", "SECRETSTUDYID"),
    ("ReferringPhysicianName", b"SECRETDOCTOR^" + b"X" * 60, "SECRETDOCTOR"),
    ("StudyDate", b"2024-13-45", "2024"),
    ("StudyInstanceUID", b"1.2.SECRETNAME", "SECRETNAME"),
]


@pytest.mark.parametrize("keyword, value, secret", PHI, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(PHI)])
def test_reasons_never_show_patient_or_study_values(keyword, value, secret):
    """Reasons reach the journal and the log: they say what is wrong, never the value."""
    problem = identity_problem(_received({keyword: value}))
    assert _names(problem, keyword), problem
    assert secret.lower() not in problem.lower(), problem


def test_values_in_copied_sequences_are_not_shown_either():
    items = [_item(PatientID=b"SECRETOTHERID" * 5, IssuerOfPatientID=b"HOSPITAL")]
    problem = identity_problem(_received({"OtherPatientIDsSequence": items}))
    assert "OtherPatientIDsSequence[0].PatientID" in problem and "SECRETOTHERID" not in problem


def test_bytes_not_valid_in_the_declared_character_set_fail():
    data = _part10({"SpecificCharacterSet": b"ISO_IR 192", "PatientName": b"Mueller^Hans"})
    data = data.replace(b"Mueller^Hans", b"M\xfcller^Hans ")  # Latin-1 bytes, not UTF-8 (same length)
    problem = identity_problem(pydicom.dcmread(BytesIO(data)))
    assert _names(problem, "PatientName") and "ISO_IR 192" in problem, problem
    assert "ller" not in problem


def test_a_valid_latin1_name_passes_where_the_character_set_declares_it():
    ds = _received({"SpecificCharacterSet": b"ISO_IR 100", "PatientName": b"M\xfcller^Hans"})
    assert str(ds.PatientName) == "Müller^Hans"
    assert identity_problem(ds) == ""


def test_absent_or_empty_type_2_attributes_pass():
    changes = {keyword: b"" for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "StudyTime")}
    assert identity_problem(_received({**changes, "AccessionNumber": None, "ReferringPhysicianName": None})) == ""


def test_private_and_unknown_elements_in_copied_sequences_are_checked_by_their_vr():
    item = _item(CodeValue=b"1234", CodingSchemeDesignator=b"99LOCAL", CodeMeaning=b"Chest PA")
    item.add_new(0x00090010, "LO", "ACME 1.0")  # private creator
    item.add_new(0x00091001, "LO", "private value")
    item.add_new(0x00089999, "LO", "a tag no dictionary knows")
    assert identity_problem(_received({"ProcedureCodeSequence": [item]})) == ""
    item.add_new(0x00091002, "SH", "S" * 17)
    problem = identity_problem(_received({"ProcedureCodeSequence": [item]}))
    assert problem.startswith("ProcedureCodeSequence[0].(0009,1002) is 17 characters long"), problem


def test_several_problems_are_all_named():
    problem = identity_problem(_received({"StudyDate": b"2024-13-45", "AccessionNumber": b"A" * 17}))
    assert _names(problem, "StudyDate") and _names(problem, "AccessionNumber")


@pytest.mark.parametrize("sex", [b"X", b"U", b"male", b"M\\F"])
def test_patient_sex_outside_m_f_o_is_emptied_not_failed(sex):
    """Patient's Sex is copied only as M, F or O (PS3.3 C.7.1.1); any other value is emptied by
    reference_header (Type 2) and the receipt goes on."""
    ds = _received({"PatientSex": sex})
    assert identity_problem(ds) == ""
    assert not reference_header(ds).PatientSex


def test_descriptive_values_that_reference_header_empties_do_not_fail():
    """An invalid value that the outputs drop (emptied, never sent to the PACS) is no reason to
    lose the result: a patient age without its unit is common (the SIIM image has "62")."""
    ds = _received({"PatientAge": b"62", "StudyDescription": b"D" * 65, "BodyPartExamined": b"chest"})
    assert identity_problem(ds) == ""
    header = reference_header(ds)
    assert not header.PatientAge and not header.StudyDescription and not header.BodyPartExamined


# --- Every attribute the outputs copy: an invalid value fails the receipt or is dropped -------

# Attributes the builders take from the source beside the modules highdicom copies: SOP Common,
# General Image (Secondary Capture), Frame of Reference (SEG) and the Contributing Equipment item.
EXTRA_COPIED = (
    "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "SpecificCharacterSet",
    "PatientOrientation", "BodyPartExamined", "LossyImageCompression", "LossyImageCompressionMethod",
    "LossyImageCompressionRatio", "FrameOfReferenceUID", "PositionReferenceIndicator",
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "DeviceSerialNumber", "InstitutionName",
    "InstitutionalDepartmentName", "InstitutionAddress", "StationName", "AcquisitionDateTime",
)
# Invalid values by VR: one that pydicom's own check finds (reference_header empties those),
# one that it misses (so reference_header would copy it).
INVALID_BY_VR = {
    "AS": [b"62", b"062"],
    "CS": [b"lower case", b"C" * 17],
    "DA": [b"2024-13-45", b"20240231"],
    "DS": [b"seventy", b"1,75"],
    "DT": [b"2024-13-45", b"20240231120000"],
    "LO": [b"L" * 65, b"A\x07B"],
    "LT": [b"T" * 10241, b"A\x00B"],
    "PN": [b"A=B=C=D", b"A^B^C^D^E^F"],
    "SH": [b"S" * 17, b"A\x1bB\x07"],
    "ST": [b"T" * 1025, b"A\x01B"],
    "TM": [b"25:61", b"1200-1300"],
    "UC": [b"A\x07B"],
    "UI": [b"1.2.03", b"1." + b"2" * 70],
    "UT": [b"A\x07B"],
}


def _copied_module_attributes() -> list[str]:
    """Root attributes of the modules that highdicom copies into every output from the source
    (Patient and Study information entities, Specimen) for CR, DX and SC sources."""
    from highdicom._standard_utils import get_iod_module_map, get_module_attribute_map, get_sop_class_iod_map

    iods, modules, attributes = get_sop_class_iod_map(), get_iod_module_map(), get_module_attribute_map()
    keywords: set[str] = set()
    for sop_class in (
        pydicom.uid.ComputedRadiographyImageStorage,
        pydicom.uid.DigitalXRayImageStorageForPresentation,
        pydicom.uid.DigitalXRayImageStorageForProcessing,
        pydicom.uid.SecondaryCaptureImageStorage,
    ):
        for module in modules[iods[sop_class]]:
            if module["ie"] in ("Patient", "Study") or module["key"] == "specimen":
                keywords |= {str(item["keyword"]) for item in attributes[module["key"]] if not item["path"]}
    return sorted(keywords | set(EXTRA_COPIED))


def _checkable(keywords: list[str]) -> list[str]:
    return [keyword for keyword in keywords if dictionary_VR(keyword) in {*INVALID_BY_VR, "SQ"}]


def test_the_copied_attributes_left_unchecked_are_binary():
    """Pregnancy Status (US) and Longitudinal Temporal Offset (FD) have no text to break."""
    unchecked = set(_copied_module_attributes()) - set(_checkable(_copied_module_attributes()))
    assert {dictionary_VR(keyword) for keyword in unchecked} <= {"US", "SS", "UL", "SL", "FL", "FD"}, unchecked


@pytest.mark.parametrize("keyword", _checkable(_copied_module_attributes()))
def test_no_invalid_copied_value_reaches_an_output(keyword):
    """Each attribute the outputs copy, with invalid values for its VR: the receipt fails naming
    it, or reference_header (through which every output takes the source's header) drops it."""
    vr = dictionary_VR(keyword)
    if vr == "SQ":
        items = [_item(CodeValue=b"C" * 17), _item(CodeMeaning=b"A\x07B")]
        for item in items:
            problem = identity_problem(_received({keyword: [item]}))
            assert keyword in problem, f"{keyword}: {problem!r}"
        return
    for value in INVALID_BY_VR[vr]:
        ds = _received({keyword: value})
        problem = identity_problem(ds)
        if not _names(problem, keyword):
            assert not reference_header(ds).get(keyword), f"{keyword}={value!r} would be sent as it is"
