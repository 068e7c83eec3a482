"""Sending outputs by C-STORE over a real association, and TCP_NODELAY on the node's sockets."""

import socket
from io import BytesIO
from types import SimpleNamespace

import pydicom
import pytest
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

from dicom_node.config import Destination
from dicom_node.dispatch import DispatchError, send_instances
from dicom_node.tcp import disable_nagle
from tests.conftest import DICOM_DATA, require_path
from tests.servers import LOOPBACK

J2K_CR = DICOM_DATA / "cr_mono1_j2k_lossy_philips.dcm"


@pytest.fixture
def destination():
    """A pynetdicom Storage SCP answering ``answer["status"]``; yields (Destination, received, answer)."""
    received: list[tuple[str, pydicom.Dataset]] = []
    answer = {"status": 0x0000}

    def handle_store(event):
        received.append((event.context.transfer_syntax, event.dataset))
        return answer["status"]

    ae = AE(ae_title="PACS")
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    server = ae.start_server((LOOPBACK, 0), block=False, evt_handlers=[(evt.EVT_C_STORE, handle_store)])
    yield Destination.parse(f"PACS@{LOOPBACK}:{server.server_address[1]}"), received, answer
    server.shutdown()


def test_instances_arrive_in_their_own_transfer_syntax_not_re_encoded(destination):
    target, received, _ = destination
    compressed = require_path(J2K_CR).read_bytes()
    send_instances([compressed], target, "NODE")
    original = pydicom.dcmread(BytesIO(compressed))
    syntax, arrived = received[0]
    assert syntax == original.file_meta.TransferSyntaxUID
    assert arrived.SOPInstanceUID == original.SOPInstanceUID
    assert arrived.PixelData == original.PixelData  # the JPEG 2000 codestream itself


def test_a_refused_store_is_a_dispatch_error(destination):
    target, _, answer = destination
    answer["status"] = 0xA700
    with pytest.raises(DispatchError, match="0xA700"):
        send_instances([require_path(J2K_CR).read_bytes()], target, "NODE")


def test_nobody_listening_is_a_dispatch_error():
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    with pytest.raises(DispatchError, match="not established"):
        send_instances([require_path(J2K_CR).read_bytes()], Destination.parse(f"PACS@{LOOPBACK}:{port}"), "NODE")


def test_disable_nagle_sets_tcp_nodelay():
    with socket.create_server((LOOPBACK, 0)) as listener, socket.create_connection(listener.getsockname()) as client:
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        disable_nagle(SimpleNamespace(assoc=SimpleNamespace(dul=SimpleNamespace(socket=SimpleNamespace(socket=client)))))
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
