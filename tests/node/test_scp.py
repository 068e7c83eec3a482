"""The Storage SCP over real DICOM associations: pynetdicom and dcmtk's storescu as peers."""

import socket
import subprocess

import pydicom
import pytest
from pynetdicom import AE, _config
from pynetdicom.sop_class import (
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    Verification,
)

from dicom_node.config import load_settings
from dicom_node.journal import Journal, State
from dicom_node.scp import OUT_OF_RESOURCES, start_scp
from dicom_node.spool import Spool
from tests.conftest import DICOM_DATA, require_path, require_tool
from tests.servers import LOOPBACK, c_store, free_port

J2K_CR = DICOM_DATA / "cr_mono1_j2k_lossy_philips.dcm"


@pytest.fixture(autouse=True)
def restore_storage_negotiation(monkeypatch):
    """start_scp turns on pynetdicom's process-wide unrestricted storage service; turn it back
    off after each test so that other SCPs in this process (tests.servers.storage_scp) negotiate
    against their own tables."""
    monkeypatch.setattr(_config, "UNRESTRICTED_STORAGE_SERVICE", _config.UNRESTRICTED_STORAGE_SERVICE)


@pytest.fixture
def scp(tmp_path):
    """Our SCP in this process: (settings, spool, receipt ids stored, server)."""
    settings = load_settings(
        ae_title="TEST_NODE", host=LOOPBACK, port=free_port(), spool=tmp_path,
        allow=[f"SENDER@{LOOPBACK}", f"STORESCU@{LOOPBACK}"],
    )
    journal = Journal(settings.journal_path)
    spool = Spool(settings.spool, journal)
    stored: list[str] = []
    server = start_scp(settings, spool, stored.append)
    yield settings, spool, stored, server
    server.shutdown()
    journal.close()


@pytest.fixture
def node(scp):
    settings, spool, stored, _ = scp
    return settings, spool, stored


def send(settings, path, calling_ae="SENDER"):
    return c_store(path, settings.port, settings.ae_title, calling_ae)


def test_store_spools_the_instance_as_received(node):
    settings, spool, stored = node
    source = require_path(J2K_CR)
    assert send(settings, source) == 0x0000
    assert len(stored) == 1
    receipt = spool.journal.get(stored[0])
    assert receipt.state == State.RECEIVED and receipt.calling_ae == "SENDER"
    assert receipt.called_ae == "TEST_NODE"
    original, spooled = pydicom.dcmread(source), pydicom.dcmread(spool.instance_path(receipt))
    assert spooled.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID  # not re-encoded
    assert spooled.PixelData == original.PixelData
    assert receipt.sop_instance_uid == original.SOPInstanceUID


def test_unknown_calling_ae_is_rejected_at_association(node):
    settings, _, stored = node
    assert send(settings, require_path(J2K_CR), calling_ae="INTRUDER") is None
    assert stored == []


def test_echo(node):
    settings, _, _ = node
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(Verification)
    association = ae.associate(LOOPBACK, settings.port, ae_title=settings.ae_title)
    assert association.is_established
    assert association.send_c_echo().Status == 0x0000
    association.release()


def test_journal_failure_answers_out_of_resources_and_keeps_nothing(node):
    settings, spool, stored = node
    spool.journal.close()
    assert send(settings, require_path(J2K_CR)) == OUT_OF_RESOURCES
    assert stored == []
    assert not [p for p in (settings.spool / "instances").rglob("*") if p.is_file()]


def test_storescu_sends_several_images_on_one_association(node, fuji_cr, tmp_path):
    settings, spool, stored = node
    program = require_tool("storescu")
    copy = pydicom.dcmread(fuji_cr)
    copy.SOPInstanceUID = pydicom.uid.generate_uid()
    copy.save_as(tmp_path / "copy.dcm")
    files = [str(fuji_cr), str(tmp_path / "copy.dcm"), str(require_path(DICOM_DATA / "dx_canine_lateral_negative.dcm"))]
    subprocess.run(
        [program, "-aet", "STORESCU", "-aec", settings.ae_title, LOOPBACK, str(settings.port), *files],
        check=True, capture_output=True, timeout=60,
    )
    assert len(stored) == 3
    uids = {spool.journal.get(r).sop_instance_uid for r in stored}
    assert uids == {pydicom.dcmread(f).SOPInstanceUID for f in files}


def test_accepted_associations_send_without_nagle_delay(scp):
    settings, _, _, server = scp
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(Verification)
    association = ae.associate(LOOPBACK, settings.port, ae_title=settings.ae_title)
    try:
        assert association.is_established
        accepted = server.active_associations[0].dul.socket.socket
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        association.release()


def test_private_storage_classes_are_spooled_and_other_services_refused(node, fuji_cr, tmp_path):
    settings, spool, stored = node
    private = pydicom.dcmread(fuji_cr)
    private.SOPClassUID = private.file_meta.MediaStorageSOPClassUID = "1.3.12.2.1107.5.9.1"  # a vendor's storage
    private.save_as(tmp_path / "private.dcm", enforce_file_format=True)
    assert send(settings, tmp_path / "private.dcm") == 0x0000
    assert spool.journal.get(stored[0]).sop_class_uid == "1.3.12.2.1107.5.9.1"
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
    association = ae.associate(LOOPBACK, settings.port, ae_title=settings.ae_title)
    assert not association.is_established  # the only context was refused, so the requestor aborts
    assert [context.result for context in association.rejected_contexts] == [0x03]  # abstract syntax not supported


def test_worklist_queries_are_answered_unable_to_process_and_nothing_is_spooled(node):
    """pynetdicom's unrestricted storage accepts the Modality Worklist context (it does not know
    it under pydicom's name); a C-FIND on it is answered 0xC311 and stores nothing."""
    settings, _, stored = node
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(ModalityWorklistInformationFind)
    association = ae.associate(LOOPBACK, settings.port, ae_title=settings.ae_title)
    assert association.is_established
    query = pydicom.Dataset()
    query.PatientName = ""
    statuses = [status.Status for status, _ in association.send_c_find(query, ModalityWorklistInformationFind)]
    association.release()
    assert statuses == [0xC311]
    assert stored == []
