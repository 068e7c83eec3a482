"""Task messages are kept in Redis as JSON text (issue 13). kombu's Redis transport encodes every
message body in base64 by default: a third more bytes in the broker for each prepared image, and
a base64 decode under the GIL for each message an inference worker's consumer takes, beside the
thread that drives the GPU (docs/benchmarks.md)."""

import json

import pydicom
import redis

from inference.preprocessing import prepare_dataset
from worker.app import INFERENCE_QUEUE, app
from worker.messages import Prepared
from worker.serialization import encode_prepared
from worker.tasks import infer


def test_a_prepared_image_is_kept_in_the_broker_as_json_text_and_read_back(broker, fuji_cr):
    sent = Prepared("receipt", "token", encode_prepared(prepare_dataset(pydicom.dcmread(fuji_cr))), 0.5)
    infer.delay(sent.to_json())
    client = redis.Redis.from_url(broker)
    lists = [key for key in client.keys(f"{INFERENCE_QUEUE}*") if client.type(key) == b"list" and client.llen(key)]
    (stored,) = [client.lindex(key, 0) for key in lists]
    envelope = json.loads(stored)
    assert envelope["properties"]["body_encoding"] == "utf-8"
    assert len(stored) < 1.05 * len(json.dumps(sent.to_json()))
    with app.connection_for_read() as connection:
        message = app.amqp.queues[INFERENCE_QUEUE](connection.default_channel).get(no_ack=True)
    assert Prepared.from_json(message.decode()[0][0]) == sent
