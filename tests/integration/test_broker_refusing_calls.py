"""A broker that is up but refuses a task's write (a shared Redis over its memory limit, an ACL
changed, a replica made read-only) must not strand the image: the task that could not queue the
next step keeps trying, its own message unacknowledged, and the image is delivered once the
broker takes writes again. Here the workers' Redis user loses access to the model-input keys
(``dicom-node:model-input:*``, Redis 7 ACL key patterns) while ``prepare`` runs, then gets it back."""

import redis

from tests.servers import (
    LOOPBACK,
    c_store,
    listening,
    log_mentions,
    node_process,
    node_status,
    storage_scp,
    wait_until,
)

NODE_AET = "TEST_NODE"
REFUSED = "no permissions to access one of the keys"  # Redis's NOPERM error, as the worker logs it


def test_an_image_whose_model_input_the_broker_refuses_is_delivered_once_it_accepts(
    tmp_path, fuji_cr, broker_url, node_port
):
    admin = redis.Redis.from_url(broker_url)
    common = ["--spool", str(tmp_path / "spool"), "--broker-url", broker_url, "--untrained"]
    workers = tmp_path / "workers"
    with storage_scp() as (destination, received):
        node_arguments = [
            "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port), "--no-worker",
            "--destination", str(destination), *common,
        ]
        worker_arguments = ["--queues", "node,inference", "--destination", str(destination), *common]
        with (
            node_process(tmp_path / "node", node_arguments),
            node_process(workers, worker_arguments, "worker", {"DICOM_NODE_OUTPUTS": "sr"}),
        ):
            wait_until(lambda: listening(node_port), 60, "the node to listen")
            # every key but dicom-node:* (the workers' control queues are named dicom-node-...)
            admin.execute_command("ACL", "SETUSER", "default", "resetkeys", "~[^d]*", "~dicom-node-*")
            try:
                assert c_store(fuji_cr, node_port, NODE_AET) == 0x0000
                wait_until(lambda: log_mentions(workers / "worker.log", REFUSED), 120,
                           "prepare to meet the refusal", interval=0.2)
            finally:
                admin.execute_command("ACL", "SETUSER", "default", "allkeys")
            wait_until(lambda: node_status(tmp_path / "spool")[0]["state"] == "delivered", 180,
                       "the image delivered once the broker takes writes again", interval=1.0)
    admin.close()
    assert len(received) == 1
    log = (workers / "worker.log").read_text(errors="replace")
    assert "prepare: receipt" in log and "the broker refused" in log and "trying again" in log
