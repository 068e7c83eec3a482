"""Triage: frontal chest CR/DX (any SOP class) queued, everything else skipped with a reason."""

import pydicom
import pytest

from dicom_node.triage import size_problem, triage
from tests.conftest import CHEST_RADIOGRAPHS, DICOM_DATA, require_path


@pytest.mark.parametrize("name", sorted(CHEST_RADIOGRAPHS))
def test_real_frontal_chest_radiographs_are_accepted(name):
    decision = triage(pydicom.dcmread(require_path(DICOM_DATA / name)))
    assert decision.accept, decision.reason


def test_the_canine_lateral_thorax_is_skipped():
    ds = pydicom.dcmread(require_path(DICOM_DATA / "dx_canine_lateral_negative.dcm"))
    decision = triage(ds)
    assert not decision.accept and "human" in decision.reason


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"Modality": "MR"}, "modality MR"),
        ({"Modality": "OT"}, "modality OT"),
        ({"ViewPosition": "LL"}, "view position LL"),
        ({"BodyPartExamined": "HAND"}, "body part HAND"),
        ({"SeriesDescription": "Chest lateral"}, "lateral"),
        ({"Manufacturer": "dicom-node"}, "output of dicom-node"),
        ({"PatientSpeciesDescription": "Canis lupus familiaris"}, "human"),
        ({"SamplesPerPixel": 3, "PhotometricInterpretation": "RGB"}, "MONOCHROME"),
        ({"NumberOfFrames": 4}, "frames"),
    ],
)
def test_other_images_are_skipped_with_a_reason(fuji_cr, changes, reason):
    ds = pydicom.dcmread(fuji_cr)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    decision = triage(ds)
    assert not decision.accept
    assert reason in decision.reason


def test_missing_pixel_data_and_unset_tags(fuji_cr):
    ds = pydicom.dcmread(fuji_cr)
    del ds.BodyPartExamined, ds.ViewPosition
    assert triage(ds).accept  # unset body part and view are accepted
    del ds.PixelData
    assert triage(ds).reason == "no pixel data"


def test_secondary_capture_carrying_cr_is_accepted(fuji_cr):
    ds = pydicom.dcmread(fuji_cr)
    ds.SOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    assert triage(ds).accept


def test_images_above_the_pixel_limit_are_refused_before_decoding():
    ds = pydicom.dcmread(require_path(DICOM_DATA / next(iter(CHEST_RADIOGRAPHS))), stop_before_pixels=True)
    assert size_problem(ds, 50_000_000) == ""
    ds.Rows = ds.Columns = 12000  # a small file may declare a huge image
    assert "12000 x 12000 pixels, above the limit of 50,000,000" in size_problem(ds, 50_000_000)


# --- Identity of the outputs (issue "Validated relays") --------------------------------------
