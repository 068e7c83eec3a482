"""Known senders and the limits that hold against hostile peers (issue 12), over real sockets
from two loopback addresses: 127.0.0.1 is the known sender, 127.0.0.2 a stranger. The SCP runs
in this process; the peers are pynetdicom and raw sockets speaking the first bytes of PS3.8."""

import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import BytesIO

import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import CTImageStorage

from dicom_node.config import NodeSettings, load_settings
from dicom_node.guard import COMMAND_SET_LIMIT, P_DATA_TF
from dicom_node.journal import Journal
from dicom_node.scp import start_scp
from dicom_node.spool import Spool
from tests.conftest import FUJI_CR, require_path
from tests.servers import LOOPBACK, c_store, free_port, wait_until

KNOWN, STRANGER = "127.0.0.1", "127.0.0.2"
NODE_AE = "TEST_NODE"


@pytest.fixture(autouse=True)
def restore_storage_negotiation(monkeypatch):
    """start_scp turns on pynetdicom's process-wide unrestricted storage service."""
    monkeypatch.setattr(_config, "UNRESTRICTED_STORAGE_SERVICE", _config.UNRESTRICTED_STORAGE_SERVICE)


@contextmanager
def running_scp(
    tmp_path, on_stored: Callable[[str], None] = lambda _: None, **overrides
) -> Iterator[tuple[NodeSettings, Journal, list[str]]]:
    """Our SCP on a free loopback port admitting SENDER from 127.0.0.1 (unless ``allow`` says
    otherwise): (settings, journal, receipt ids stored); ``on_stored`` runs for each instance
    stored, before its C-STORE is answered."""
    overrides.setdefault("allow", [f"SENDER@{KNOWN}"])
    settings = load_settings(ae_title=NODE_AE, host=LOOPBACK, port=free_port(), spool=tmp_path, **overrides)
    journal = Journal(settings.journal_path)
    stored: list[str] = []

    def store(receipt_id: str) -> None:
        stored.append(receipt_id)
        on_stored(receipt_id)

    server = start_scp(settings, Spool(settings.spool, journal), store)
    try:
        yield settings, journal, stored
    finally:
        server.shutdown()
        journal.close()


def partial_association_request(port: int, source: str) -> socket.socket:
    """A connection that sends the first bytes of an A-ASSOCIATE-RQ (PS3.8 9.3.2) announcing
    more than it sends, as a slow-loris peer does."""
    connection = socket.create_connection((LOOPBACK, port), source_address=(source, 0))
    body = struct.pack(">HH", 1, 0) + NODE_AE.ljust(16).encode() + b"SENDER".ljust(16)
    connection.sendall(struct.pack(">BBL", 0x01, 0, 68 + 200) + body[:10])
    return connection


def closed_by_node(connection: socket.socket) -> bool:
    """Whether the node has closed ``connection`` (end of stream or reset), without waiting."""
    connection.setblocking(False)
    try:
        return connection.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_a_listed_ae_title_from_an_unlisted_address_is_rejected(tmp_path):
    with running_scp(tmp_path) as (settings, _, stored):
        cr = require_path(FUJI_CR)
        assert c_store(cr, settings.port, NODE_AE, "SENDER", source=STRANGER) is None
        assert c_store(cr, settings.port, NODE_AE, "INTRUDER", source=KNOWN) is None
        assert stored == []
        assert c_store(cr, settings.port, NODE_AE, "SENDER", source=KNOWN) == 0x0000
        assert len(stored) == 1


def test_associations_that_ended_free_their_slots(tmp_path):
    with running_scp(tmp_path, max_associations=3, max_associations_per_peer=3) as (settings, _, stored):
        cr = require_path(FUJI_CR)
        statuses = [c_store(cr, settings.port, NODE_AE, "SENDER", source=KNOWN) for _ in range(8)]
        assert statuses == [0x0000] * 8 and len(stored) == 8


def test_results_are_routed_by_the_entry_that_admitted_the_sender(tmp_path):
    allow = [
        {"ae_title": "SENDER", "addresses": [KNOWN], "destination": "NEAR@127.0.0.1:11112"},
        {"ae_title": "SENDER", "addresses": [f"{STRANGER}/32"], "destination": "FAR@127.0.0.1:11113"},
    ]
    with running_scp(tmp_path, allow=allow) as (settings, journal, stored):
        cr = require_path(FUJI_CR)
        assert c_store(cr, settings.port, NODE_AE, "SENDER", source=STRANGER) == 0x0000
        assert c_store(cr, settings.port, NODE_AE, "SENDER", source=KNOWN) == 0x0000
        assert [journal.get(receipt).destination for receipt in stored] == [
            "FAR@127.0.0.1:11113", "NEAR@127.0.0.1:11112"
        ]


def test_trickling_association_requests_do_not_lock_out_a_known_sender(tmp_path):
    limits = {"max_associations": 6, "max_associations_per_peer": 3, "negotiation_timeout": 120}
    with running_scp(tmp_path, **limits) as (settings, _, stored):
        attackers = [partial_association_request(settings.port, STRANGER) for _ in range(11)]
        try:
            refused = wait_until(
                lambda: sum(closed_by_node(connection) for connection in attackers) >= 8, 30,
                "the node to refuse the stranger's connections beyond its cap",
            )
            assert refused
            assert c_store(require_path(FUJI_CR), settings.port, NODE_AE, "SENDER", source=KNOWN) == 0x0000
            assert len(stored) == 1
            still_held = [connection for connection in attackers if not closed_by_node(connection)]
            assert len(still_held) == 3  # the stranger kept its three slots all along
        finally:
            for connection in attackers:
                connection.close()


def test_a_trickled_request_is_cut_at_the_negotiation_deadline(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="dicom_node.guard")
    with running_scp(tmp_path, negotiation_timeout=1) as (settings, _, _):
        connection = partial_association_request(settings.port, STRANGER)
        stop = threading.Event()

        def trickle() -> None:  # one byte every 0.2 s, each well within any per-read timeout
            while not stop.wait(0.2):
                try:
                    connection.send(b"\x00")
                except OSError:
                    return

        threading.Thread(target=trickle, daemon=True).start()
        try:
            wait_until(lambda: closed_by_node(connection), 60, "the node to cut the trickling connection")
        finally:
            stop.set()
            connection.close()
    assert "negotiation_timeout" in caplog.text


def test_a_pdu_longer_than_allowed_is_refused_from_its_header(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="dicom_node.guard")
    with running_scp(tmp_path, max_pdu_size=16384, negotiation_timeout=120) as (settings, _, stored):
        connection = socket.create_connection((LOOPBACK, settings.port), source_address=(STRANGER, 0))
        connection.sendall(struct.pack(">BBL", 0x01, 0, 2**31))  # an A-ASSOCIATE-RQ "of 2 GB"
        try:
            wait_until(lambda: closed_by_node(connection), 30, "the node to refuse a 2 GB PDU")
        finally:
            connection.close()
        # a sender that ignores the Maximum Length the node announced (PS3.8 D.1)
        ae = AE(ae_title="SENDER")
        ae.add_requested_context(CTImageStorage)
        association = ae.associate(LOOPBACK, settings.port, ae_title=NODE_AE, bind_address=(KNOWN, 0))
        assert association.is_established and association.acceptor.maximum_length == 16384
        fragment = struct.pack(">LBB", 2 + 20000, 1, 0x00) + bytes(20000)  # one PDV item, dataset
        association.dul.socket.send(struct.pack(">BBL", 0x04, 0, len(fragment)) + fragment)
        wait_until(lambda: association.is_aborted, 30, "the node to cut the association")
        assert stored == []
    assert "above max_pdu_size (16,384)" in caplog.text


def node_takes(connection: socket.socket, total: int) -> bool:
    """Whether the node reads ``total`` bytes sent on ``connection`` instead of closing it."""
    chunk = bytes(2**20)
    try:
        for _ in range(total // len(chunk)):
            connection.sendall(chunk)
    except OSError:
        return False
    return True


def test_a_pdu_of_unknown_type_is_refused_before_anything_else_is_read(tmp_path, caplog):
    """An unknown PDU type (PS3.8 9.3) must not put the limits out of step with pynetdicom, which
    reads on after it: here a stranger's 2 GB P-DATA-TF would be read whole into memory."""
    caplog.set_level(logging.WARNING, logger="dicom_node.guard")
    with running_scp(tmp_path, max_pdu_size=16384, negotiation_timeout=120) as (settings, _, stored):
        connection = socket.create_connection((LOOPBACK, settings.port), source_address=(STRANGER, 0))
        try:
            connection.sendall(struct.pack(">BBL", 0x08, 0, 0) + struct.pack(">BBL", P_DATA_TF, 0, 0x7FFFFFF0))
            assert not node_takes(connection, 64 * 2**20)
        finally:
            connection.close()
        assert stored == []
    assert "PDU of unknown type 0x08" in caplog.text


def test_a_command_set_over_its_limit_is_refused(tmp_path, caplog):
    """Command fragments (PS3.8 E.2, control header bit 0 set) are kept until the last one: a
    sender that never marks one last must be cut, not buffered without end."""
    caplog.set_level(logging.WARNING, logger="dicom_node.guard")
    with running_scp(tmp_path, max_pdu_size=16384) as (settings, _, stored):
        ae = AE(ae_title="SENDER")
        ae.add_requested_context(CTImageStorage)
        association = ae.associate(LOOPBACK, settings.port, ae_title=NODE_AE, bind_address=(KNOWN, 0))
        assert association.is_established
        fragment = struct.pack(">LBB", 2 + 16000, 1, 0x01) + bytes(16000)  # a command fragment, not the last
        try:
            for _ in range(4 * 2**20 // len(fragment)):
                association.dul.socket.send(struct.pack(">BBL", P_DATA_TF, 0, len(fragment)) + fragment)
        except (OSError, AttributeError):  # the node cut it: pynetdicom closed (and dropped) its socket
            pass
        wait_until(lambda: association.is_aborted, 30, "the node to cut the association")
        assert stored == []
    assert f"command set above {COMMAND_SET_LIMIT:,} bytes" in caplog.text


def test_a_dataset_over_the_size_limit_is_refused(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="dicom_node.guard")
    with running_scp(tmp_path, max_dataset_size_mb=1) as (settings, _, stored):
        dataset = pydicom.dcmread(require_path(FUJI_CR))
        dataset.PixelData = bytes(2 * 2**20)  # 2 MB of pixel data
        dataset.Rows, dataset.Columns = 1024, 1024
        large = tmp_path / "large.dcm"
        dataset.save_as(large, enforce_file_format=True)
        assert c_store(large, settings.port, NODE_AE, "SENDER", source=KNOWN) is None
        assert stored == []
        assert c_store(require_path(FUJI_CR), settings.port, NODE_AE, "SENDER", source=KNOWN) == 0x0000
    assert "above max_dataset_size_mb (1 MB)" in caplog.text


def test_an_open_node_says_so_loudly_at_start(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="dicom_node.scp")
    with running_scp(tmp_path, allow=[]):
        pass
    assert "NO ALLOW-LIST: any host that reaches" in caplog.text
    assert "NO TLS" not in caplog.text  # plain TCP on loopback is the walkthrough's set-up
    caplog.clear()
    with running_scp(tmp_path / "known"):
        pass
    assert "NO ALLOW-LIST" not in caplog.text


def store_request_items(dataset: pydicom.Dataset, context_id: int, message_id: int) -> list[bytes]:
    """The PDV items (PS3.8 9.3.5.1: length, context ID, control header, fragment) of a C-STORE
    request for ``dataset`` in implicit VR little endian, its command set and data set each one
    last fragment."""
    request = C_STORE()
    request.MessageID, request.Priority = message_id, 2
    request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = dataset.SOPClassUID, dataset.SOPInstanceUID
    request.DataSet = BytesIO(encode(dataset, True, True))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    items = []
    for p_data in message.encode_msg(context_id, 2**24):
        for pdv_context, value in p_data.presentation_data_value_list:
            items.append(struct.pack(">LB", len(value) + 1, pdv_context) + value)
    return items


def test_a_sender_that_sends_a_request_before_the_last_is_answered_is_cut(tmp_path, caplog):
    """The node performs one operation at a time (no asynchronous operations window is negotiated:
    PS3.7 D.3.3.3, one outstanding request): a sender that sends the next C-STORE request while the
    last one is being stored would have pynetdicom queue every request it pipelines, dataset and
    all, without bound, so it is cut. Here the first request's answer is held (its instance stored,
    the answer not yet sent) until the node has cut the connection on the second's arrival; two
    requests each sent after the last one's answer are served first."""
    caplog.set_level(logging.WARNING, logger="dicom_node.guard")
    dataset = pydicom.dcmread(require_path(FUJI_CR))
    storing, second_sent = threading.Event(), threading.Event()

    def hold_the_third(receipt_id: str) -> None:
        if len(stored) == 3:
            storing.set()
            second_sent.wait(30)

    with running_scp(tmp_path, hold_the_third) as (settings, _, stored):
        ae = AE(ae_title="SENDER")
        ae.add_requested_context(dataset.SOPClassUID, ImplicitVRLittleEndian)
        association = ae.associate(LOOPBACK, settings.port, ae_title=NODE_AE, bind_address=(KNOWN, 0))
        assert association.is_established
        for _ in range(2):
            assert association.send_c_store(dataset).Status == 0x0000
        context_id = association.accepted_contexts[0].context_id
        try:
            for message_id in (3, 4):
                body = b"".join(store_request_items(dataset, context_id, message_id))
                association.dul.socket.send(struct.pack(">BBL", P_DATA_TF, 0, len(body)) + body)
                if message_id == 3:
                    assert storing.wait(30), "the node to store the first pipelined request"
            # the third request's answer is still held: the fourth must be refused as it arrives
            wait_until(lambda: association.is_aborted, 20, "the node to cut the association")
        finally:
            second_sent.set()
        assert len(stored) == 3
    assert "a request while 1 is outstanding" in caplog.text
