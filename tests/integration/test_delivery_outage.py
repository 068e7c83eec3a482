"""Delivery outlives outages (issue 11): a destination down for longer than the old retry budget,
with a node restart in between, still gets every result; ``dicom-node retry`` re-sends failed ones."""

import subprocess

from tests.conftest import REPO_ROOT
from tests.servers import (
    DICOM_NODE,
    LOOPBACK,
    c_store,
    free_port,
    listening,
    node_process,
    node_status,
    storescp_server,
    wait_until,
)

NODE_AET = "TEST_NODE"
OLD_BUDGET_ATTEMPTS = 6  # the first attempt and five retries, 62 s, before this issue
FAST_SCHEDULE = {"DICOM_NODE_DELIVERY_MAX_BACKOFF": "1"}  # one attempt a second, same logic


def _arguments(spool, port, broker_url, destination_port):
    return [
        "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(port), "--spool", str(spool),
        "--broker-url", broker_url, "--untrained", "--destination", f"PACS@{LOOPBACK}:{destination_port}",
    ]


def _received(folder) -> int:
    return len([p for p in folder.rglob("*") if p.is_file()])


def test_an_outage_longer_than_the_old_budget_with_a_restart_in_between_is_delivered(
    tmp_path, fuji_cr, broker_url, node_port
):
    spool, pacs_port = tmp_path / "spool", free_port()  # the PACS is down: nothing listens there
    arguments = _arguments(spool, node_port, broker_url, pacs_port)
    with node_process(tmp_path / "first", arguments, env=FAST_SCHEDULE):
        wait_until(lambda: listening(node_port), 60, "the node to listen")
        assert c_store(fuji_cr, node_port, NODE_AET) == 0x0000
        wait_until(lambda: node_status(spool)[0]["attempts"] > OLD_BUDGET_ATTEMPTS, 180, "attempts past the old budget")
    (receipt,) = node_status(spool)
    assert receipt["state"] == "scored" and "connection refused" in receipt["reason"]
    outputs = receipt["outputs"]
    with storescp_server(tmp_path / "pacs", "PACS", port=pacs_port):  # the PACS is back ...
        with node_process(tmp_path / "second", arguments, env=FAST_SCHEDULE):  # ... and so is the node
            wait_until(lambda: node_status(spool)[0]["state"] == "delivered", 120, "delivery after the outage")
        assert _received(tmp_path / "pacs") == 4  # SR, overlay, explainability map, SEG
    (receipt,) = node_status(spool)
    assert receipt["outputs"] == outputs and receipt["reason"] is None


def test_retry_command_resends_failed_results(tmp_path, fuji_cr, broker_url, node_port):
    spool, pacs_port = tmp_path / "spool", free_port()
    arguments = _arguments(spool, node_port, broker_url, pacs_port)
    give_up = {**FAST_SCHEDULE, "DICOM_NODE_DELIVERY_GIVE_UP_AFTER": "2"}
    with node_process(tmp_path / "node", arguments, env=give_up):
        wait_until(lambda: listening(node_port), 60, "the node to listen")
        assert c_store(fuji_cr, node_port, NODE_AET) == 0x0000
        wait_until(lambda: node_status(spool)[0]["state"] == "failed", 120, "delivery to fail")
        with storescp_server(tmp_path / "pacs", "PACS", port=pacs_port):
            command = [*DICOM_NODE, "retry", "--failed", "--spool", str(spool), "--broker-url", broker_url]
            done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
            assert done.returncode == 0, done.stderr
            assert "resend" in done.stdout
            wait_until(lambda: node_status(spool)[0]["state"] == "delivered", 60, "delivery on request")
            assert _received(tmp_path / "pacs") == 4
    unknown = subprocess.run([*DICOM_NODE, "retry", "nosuchreceipt", "--spool", str(spool), "--broker-url", broker_url],
                             capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert unknown.returncode == 0 and "no such receipt" in unknown.stdout
