"""The journal is the source of truth: a restarted node finishes what an earlier run accepted,
and deliveries to an unreachable destination are retried with backoff, then marked failed."""

from pynetdicom import AllStoragePresentationContexts
from pynetdicom.sop_class import SegmentationStorage

from dicom_node.journal import Journal
from dicom_node.spool import Spool
from tests.servers import (
    LOOPBACK,
    c_store,
    free_port,
    listening,
    node_process,
    node_status,
    storage_scp,
    storescp_server,
    wait_until,
)

NODE_AET = "TEST_NODE"


def _node_arguments(spool, port, broker_url, destination):
    return [
        "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(port), "--spool", str(spool),
        "--broker-url", broker_url, "--untrained", "--destination", destination,
    ]


def test_restarted_node_processes_what_was_received_before(tmp_path, fuji_cr, broker_url, node_port):
    spool = tmp_path / "spool"
    journal = Journal(spool / "journal.sqlite")  # as if the node died right after answering success
    Spool(spool, journal).store(fuji_cr.read_bytes(), "MODALITY", NODE_AET, "1.2.840.10008.5.1.4.1.1.1", "1.2.3", None)
    journal.close()
    assert node_status(spool)[0]["state"] == "received"
    with storescp_server(tmp_path / "received", "RESULTS") as destination_port:
        arguments = _node_arguments(spool, node_port, broker_url, f"RESULTS@{LOOPBACK}:{destination_port}")
        with node_process(tmp_path / "node", arguments):
            wait_until(lambda: node_status(spool)[0]["state"] == "delivered", 180, "delivery after restart")
    assert len([p for p in (tmp_path / "received").rglob("*") if p.is_file()]) == 4  # SR, 2 SC, SEG


def _failed_receipt(spool) -> dict:
    (receipt,) = wait_until(lambda: [r for r in node_status(spool) if r["state"] == "failed"], 120, "delivery to fail")
    return receipt


def test_unreachable_destination_is_retried_then_failed(tmp_path, fuji_cr, broker_url, node_port):
    spool = tmp_path / "spool"
    closed_port = free_port()  # nothing listens here
    arguments = _node_arguments(spool, node_port, broker_url, f"NOBODY@{LOOPBACK}:{closed_port}")
    environment = {"DICOM_NODE_DELIVERY_GIVE_UP_AFTER": "5"}  # waits 2 + 4 s: three attempts
    with node_process(tmp_path / "node", arguments, env=environment):
        wait_until(lambda: listening(node_port), 60, "the node to listen")
        assert c_store(fuji_cr, node_port, NODE_AET) == 0x0000
        receipt = _failed_receipt(spool)
    assert receipt["attempts"] == 3
    assert f"NOBODY@{LOOPBACK}:{closed_port} failed 3 times over 6 s" in receipt["reason"]
    assert "connection refused" in receipt["reason"]
    assert receipt["global_score"] is not None  # scored; outputs kept in the spool
    assert len(list((spool / "outputs").rglob("*.dcm"))) == 4


def test_a_destination_that_refuses_one_output_class_gets_the_others_then_the_receipt_fails(
    tmp_path, fuji_cr, broker_url, node_port
):
    spool = tmp_path / "spool"
    no_seg = [cx.abstract_syntax for cx in AllStoragePresentationContexts if cx.abstract_syntax != SegmentationStorage]
    with storage_scp(sop_classes=no_seg) as (destination, received):
        arguments = _node_arguments(spool, node_port, broker_url, str(destination))
        with node_process(tmp_path / "node", arguments, env={"DICOM_NODE_DELIVERY_GIVE_UP_AFTER": "1"}):
            wait_until(lambda: listening(node_port), 60, "the node to listen")
            assert c_store(fuji_cr, node_port, NODE_AET) == 0x0000
            receipt = _failed_receipt(spool)
    assert "accepted no presentation context for Segmentation Storage" in receipt["reason"]
    assert receipt["attempts"] == 2 and receipt["global_score"] is not None
    assert len(receipt["outputs"]) == 4  # all four stored and journaled
    assert len({uid for uid, _, _ in received}) == 3  # SR and both secondary captures arrived (twice)
