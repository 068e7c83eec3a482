"""Running a Celery worker in this process (``dicom-node worker``, and the embedded worker of
``dicom-node serve``), or several inference workers as processes of one command."""

import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import wait
from types import FrameType

from dicom_node.config import NodeSettings
from worker import runtime
from worker.app import INFERENCE_QUEUE, NODE_QUEUE, app
from worker.tasks import take_batches

log = logging.getLogger(__name__)


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
    if NODE_QUEUE in queues and not settings.configured_destinations():
        log.warning(
            "no destination configured (give the node's --config, or --destination): every result is built and "
            "kept in the spool, sent nowhere"
        )
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


def _exit_status(exitcode: int) -> int:
    """A process's exit code as a shell reports it (killed by signal N: 128 + N)."""
    return exitcode if exitcode >= 0 else 128 - exitcode


def _terminate(processes: list[multiprocessing.process.BaseProcess]) -> None:
    for process in processes:
        if process.pid is not None and process.exitcode is None:
            os.kill(process.pid, signal.SIGTERM)


def run_processes(count: int, target: Callable[..., None], args: tuple) -> int:
    """Run ``target(*args)`` in ``count`` spawned processes (an inference worker's processes
    sharing its device: each has its own consumer, GIL and model) until they stop; returns the
    exit status to report.

    SIGTERM and SIGINT are passed on to every process (Celery's warm shutdown); the status is then
    0 unless one of them failed. Should one exit unasked, at start (unusable weights) or later,
    the others are stopped and its status is returned (1 if it was 0), so that a supervisor such
    as systemd restarts them all."""
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    processes = [context.Process(target=target, args=args, name=f"inference-{index + 1}") for index in range(count)]
    asked = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal asked
        asked = True
        _terminate(processes)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            for process in processes:
                process.start()
        except BaseException:
            _terminate(processes)  # those already started
            raise
        if asked:  # a signal that came while they were being started
            _terminate(processes)
        log.info("inference worker: %d processes, pids %s", count, ", ".join(str(p.pid) for p in processes))
        first = wait([process.sentinel for process in processes])[0]
        ended = next(process for process in processes if process.sentinel == first)
        ended.join()
        if not asked:
            log.error("inference worker process %s exited with status %s: stopping the others",
                      ended.pid, _exit_status(ended.exitcode))
            _terminate(processes)
        for process in processes:
            process.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not asked:
        return _exit_status(ended.exitcode) or 1
    failed = [process.exitcode for process in processes if process.exitcode not in (0, -signal.SIGTERM)]
    return _exit_status(failed[0]) if failed else 0
