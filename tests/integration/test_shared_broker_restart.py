"""The production split's shared Redis restarting empty (no persistence, or the last second of
an append-only file lost) must not strand the images it held: the node notices the restart and
re-queues every receipt not yet delivered, as it does when its embedded broker restarts."""

from contextlib import ExitStack

from tests.servers import (
    LOOPBACK,
    c_store,
    free_port,
    listening,
    node_process,
    node_status,
    redis_server,
    storage_scp,
    wait_until,
)

NODE_AET = "TEST_NODE"
IMAGES = 2


def test_a_shared_broker_that_restarts_empty_loses_no_image(tmp_path, fuji_cr, node_port):
    spool, redis_port = tmp_path / "spool", free_port()
    with ExitStack() as brokers, storage_scp() as (destination, received):
        first_broker = brokers.enter_context(ExitStack())  # closed early, or with the others should the test fail
        broker_url = first_broker.enter_context(redis_server(tmp_path / "redis-first", redis_port))
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
            first_broker.close()  # the queued tasks end with it: it keeps nothing on disk
            brokers.enter_context(redis_server(tmp_path / "redis-second", redis_port))
            worker_arguments = ["--queues", "node,inference", "--destination", str(destination), *common]
            with node_process(tmp_path / "workers", worker_arguments, "worker", {"DICOM_NODE_OUTPUTS": "sr"}):
                wait_until(
                    lambda: [r["state"] for r in node_status(spool)] == ["delivered"] * IMAGES, 120,
                    "every image delivered after the broker's restart", interval=1.0,
                )
        assert len(received) == IMAGES
        assert "restarted" in (tmp_path / "node" / "serve.log").read_text()
