"""Which received instances are frontal chest radiographs worth scoring (issue 3, "Triage").

Accepted: Modality CR or DX (whatever the SOP class: digitised radiographs arrive as Secondary
Capture), Body Part Examined CHEST or absent (PS3.16 CID 4031 uses CHEST), View Position PA/AP
or absent (PS3.3 C.8.11.5 / C.8.19.x), a human patient, one greyscale frame. Everything else is
skipped with a reason a person can act on. An accepted image is then checked for what its
outputs would relay (:mod:`dicom_node.relays`) and for its size (:func:`size_problem`).
"""

import re
from dataclasses import dataclass

from pydicom.dataset import Dataset

from dicom_node.outputs.common import MANUFACTURER  # our outputs are never scored again
from inference.errors import UnsupportedImageError
from inference.preprocessing import check_dataset_supported

SCORED_MODALITIES = {"CR", "DX"}
CHEST_BODY_PARTS = {"CHEST", "LUNG"}
FRONTAL_VIEWS = {"PA", "AP"}
# Words in free-text descriptions that mean "not a human frontal chest radiograph".
LATERAL_WORDS = re.compile(r"\b(LAT|LATERAL|LL|RL|DECUBITUS|OBLIQUE)\b", re.IGNORECASE)
VETERINARY_WORDS = re.compile(r"\b(CANINE|FELINE|EQUINE|BOVINE|PORCINE|OVINE|VETERINARY|DOG|CAT)\b", re.IGNORECASE)
DESCRIPTIONS = ("AcquisitionDeviceProcessingDescription", "SeriesDescription", "ProtocolName", "StudyDescription")
HUMAN_SPECIES = {"HOMO SAPIENS", "HUMAN", ""}


@dataclass(frozen=True)
class TriageDecision:
    accept: bool
    reason: str  # why it was skipped ("" when accepted)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return str(value).strip() if value is not None else ""


def _view_codes(ds: Dataset) -> list[str]:
    return [str(item.get("CodeMeaning", "")) for item in ds.get("ViewCodeSequence", [])]


def skip_reason(ds: Dataset) -> str:
    """Why ``ds`` is not scored, or "" if it is a frontal chest radiograph."""
    if _text(ds, "Manufacturer") == MANUFACTURER:
        return "output of dicom-node"
    if "PixelData" not in ds:
        return "no pixel data"
    modality = _text(ds, "Modality").upper()
    if modality not in SCORED_MODALITIES:
        return f"modality {modality or 'missing'} (only CR/DX are scored)"
    species = _text(ds, "PatientSpeciesDescription").upper()
    descriptions = " ".join(_text(ds, keyword) for keyword in DESCRIPTIONS)
    if species not in HUMAN_SPECIES or VETERINARY_WORDS.search(descriptions):
        return "not a human patient (veterinary species or description)"
    body_part = _text(ds, "BodyPartExamined").upper()
    if body_part and body_part not in CHEST_BODY_PARTS:
        return f"body part {body_part} (only CHEST is scored)"
    view = _text(ds, "ViewPosition").upper()
    if view and view not in FRONTAL_VIEWS:
        return f"view position {view} (only PA/AP are scored)"
    codes = " ".join(_view_codes(ds))
    if LATERAL_WORDS.search(codes) or LATERAL_WORDS.search(descriptions):
        return "lateral or oblique view"
    try:
        check_dataset_supported(ds)
    except UnsupportedImageError as error:
        return str(error)
    return ""


def size_problem(ds: Dataset, max_pixels: int) -> str:
    """Why ``ds`` is too large to decode safely (checked on the header, before any decoding), or ""."""
    try:
        rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    except (TypeError, ValueError):
        return "Rows or Columns is not a number"
    if rows * columns > max_pixels:
        return f"image is {rows} x {columns} pixels, above the limit of {max_pixels:,} (max_pixels)"
    return ""


def triage(ds: Dataset) -> TriageDecision:
    """Decide whether ``ds`` is scored (see module docstring)."""
    reason = skip_reason(ds)
    return TriageDecision(accept=not reason, reason=reason)
