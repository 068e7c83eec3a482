"""The embedded broker under faults (issue 11): two nodes on one host each keep their own; a
killed broker is started again and nothing is lost; a node killed mid-batch leaves no orphan
redis-server, and after a restart every acknowledged image is delivered."""

import os
import signal
import subprocess
import time

import pydicom
from pydicom.uid import generate_uid

from tests.servers import (
    DICOM_NODE,
    c_store,
    free_port,
    listening,
    node_process,
    node_status,
    storage_scp,
    wait_until,
)

NODE_AET = "TEST_NODE"
LOOPBACK = "127.0.0.1"


def _arguments(spool, port, destination) -> list[str]:
    return [  # no --broker-url: the embedded default
        "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(port), "--spool", str(spool),
        "--untrained", "--destination", str(destination), "--outputs", "sr",
    ]


def _copies(source, folder, count: int) -> list:
    """``count`` copies of a radiograph, each its own instance (own SOP Instance UID)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        ds = pydicom.dcmread(source)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(folder / f"{index}.dcm", enforce_file_format=True)
        paths.append(folder / f"{index}.dcm")
    return paths


def _all_delivered(spool, count: int) -> bool:
    receipts = node_status(spool)
    return len(receipts) == count and all(r["state"] == "delivered" for r in receipts)


def _broker_pid(spool) -> int:
    return int((spool / "redis" / "redis.pid").read_text())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


def test_two_nodes_with_embedded_defaults_on_one_host_each_deliver_everything(tmp_path, fuji_cr):
    images = _copies(fuji_cr, tmp_path / "images", 4)
    spools, ports = [tmp_path / "a" / "spool", tmp_path / "b" / "spool"], [free_port(), free_port()]
    with (
        storage_scp() as (destination, received),
        node_process(tmp_path / "a", _arguments(spools[0], ports[0], destination)),
        node_process(tmp_path / "b", _arguments(spools[1], ports[1], destination)),
    ):
        for port in ports:
            wait_until(lambda p=port: listening(p), 60, "both nodes to listen")
        assert (spools[0] / "redis" / "broker.url").read_text() != (spools[1] / "redis" / "broker.url").read_text()
        for index, image in enumerate(images):
            assert c_store(image, ports[index % 2], NODE_AET) == 0x0000
        for spool in spools:
            wait_until(lambda s=spool: _all_delivered(s, 2), 180, "each node to deliver its two images")
    assert len({uid for uid, _, _ in received}) == 4  # one SR per image


def test_a_killed_broker_is_started_again_and_nothing_is_lost(tmp_path, fuji_cr, node_port):
    spool = tmp_path / "spool"
    images = _copies(fuji_cr, tmp_path / "images", 3)
    with storage_scp() as (destination, received):
        with node_process(tmp_path / "node", _arguments(spool, node_port, destination)) as node:
            wait_until(lambda: listening(node_port), 60, "the node to listen")
            first = _broker_pid(spool)
            for image in images:
                assert c_store(image, node_port, NODE_AET) == 0x0000
            os.kill(first, signal.SIGKILL)  # queued work in the broker is lost with it
            wait_until(lambda: _broker_pid(spool) != first and _alive(_broker_pid(spool)), 30, "a new broker")
            wait_until(lambda: _all_delivered(spool, 3), 180, "every image delivered")
            current, started = _broker_pid(spool), time.monotonic()
            os.kill(node.pid, signal.SIGTERM)
            assert node.wait(timeout=60) == 0  # a bounded, clean shutdown
            assert time.monotonic() - started < 60
        assert not _alive(current) and not (spool / "redis" / "redis.pid").exists()
    assert len({uid for uid, _, _ in received}) == 3


def test_a_node_killed_mid_batch_leaves_no_orphan_and_delivers_after_restart(tmp_path, fuji_cr, node_port):
    spool = tmp_path / "spool"
    images = _copies(fuji_cr, tmp_path / "images", 4)
    with storage_scp() as (destination, received):
        arguments = _arguments(spool, node_port, destination)
        with node_process(tmp_path / "first", arguments) as node:
            wait_until(lambda: listening(node_port), 60, "the node to listen")
            broker = _broker_pid(spool)
            for image in images:
                assert c_store(image, node_port, NODE_AET) == 0x0000  # acknowledged: on disk
            os.kill(node.pid, signal.SIGKILL)  # the node alone, not its process group
            node.wait(timeout=10)
            wait_until(lambda: not _alive(broker), 10, "the broker to die with its node")
        with node_process(tmp_path / "second", arguments):
            wait_until(lambda: _all_delivered(spool, 4), 240, "every acknowledged image delivered")
    assert len({uid for uid, _, _ in received}) == 4  # each image's SR is in the PACS


def test_a_broker_that_cannot_be_started_again_stops_the_node_with_a_failure_status(tmp_path, node_port):
    """The broker dies and its folder has become unusable: five restarts fail, and the node exits
    non-zero (so that systemd's Restart=on-failure starts it afresh) instead of serving on
    without a broker."""
    spool = tmp_path / "spool"
    arguments = ["--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port), "--spool", str(spool),
                 "--untrained"]
    with node_process(tmp_path / "node", arguments) as node:
        wait_until(lambda: listening(node_port), 60, "the node to listen")
        broker = _broker_pid(spool)
        (spool / "redis").rename(spool / "redis-moved")
        (spool / "redis").write_text("a file where the broker's folder was")
        os.kill(broker, signal.SIGKILL)
        assert node.wait(timeout=120) == 1
    assert "could not be restarted" in (tmp_path / "node" / "serve.log").read_text()


def test_a_second_node_on_the_same_spool_refuses_to_start(tmp_path, fuji_cr):
    """One spool, one node: a second node given the same spool (a copy-pasted unit, a manual start
    beside the service) must not take the first one's broker, files or receipts."""
    spool, port = tmp_path / "spool", free_port()
    with storage_scp() as (destination, received), node_process(
        tmp_path / "first", _arguments(spool, port, destination)
    ):
        wait_until(lambda: listening(port), 60, "the first node to listen")
        second = subprocess.run(
            [*DICOM_NODE, "serve", *_arguments(spool, free_port(), destination)],
            capture_output=True, text=True, timeout=120,
        )
        assert second.returncode == 2
        assert f"another dicom-node is serving the spool {spool}" in " ".join(second.stderr.split())  # unwrapped
        assert c_store(fuji_cr, port, NODE_AET) == 0x0000  # the first node goes on as before
        wait_until(lambda: _all_delivered(spool, 1), 300, "the first node to deliver")
        assert len(received) == 1
        assert "embedded broker (redis-server) exited" not in (tmp_path / "first" / "serve.log").read_text()
