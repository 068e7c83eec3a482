"""Prepared model inputs kept in the broker's Redis beside the messages that name them (issue 13).

A prepared image is 512 KiB of equalisation codes. Carried inside its task message, it cost an
inference worker's consumer about 5 ms of work under the GIL per image (kombu decodes the
message's JSON, and encodes it again for its store of unacknowledged messages), beside the one
thread that drives the GPU: a batch of 32 took 128 ms on the device instead of 35
(docs/benchmarks.md). So ``prepare`` stores the codes as one binary value under a key of its
receipt's chain, and the message (a few hundred bytes of JSON) only describes them; ``infer``
reads a batch's values in one ``MGET`` and deletes them once their results are queued.

The values live in the broker's own Redis, reached with the broker connection's settings
(password, TLS) through kombu's Redis transport, so they go wherever the messages go. Each
expires after :data:`KEPT_S` so that none outlives a lost message; the intake's
``max_in_flight`` bounds how many exist at once. A message whose value is gone (expired, evicted,
or queued by a node before this store existed) has its receipt prepared again.
"""

from collections.abc import Sequence

import redis
from celery import Celery

KEY_PREFIX = "dicom-node:model-input"
KEPT_S = 24 * 3600  # a backlog longer than a day has its images prepared again


def model_input_key(receipt_id: str, token: str) -> str:
    """The Redis key of the model input prepared by ``receipt_id``'s chain ``token``."""
    return f"{KEY_PREFIX}:{receipt_id}:{token}"


class ModelInputStore:
    """Model inputs as binary Redis values, each under :func:`model_input_key`."""

    def __init__(self, client: redis.Redis, kept_s: int = KEPT_S) -> None:
        self._client, self._kept_s = client, kept_s

    @classmethod
    def of_broker(cls, app: Celery) -> "ModelInputStore":
        """The store in the Redis of ``app``'s broker, connected as kombu connects to it."""
        channel = app.connection_for_write().default_channel
        if not hasattr(channel, "conn_or_acquire"):
            raise RuntimeError(f"model inputs are kept in the broker's Redis: {app.conf.broker_url} is not Redis")
        with channel.conn_or_acquire() as client:
            return cls(client)

    def put(self, key: str, data: bytes) -> None:
        self._client.set(key, data, ex=self._kept_s)

    def take(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys`` in one round trip; None for a key that is gone."""
        return list(self._client.mget(keys)) if keys else []

    def discard(self, keys: Sequence[str]) -> None:
        if keys:
            self._client.delete(*keys)
