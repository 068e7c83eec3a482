"""Poison inputs (issue 11): malformed and hostile instances, made here with pydicom from a real
chest CR, are each accepted on disk and end ``failed`` or ``skipped`` with a reason, within a
bounded time, with one log line each and no retry loop; the node keeps serving. Identity values
that would be copied into the outputs (a Study Instance UID that is a relative path, an impossible
Study Date) fail the receipt and never reach the PACS, which does receive a valid radiograph's."""

import copy
import re
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pynetdicom import AE
from pynetdicom import _config as pynetdicom_config

from tests.conftest import CHEST_RADIOGRAPHS, DICOM_DATA, require_path
from tests.servers import LOOPBACK, c_store, listening, node_process, node_status, storescp_server, wait_until

NODE_AET = "TEST_NODE"
FINAL = {"failed", "skipped"}
ESCAPED_STUDY = "../../../ESCAPED_STUDY"  # a Study Instance UID that is a path out of any folder
ESCAPING = "Study Instance UID escaping its folder"
BAD_STUDY_DATE = "Study Date 2024-13-45"


def _part10(ds: Dataset) -> bytes:
    buffer = BytesIO()
    with _lenient_writing():
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


class _lenient_writing:
    """Let pydicom write values that break their VR, as a faulty modality would."""

    def __enter__(self) -> None:
        self.mode = pydicom_config.settings.writing_validation_mode
        pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE

    def __exit__(self, *_: object) -> None:
        pydicom_config.settings.writing_validation_mode = self.mode


def _edited(base: Dataset, change: Callable[[Dataset], None]) -> bytes:
    ds = copy.deepcopy(base)
    change(ds)
    return _part10(ds)


def _patch_length(data: bytes, tag: bytes, vr: bytes, length: int) -> bytes:
    """Set the 16-bit length of the first explicit-VR element ``tag`` + ``vr`` in ``data``."""
    at = data.index(tag + vr) + 6
    return data[:at] + length.to_bytes(2, "little") + data[at + 2 :]


def _broken_sequence(base: Dataset) -> bytes:
    """A sequence whose length ends it inside its item: what follows is read from mid-element."""
    ds = copy.deepcopy(base)
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "X1", "99TEST", "test"
    ds.ProcedureCodeSequence = [item]
    data = _part10(ds)
    start = data.index(b"\x08\x00\x32\x10SQ")  # (0008,1032)
    length_at = start + 8  # tag, "SQ", two reserved bytes
    return data[:length_at] + (12).to_bytes(4, "little") + data[length_at + 4 :]


def _corrupt_codestream(path: Path) -> bytes:
    """An encapsulated radiograph whose codestream header (after its start marker) is noise.
    (Damage inside entropy-coded data that a decoder tolerates decodes to a damaged image and
    cannot be told from a real one; a header the decoder cannot parse must end ``failed``.)"""
    ds = pydicom.dcmread(path)
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    noise = bytes((i * 151 + 7) % 256 for i in range(62))
    ds.PixelData = pydicom.encaps.encapsulate([frame[:2] + noise + frame[64:]])
    return _part10(ds)


def hostile_inputs(base: Dataset, fuji: bytes) -> dict[str, bytes]:
    """At least 25 malformed or hostile instances, each a Part 10 file's bytes."""
    j2k, jpeg = DICOM_DATA / "cr_mono1_j2k_lossy_philips.dcm", DICOM_DATA / "sc_cr_jpeg_baseline_siim.dcm"
    rows, columns = int(base.Rows), int(base.Columns)

    def put(keyword: str, value: object) -> Callable[[Dataset], None]:
        return lambda ds: setattr(ds, keyword, value)

    def raw(keyword: str, value: bytes) -> Callable[[Dataset], None]:
        """Store ``value`` as the element's bytes, unchecked (pydicom would refuse it as a value)."""
        tag = Tag(keyword)
        value += b" " * (len(value) % 2)
        element = RawDataElement(tag, dictionary_VR(tag), len(value), value, 0, False, True)
        return lambda ds: ds.__setitem__(tag, element)

    def drop(keyword: str) -> Callable[[Dataset], None]:
        return lambda ds: delattr(ds, keyword)

    def tiny(ds: Dataset) -> None:
        ds.Rows = ds.Columns = 8
        ds.PixelData = bytes(8 * 8 * 2)

    def voi_lut_without_data(ds: Dataset) -> None:
        lut = Dataset()
        lut.LUTDescriptor = [4096, 0, 16]
        ds.VOILUTSequence = [lut]

    def modality_lut_too_short(ds: Dataset) -> None:
        lut = Dataset()
        lut.LUTDescriptor, lut.ModalityLUTType = [4096, 0, 16], "US"
        lut.add_new("LUTData", "OW", bytes(6))  # 3 entries where the descriptor promises 4096
        ds.ModalityLUTSequence = [lut]

    return {
        "truncated in the pixel data": fuji[: len(fuji) - 40_000],
        "truncated in the header": fuji[:420],
        "element length past the end": _patch_length(fuji, b"\x08\x00\x90\x10", b"LO", 0xFFF0),
        "malformed sequence": _broken_sequence(base),
        "non-numeric Window Center": _edited(base, raw("WindowCenter", b"abc")),
        "zero Window Width": _edited(base, put("WindowWidth", "0")),
        "non-numeric Rescale Slope": _edited(base, raw("RescaleSlope", b"x")),
        "unknown Specific Character Set": _edited(base, raw("SpecificCharacterSet", b"ISO_IR 999")),
        "missing Study Instance UID": _edited(base, drop("StudyInstanceUID")),
        "missing Series Instance UID": _edited(base, drop("SeriesInstanceUID")),
        "Study Instance UID of 80 letters": _edited(base, raw("StudyInstanceUID", b"x" * 80)),
        ESCAPING: _edited(base, raw("StudyInstanceUID", ESCAPED_STUDY.encode())),
        BAD_STUDY_DATE: _edited(base, raw("StudyDate", b"2024-13-45")),
        "Rows larger than the pixel data": _edited(base, put("Rows", rows * 2)),
        "Columns smaller than the pixel data": _edited(base, put("Columns", columns - 10)),
        "claimed 65535 x 65535": _edited(base, lambda ds: setattr(ds, "Rows", 65535) or setattr(ds, "Columns", 65535)),
        "Bits Stored above Bits Allocated": _edited(base, put("BitsStored", 20)),
        "Bits Allocated 12": _edited(base, put("BitsAllocated", 12)),
        "RGB with one sample": _edited(base, put("PhotometricInterpretation", "RGB")),
        "PALETTE COLOR without a palette": _edited(base, put("PhotometricInterpretation", "PALETTE COLOR")),
        "MONOCHROME3": _edited(base, put("PhotometricInterpretation", "MONOCHROME3")),
        "three samples, data for one": _edited(base, put("SamplesPerPixel", 3)),
        "two frames claimed, one sent": _edited(base, put("NumberOfFrames", 2)),
        "no pixel data": _edited(base, drop("PixelData")),
        "empty pixel data": _edited(base, put("PixelData", b"")),
        "8 x 8 pixels": _edited(base, tiny),
        "RLE transfer syntax on native pixels": fuji.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.5\x00", 1),
        "VOI LUT without LUT data": _edited(base, voi_lut_without_data),
        "Modality LUT shorter than its descriptor": _edited(base, modality_lut_too_short),
        "corrupt JPEG 2000 codestream": _corrupt_codestream(require_path(j2k)),
        "corrupt JPEG baseline codestream": _corrupt_codestream(require_path(jpeg)),
    }


def _send_raw(path: Path, port: int) -> int | None:
    """C-STORE a file's bytes as they are (pynetdicom's chunked send does not decode them)."""
    meta = pydicom.dcmread(path, stop_before_pixels=True, force=True).file_meta
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
    association = ae.associate(LOOPBACK, port, ae_title=NODE_AET)
    if not association.is_established:
        return None
    try:
        return association.send_c_store(path).Status
    finally:
        association.release()


@pytest.fixture
def chunked_sends(monkeypatch):
    monkeypatch.setattr(pynetdicom_config, "STORE_SEND_CHUNKED_DATASET", True)


def test_every_hostile_input_ends_failed_or_skipped_with_a_reason(
    tmp_path, broker_url, node_port, chunked_sends
):
    fuji_path = require_path(DICOM_DATA / next(iter(CHEST_RADIOGRAPHS)))
    fuji = fuji_path.read_bytes()
    inputs = hostile_inputs(pydicom.dcmread(fuji_path), fuji)
    assert len(inputs) >= 25
    folder = tmp_path / "inputs"
    folder.mkdir()
    spool = tmp_path / "spool"
    with storescp_server(tmp_path / "pacs", "PACS") as pacs_port:
        arguments = [
            "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port), "--spool", str(spool),
            "--broker-url", broker_url, "--untrained", "--destination", f"PACS@{LOOPBACK}:{pacs_port}",
        ]
        with node_process(tmp_path / "node", arguments) as node:
            wait_until(lambda: listening(node_port), 60, "the node to listen")
            sent = {}
            for index, (name, data) in enumerate(inputs.items()):
                path = folder / f"{index:02d}.dcm"
                path.write_bytes(data)
                sent[name] = _send_raw(path, node_port)
            accepted = [name for name, status in sent.items() if status == 0x0000]
            assert len(accepted) >= 25, sent  # C-STORE success: on disk, and it will be processed

            def settled() -> list[dict]:
                receipts = node_status(spool)
                return receipts if len(receipts) == len(accepted) and all(
                    r["state"] in FINAL | {"delivered"} for r in receipts
                ) else []

            receipts = wait_until(settled, 300, "every receipt to end in a final state")
            assert node.poll() is None
            assert c_store(fuji_path, node_port, NODE_AET) == 0x0000  # still serving

            def fuji_delivered() -> bool:
                newest = max(node_status(spool), key=lambda r: r["received_at"])
                assert newest["state"] not in FINAL, newest  # the valid radiograph goes through
                return newest["state"] == "delivered"

            wait_until(fuji_delivered, 300, "the valid radiograph's outputs to reach the PACS")
        log = (tmp_path / "node" / "serve.log").read_text()
    in_order = sorted(receipts, key=lambda r: r["received_at"])  # sent one after the other
    named = dict(zip(accepted, in_order, strict=True))
    delivered = [name for name, receipt in named.items() if receipt["state"] == "delivered"]
    assert not delivered, "; ".join(delivered)
    for receipt in in_order:
        assert receipt["reason"], receipt
        mentions = [line for line in log.splitlines() if receipt["id"] in line and re.search("fail|skip", line)]
        assert 1 <= len(mentions) <= 2, (receipt["reason"], mentions)  # one line per failure, no loop
    assert "Traceback" not in log
    _assert_never_relayed(named, tmp_path, fuji_path)


def _assert_never_relayed(named: dict[str, dict], tmp_path: Path, fuji_path: Path) -> None:
    """The instance whose Study Instance UID is a relative path, and the one with an impossible
    Study Date, end ``failed`` at triage naming the attribute; the PACS (storescp, which received
    the valid radiograph's outputs) holds nothing of that study, and no file or folder was made
    outside the test's folders."""
    for name, keyword in ((ESCAPING, "StudyInstanceUID"), (BAD_STUDY_DATE, "StudyDate")):
        receipt = named[name]
        assert receipt["state"] == "failed" and receipt["reason"].startswith("triage:"), receipt
        assert keyword in receipt["reason"] and "PS3.5" in receipt["reason"], receipt
    received = [path for path in (tmp_path / "pacs").rglob("*") if path.is_file()]
    studies = {str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID) for path in received}
    assert studies == {str(pydicom.dcmread(fuji_path, stop_before_pixels=True).StudyInstanceUID)}, studies
    assert not list(tmp_path.rglob("*ESCAPED_STUDY*"))
    for folder in (tmp_path / "pacs", tmp_path / "spool", tmp_path / "spool" / "instances", tmp_path / "node"):
        assert not (folder / ESCAPED_STUDY).resolve().exists()
