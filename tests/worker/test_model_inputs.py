"""A prepared image's model input travels beside its task message, in the broker's Redis, not
inside it (issue 13; worker.model_inputs). Inside the message, every image cost the inference
worker's consumer about 5 ms under the GIL (kombu decodes its JSON and encodes it again for its
store of unacknowledged messages), beside the thread that drives the GPU."""

import json
import re

import numpy as np
import pydicom
import redis

from inference.preprocessing import prepare_dataset
from tests.servers import node_process, wait_until
from worker import runtime
from worker.app import INFERENCE_QUEUE, NODE_QUEUE, app
from worker.messages import Prepared
from worker.model_inputs import KEY_PREFIX, model_input_key
from worker.serialization import decode_prepared, encode_prepared
from worker.tasks import infer, queue_for_scoring

MESSAGE_LIMIT = 2048  # bytes of a queued Prepared message, envelope included (683 KiB with the image inside)


def _queued(client: redis.Redis, queue: str) -> list[bytes]:
    lists = [key for key in client.keys(f"{queue}*") if client.type(key) == b"list"]
    return [item for key in lists for item in client.lrange(key, 0, -1)]


def test_a_prepared_image_is_queued_as_a_small_message_with_its_model_input_beside_it(broker, fuji_cr):
    prepared = prepare_dataset(pydicom.dcmread(fuji_cr))
    queue_for_scoring("receipt", "token", prepared, 0.5)
    client = redis.Redis.from_url(broker)
    (stored,) = _queued(client, INFERENCE_QUEUE)
    assert json.loads(stored)["properties"]["body_encoding"] == "utf-8"
    assert len(stored) < MESSAGE_LIMIT, len(stored)
    with app.connection_for_read() as connection:
        message = app.amqp.queues[INFERENCE_QUEUE](connection.default_channel).get(no_ack=True)
    queued = Prepared.from_json(message.decode()[0][0])
    assert (queued.receipt_id, queued.token, queued.compute_s) == ("receipt", "token", 0.5)
    (codes,) = runtime.model_inputs().take([model_input_key("receipt", "token")])
    decoded = decode_prepared(queued.prepared, codes)
    np.testing.assert_array_equal(decoded.model_input, prepared.model_input)
    assert decoded.mapping == prepared.mapping
    assert client.ttl(model_input_key("receipt", "token")) > 0


def _log(path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def test_model_inputs_are_deleted_once_scored_and_a_lost_one_is_prepared_again(tmp_path, broker, fuji_cr):
    """Two images are queued; the model input of the second is lost (as an eviction, an expiry or
    a message queued by an older node would lose it). The first is scored, the second goes back
    to ``prepare`` under its chain token, and no model input is left in the broker."""
    prepared = prepare_dataset(pydicom.dcmread(fuji_cr))
    header, _ = encode_prepared(prepared)
    queue_for_scoring("kept", "token-1", prepared, 0.0)
    infer.delay(Prepared("lost", "token-2", header, 0.0).to_json())
    client = redis.Redis.from_url(broker)
    assert client.keys(f"{KEY_PREFIX}:*") == [model_input_key("kept", "token-1").encode()]
    log = tmp_path / "worker" / "inference.log"
    arguments = [
        "--queues", "inference", "--untrained", "--broker-url", broker, "--spool", str(tmp_path / "spool"),
        "--batch-size", "2", "--batch-wait-ms", "1000",
    ]
    with node_process(tmp_path / "worker", arguments, "worker", log_name="inference"):
        wait_until(lambda: "infer: receipt kept scored" in _log(log), 300, "the kept image scored")
        wait_until(lambda: not client.keys(f"{KEY_PREFIX}:*"), 30, "the batch's model inputs deleted")
    assert re.findall(r"infer: a batch of (\d+)", _log(log)) == ["2"], _log(log)
    assert "model input of receipt lost is no longer in the broker: preparing it again" in _log(log)
    with app.connection_for_read() as connection:
        queue = app.amqp.queues[NODE_QUEUE](connection.default_channel)
        sent = [queue.get(no_ack=True) for _ in range(2)]
    tasks = {message.headers["task"]: message for message in sent}
    assert tasks["worker.tasks.prepare"].decode()[0] == ["lost", "token-2"]
    assert tasks["worker.tasks.deliver"].decode()[0][0]["receipt_id"] == "kept"
    # the result is not copied into the headers as Celery's repr of the arguments
    assert tasks["worker.tasks.deliver"].headers["argsrepr"] == "<scored kept>"
