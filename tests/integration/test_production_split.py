"""The production split: the node without a worker, a "node" queue worker beside it and an
"inference" worker that shares nothing with them but the broker (its own empty folder as spool)."""

import subprocess

from tests.conftest import require_tool
from tests.servers import LOOPBACK, listening, node_process, node_status, storescp_server, wait_until

NODE_AET = "TEST_NODE"


def test_node_and_inference_workers_split(tmp_path, fuji_cr, broker_url, node_port):
    storescu = require_tool("storescu")
    spool = tmp_path / "spool"
    elsewhere = tmp_path / "gpu-machine"
    with storescp_server(tmp_path / "received", "RESULTS") as destination_port:
        shared = tmp_path / "dicom-node.toml"  # the node and its node-queue worker share one configuration
        shared.write_text(
            f'spool = "{spool}"\nbroker_url = "{broker_url}"\ndestination = "RESULTS@{LOOPBACK}:{destination_port}"\n'
        )
        node_arguments = [
            "--config", str(shared), "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port),
            "--no-worker", "--untrained",
        ]
        node_worker = ["--queues", "node", "--config", str(shared)]
        inference_worker = [
            "--queues", "inference", "--spool", str(elsewhere / "no-spool"), "--broker-url", broker_url, "--untrained",
        ]
        with (
            node_process(tmp_path / "node", node_arguments),
            node_process(tmp_path / "workers", node_worker, "worker", log_name="node-queue"),
            node_process(elsewhere, inference_worker, "worker", log_name="inference-queue"),
        ):
            wait_until(lambda: listening(node_port), 60, "the node to listen")
            subprocess.run(
                [storescu, "-aet", "MODALITY", "-aec", NODE_AET, LOOPBACK, str(node_port), str(fuji_cr)],
                check=True, capture_output=True, timeout=60,
            )
            wait_until(lambda: node_status(spool)[0]["state"] == "delivered", 180, "delivery", interval=1.0)
    inference_log = (elsewhere / "inference-queue.log").read_text()
    node_log = (tmp_path / "workers" / "node-queue.log").read_text()
    assert "infer: a batch of 1" in inference_log and "worker.tasks.prepare[" not in inference_log
    assert "worker.tasks.prepare[" in node_log and "worker.tasks.deliver[" in node_log
    assert "infer: a batch" not in node_log
    assert not (elsewhere / "no-spool").exists()  # the inference worker never touched a spool
    assert len([p for p in (tmp_path / "received").rglob("*") if p.is_file()]) == 4
