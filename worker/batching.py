"""celery-batches for a worker that scores beside its consumer: a partly filled batch waits while
the worker's scoring threads are busy (worker.process runs the inference worker's tasks on
``scoring_threads`` threads)."""

import threading
from collections.abc import Collection
from typing import Any

from celery.worker.request import Request
from celery_batches import Batches


class FillWhileScoring(Batches):
    """A :class:`celery_batches.Batches` task whose timed flush waits while a batch is being scored.

    celery-batches flushes its buffer when it holds ``flush_every`` requests, and every
    ``flush_interval`` whatever it holds. With the scoring on threads of its own, the timed flush
    would queue many one-image batches behind those being scored; here it waits while
    ``at_once`` batches are being scored, so the images that arrived meanwhile go to the device
    as one batch. (Uses the buffer of celery-batches 0.x, ``Batches._buffer``.)"""

    at_once = 1  # batches scored at the same time (worker.tasks.take_batches)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._scoring = 0  # batches handed to the pool and not yet finished

    def _do_flush(self) -> None:
        with self._lock:
            busy = self._scoring >= self.at_once
        if busy and self._buffer.qsize() < self.flush_every:
            return
        super()._do_flush()

    def flush(self, requests: Collection[Request]) -> Any:
        with self._lock:
            self._scoring += 1
        return super().flush(requests)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        finally:
            with self._lock:
                self._scoring = max(0, self._scoring - 1)
