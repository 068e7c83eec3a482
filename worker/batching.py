"""celery-batches for a worker that scores beside its consumer: a partly filled batch waits while
another batch is being scored (worker.process runs the inference worker's tasks on one thread)."""

import threading
from collections.abc import Collection
from typing import Any

from celery.worker.request import Request
from celery_batches import Batches


class FillWhileScoring(Batches):
    """A :class:`celery_batches.Batches` task whose timed flush waits while a batch is being scored.

    celery-batches flushes its buffer when it holds ``flush_every`` requests, and every
    ``flush_interval`` whatever it holds. With the scoring on its own thread, the timed flush
    would queue many one-image batches behind the one being scored; here it waits until that one
    is done, so the images that arrived meanwhile go to the device as one batch. (Uses the
    buffer of celery-batches 0.x, ``Batches._buffer``.)"""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._scoring = 0  # batches handed to the pool and not yet finished

    def _do_flush(self) -> None:
        with self._lock:
            scoring = self._scoring > 0
        if scoring and self._buffer.qsize() < self.flush_every:
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
