"""Killing the worker in the middle of scoring and starting another one still delivers exactly
one SR and one overlay (late acknowledgement + redelivery after the visibility timeout)."""

import os
import signal
import subprocess
import time

import pydicom

from tests.conftest import require_tool
from tests.servers import (
    LOOPBACK,
    listening,
    log_mentions,
    node_process,
    node_status,
    storescp_server,
    wait_until,
)

NODE_AET = "TEST_NODE"
VISIBILITY_TIMEOUT_S = 8  # a dead worker's task is delivered again after this


def test_killed_worker_job_is_redelivered_once(tmp_path, fuji_cr, broker_url, node_port):
    storescu = require_tool("storescu")
    spool = tmp_path / "spool"
    # a delivery retry waits unacknowledged in the worker: its backoff must stay below the timeout
    environment = {"DICOM_NODE_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S), "DICOM_NODE_DELIVERY_MAX_BACKOFF": "4"}
    common = ["--spool", str(spool), "--broker-url", broker_url, "--untrained"]
    workers = tmp_path / "workers"
    with storescp_server(tmp_path / "received", "RESULTS") as destination_port:
        destination = ["--destination", f"RESULTS@{LOOPBACK}:{destination_port}"]  # the node's and its workers'
        worker_arguments = ["--queues", "node,inference", *destination, *common]
        node_arguments = [
            "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port), "--no-worker", *destination, *common,
        ]
        with node_process(tmp_path / "node", node_arguments, env=environment):
            wait_until(lambda: listening(node_port), 60, "the node to listen")
            with node_process(workers, worker_arguments, "worker", environment, "first") as first:
                subprocess.run(
                    [storescu, "-aet", "MODALITY", "-aec", NODE_AET, LOOPBACK, str(node_port), str(fuji_cr)],
                    check=True, capture_output=True, timeout=60,
                )
                # the first worker has taken the inference task: kill it and its pool at once
                wait_until(lambda: log_mentions(workers / "first.log", "infer: a batch of"), 120,
                           "the first worker to start inference", interval=0.02)
                os.killpg(first.pid, signal.SIGKILL)
                first.wait(timeout=10)
            (receipt,) = node_status(spool)
            assert receipt["state"] == "queued"
            with node_process(workers, worker_arguments, "worker", environment, "second"):
                wait_until(lambda: node_status(spool)[0]["state"] == "delivered", 180,
                           "delivery by the second worker", interval=1.0)
                time.sleep(3 * VISIBILITY_TIMEOUT_S)  # room for any duplicate delivery to show
            (receipt,) = node_status(spool)
    assert receipt["state"] == "delivered"
    received = [pydicom.dcmread(p) for p in (tmp_path / "received").rglob("*") if p.is_file()]
    assert sorted(ds.Modality for ds in received) == ["OT", "OT", "SEG", "SR"]
    assert log_mentions(workers / "second.log", "infer: receipt")
