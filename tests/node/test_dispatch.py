"""Sending outputs by C-STORE over a real association, and TCP_NODELAY on the node's sockets."""

import logging
import socket
import threading
import time
from io import BytesIO
from types import SimpleNamespace

import pydicom
import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import SegmentationStorage

from dicom_node.config import Destination
from dicom_node.dispatch import DispatchError, send_instances
from dicom_node.tcp import disable_nagle
from tests.conftest import DICOM_DATA, require_path
from tests.servers import LOOPBACK, free_port, storage_scp

J2K_CR = DICOM_DATA / "cr_mono1_j2k_lossy_philips.dcm"
META_GROUP_LENGTH_END = 128 + 4 + 12  # preamble, "DICM", (0002,0000) UL element


def test_instances_arrive_in_their_own_transfer_syntax_byte_for_byte():
    part10 = require_path(J2K_CR).read_bytes()
    original = pydicom.dcmread(BytesIO(part10))
    with storage_scp() as (destination, received):
        send_instances([part10], destination, "NODE")
    _, syntax, data = received[0]
    assert syntax == original.file_meta.TransferSyntaxUID
    assert data == part10[META_GROUP_LENGTH_END + original.file_meta.FileMetaInformationGroupLength :]


def test_a_refused_store_is_a_dispatch_error():
    with storage_scp(answer=0xA700) as (destination, _), pytest.raises(DispatchError, match="0xA700"):
        send_instances([require_path(J2K_CR).read_bytes()], destination, "NODE")


def test_a_sop_class_the_destination_does_not_take_is_a_dispatch_error_after_the_others(tmp_path):
    radiograph = require_path(J2K_CR).read_bytes()
    segmentation = pydicom.dcmread(BytesIO(radiograph))
    segmentation.SOPClassUID = segmentation.file_meta.MediaStorageSOPClassUID = SegmentationStorage
    segmentation.save_as(tmp_path / "seg.dcm", enforce_file_format=True)
    cr_only = [pydicom.dcmread(BytesIO(radiograph)).SOPClassUID]
    refused = pytest.raises(DispatchError, match="Segmentation")
    with storage_scp(sop_classes=cr_only) as (destination, received), refused:
        send_instances([radiograph, (tmp_path / "seg.dcm").read_bytes()], destination, "NODE")
    assert len(received) == 1


def test_nobody_listening_is_a_refused_connection():
    port = free_port()
    with pytest.raises(DispatchError, match=f"connection refused.*{LOOPBACK}:{port}"):
        send_instances([require_path(J2K_CR).read_bytes()], Destination.parse(f"PACS@{LOOPBACK}:{port}"), "NODE")


def test_a_rejected_association_says_why():
    """A PACS that does not know our calling AE rejects the association (PS3.8 9.3.4)."""
    rejected = pytest.raises(DispatchError, match=r"rejected by PACS@.*Calling AE title not recognised")
    with storage_scp(require_calling_ae="SOMEONE_ELSE") as (destination, _), rejected:
        send_instances([require_path(J2K_CR).read_bytes()], destination, "NODE")


def test_a_peer_that_drops_the_connection_is_an_abort():
    with socket.create_server((LOOPBACK, 0)) as listener:
        port = listener.getsockname()[1]
        dropper = threading.Thread(target=lambda: listener.accept()[0].close(), daemon=True)
        dropper.start()
        with pytest.raises(DispatchError, match="aborted"):
            send_instances([require_path(J2K_CR).read_bytes()], Destination.parse(f"PACS@{LOOPBACK}:{port}"), "NODE")


class _PauseAfterEachStore(logging.Handler):
    """A busy node: it pauses after each "stored ..." line, long enough for its association's
    reactor to notice what the peer did meanwhile."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("stored "):
            time.sleep(0.2)


def test_a_peer_gone_between_two_stores_is_a_dispatch_error(caplog):
    """A PACS that goes away between two C-STOREs of one association (pynetdicom then refuses to
    send the second, with a RuntimeError) is a failed delivery attempt to retry."""
    radiograph = require_path(J2K_CR).read_bytes()
    second = pydicom.dcmread(BytesIO(radiograph))
    second.SOPInstanceUID = second.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    buffer = BytesIO()
    second.save_as(buffer, enforce_file_format=True)

    def close_after_the_answer(event: evt.Event) -> None:
        """The PACS's process dies right after it wrote its first C-STORE answer (a P-DATA-TF)."""
        if event.data[:1] == b"\x04":
            event.assoc.dul.socket.socket.shutdown(socket.SHUT_RDWR)

    ae = AE(ae_title="PACS")
    ae.add_supported_context(second.SOPClassUID, second.file_meta.TransferSyntaxUID)
    handlers = [(evt.EVT_C_STORE, lambda event: 0x0000), (evt.EVT_DATA_SENT, close_after_the_answer)]
    server = ae.start_server((LOOPBACK, 0), block=False, evt_handlers=handlers)
    caplog.set_level(logging.INFO, logger="dicom_node.dispatch")
    pause, dispatch_log = _PauseAfterEachStore(), logging.getLogger("dicom_node.dispatch")
    dispatch_log.addHandler(pause)
    try:
        destination = Destination.parse(f"PACS@{LOOPBACK}:{server.server_address[1]}")
        with pytest.raises(DispatchError, match="aborted"):
            send_instances([radiograph, buffer.getvalue()], destination, "NODE")
    finally:
        dispatch_log.removeHandler(pause)
        server.shutdown()


def test_disable_nagle_sets_tcp_nodelay():
    with socket.create_server((LOOPBACK, 0)) as listener, socket.create_connection(listener.getsockname()) as client:
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        disable_nagle(SimpleNamespace(assoc=SimpleNamespace(dul=SimpleNamespace(socket=SimpleNamespace(socket=client)))))
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
