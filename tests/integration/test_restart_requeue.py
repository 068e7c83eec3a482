"""A restarted node re-queues each pending receipt once (issue 11): chains that the broker still
holds from before the restart are recognised as superseded and do no work, so N pending images
cost N inferences, not 2N."""

import re

from tests.servers import LOOPBACK, c_store, listening, node_process, node_status, wait_until

NODE_AET = "TEST_NODE"
IMAGES = 3


def _tasks(log: str, task: str, outcome: str) -> int:
    return len(re.findall(rf"Task worker\.tasks\.{task}\[[0-9a-f-]+\] {outcome}", log))


def test_a_restarted_node_runs_each_pending_chain_once(tmp_path, fuji_cr, broker_url, node_port):
    spool = tmp_path / "spool"
    arguments = [
        "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port), "--spool", str(spool),
        "--broker-url", broker_url, "--untrained",
    ]
    with node_process(tmp_path / "first", [*arguments, "--no-worker"]):  # receives and queues, no worker
        wait_until(lambda: listening(node_port), 60, "the node to listen")
        for _ in range(IMAGES):
            assert c_store(fuji_cr, node_port, NODE_AET) == 0x0000
        wait_until(lambda: [r["state"] for r in node_status(spool)] == ["queued"] * IMAGES, 60, "queued")
    log_path = tmp_path / "second" / "serve.log"
    with node_process(tmp_path / "second", arguments):  # the broker still holds the first chains
        def drained() -> bool:
            log = log_path.read_text() if log_path.exists() else ""
            finished = _tasks(log, "prepare", "(succeeded|ignored)")
            return finished == 2 * IMAGES and _tasks(log, "deliver", "succeeded") == IMAGES
        wait_until(drained, 300, "both generations of chains to be handled")
        log = log_path.read_text()
    assert [r["state"] for r in node_status(spool)] == ["scored"] * IMAGES
    assert len(re.findall(r"infer: receipt \S+ scored", log)) == IMAGES  # one inference per image
    assert _tasks(log, "prepare", "ignored") == IMAGES  # the superseded chains stop at once
