"""Running a Celery worker in this process (``dicom-node worker``, and the embedded worker of
``dicom-node serve``)."""

import os

from dicom_node.config import NodeSettings
from worker import runtime
from worker.app import INFERENCE_QUEUE, app
from worker.tasks import take_batches


def settings_for_queues(settings: NodeSettings, queues: tuple[str, ...]) -> NodeSettings:
    """The settings a worker of ``queues`` runs with: one that also serves the node queue scores
    one image at a time, one batch at a time (prefetching a batch would hold node tasks back)."""
    if INFERENCE_QUEUE in queues and len(queues) > 1:
        return settings.model_copy(update={"batch_size": 1, "scoring_threads": 1})
    return settings


def run_worker(settings: NodeSettings, queues: tuple[str, ...]) -> int:
    """Run a Celery worker for ``queues`` in this process until it stops (the app configured
    with :func:`worker.app.configure` and :func:`settings_for_queues` first); returns its exit
    status.

    A worker of the inference queue alone runs its tasks on :func:`worker.runtime.scoring_threads`
    threads beside Celery's consumer (the "threads" pool: the model and its device belong to this
    process; run one per GPU, since CUDA cannot be forked), and prefetches one batch more than it
    scores at once, so that the next batch's messages arrive while the device scores. It loads and
    warms its model first (an unusable weights file, device or run option raises here, before any
    task is taken; CUDA graphs are captured then) and takes up to ``batch_size`` prepared images
    per forward pass. A worker that serves both queues scores one image at a time in the
    consumer's own thread ("solo"), so that it holds no node task back. A node-queue-only
    worker runs ``node_concurrency`` processes (one per CPU core by default): decoding and
    building outputs scale with cores, one interpreter each."""
    scoring = INFERENCE_QUEUE in queues
    predictor = runtime.warm_up_predictor() if scoring else None
    batch = predictor.options.batch_size if predictor else 1
    at_once = runtime.scoring_threads(settings, predictor.device) if predictor else 1
    take_batches(batch, settings.batch_wait_ms / 1000, at_once)
    if queues == (INFERENCE_QUEUE,):
        pool, concurrency, prefetch = "threads", at_once, (at_once + 1) * batch
    elif scoring:
        pool, concurrency, prefetch = "solo", 1, batch
    else:
        pool, concurrency, prefetch = "prefork", settings.node_concurrency or os.cpu_count() or 1, 1
    worker = app.Worker(
        queues=list(queues), concurrency=concurrency, pool=pool, loglevel="INFO", prefetch_multiplier=prefetch,
        hostname=f"dicom-node-{'-'.join(queues)}-{os.getpid()}@%h",
    )
    worker.start()
    return int(worker.exitcode or 0)
