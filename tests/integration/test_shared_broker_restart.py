"""The production split's shared Redis restarting empty (no persistence, or the last second of
an append-only file lost) must not strand the images it held: the node notices the restart and
re-queues every receipt not yet delivered, as it does when its embedded broker restarts."""

import os
import signal
from pathlib import Path

from tests.conftest import require_tool
from tests.servers import (
    LOOPBACK,
    c_store,
    free_port,
    listening,
    node_process,
    node_status,
    spawn,
    stop,
    storage_scp,
    wait_until,
)

NODE_AET = "TEST_NODE"
IMAGES = 2


def _redis(folder: Path, port: int):
    """redis-server on ``port`` keeping nothing on disk."""
    folder.mkdir(parents=True, exist_ok=True)
    process = spawn(
        [require_tool("redis-server"), "--bind", LOOPBACK, "--port", str(port), "--dir", str(folder),
         "--save", "", "--appendonly", "no", "--daemonize", "no"],
        folder / "redis.log",
    )
    wait_until(lambda: listening(port), 20, "redis-server")
    return process


def test_a_shared_broker_that_restarts_empty_loses_no_image(tmp_path, fuji_cr, node_port):
    spool, redis_port = tmp_path / "spool", free_port()
    broker_url = f"redis://{LOOPBACK}:{redis_port}/0"
    redis = _redis(tmp_path / "redis-first", redis_port)
    try:
        with storage_scp() as (destination, received):
            common = ["--spool", str(spool), "--broker-url", broker_url, "--untrained"]
            node_arguments = [
                "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port), "--no-worker",
                "--destination", str(destination), "--outputs", "sr", *common,
            ]
            with node_process(tmp_path / "node", node_arguments):
                wait_until(lambda: listening(node_port), 60, "the node to listen")
                for _ in range(IMAGES):
                    assert c_store(fuji_cr, node_port, NODE_AET) == 0x0000
                wait_until(lambda: [r["state"] for r in node_status(spool)] == ["queued"] * IMAGES, 60, "queued")
                os.kill(redis.pid, signal.SIGKILL)  # the queued tasks die with it
                redis.wait(timeout=10)
                redis = _redis(tmp_path / "redis-second", redis_port)
                worker_arguments = ["--queues", "node,inference", *common]
                with node_process(tmp_path / "workers", worker_arguments, "worker", {"DICOM_NODE_OUTPUTS": "sr"}):
                    wait_until(
                        lambda: [r["state"] for r in node_status(spool)] == ["delivered"] * IMAGES, 120,
                        "every image delivered after the broker's restart", interval=1.0,
                    )
            assert len(received) == IMAGES
            assert "restarted" in (tmp_path / "node" / "serve.log").read_text()
    finally:
        stop(redis)
