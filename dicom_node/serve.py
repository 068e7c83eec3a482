"""``dicom-node serve``: the node process. Embedded default: a private, supervised Redis
(:mod:`dicom_node.broker`) and an in-process worker for both queues; ``--no-worker`` for the
production split (ARCHITECTURE.md). Exits non-zero when its worker or broker fails for good."""

import logging
import os
import signal
import threading

from dicom_node.broker import EmbeddedBroker
from dicom_node.config import ConfigError, NodeSettings
from dicom_node.intake import Intake
from dicom_node.journal import Journal
from dicom_node.scp import start_scp
from dicom_node.spool import Spool

log = logging.getLogger(__name__)
ALL_QUEUES = ("node", "inference")


def check_model_settings(settings: NodeSettings) -> None:
    """Scoring needs weights, or an explicit ``--untrained`` (outputs then say so)."""
    if settings.weights is None and not settings.untrained:
        raise ConfigError(
            "no model weights: give --weights PATH (or DICOM_NODE_WEIGHTS), or --untrained to run "
            "a randomly initialised network whose outputs say UNTRAINED MODEL - DEMONSTRATION ONLY"
        )
    if settings.weights is not None and not settings.weights.is_file():
        raise ConfigError(f"weights file not found: {settings.weights}")


def run_worker(settings: NodeSettings, broker_url: str, queues: tuple[str, ...]) -> int:
    """Run a Celery worker for ``queues`` in this process until it stops; returns its exit status.

    A worker of the inference queue is this one process (the "solo" pool: the model and its
    device belong to it; run one per GPU): it loads and warms its model first (an unusable weights
    file raises here, before any task is taken) and takes up to ``batch_size`` prepared images per
    forward pass, or one at a time when it also serves the node queue, whose tasks it would
    otherwise hold back. A node-queue-only worker runs ``node_concurrency`` processes (one per CPU
    core by default): decoding and building outputs scale with cores, one interpreter each."""
    from worker import runtime
    from worker.app import INFERENCE_QUEUE, configure
    from worker.tasks import take_batches

    scoring = INFERENCE_QUEUE in queues
    if scoring and len(queues) > 1:
        settings = settings.model_copy(update={"batch_size": 1})
    runtime.use_settings(settings)
    batch = runtime.warm_up_predictor().options.batch_size if scoring else 1
    take_batches(batch, settings.batch_wait_ms / 1000)
    app = configure(settings, broker_url, prefetch=batch)
    pool, concurrency = ("solo", 1) if scoring else ("prefork", settings.node_concurrency or os.cpu_count() or 1)
    worker = app.Worker(
        queues=list(queues), concurrency=concurrency, pool=pool, loglevel="INFO",
        hostname=f"dicom-node-{'-'.join(queues)}-{os.getpid()}@%h",
    )
    worker.start()
    return int(worker.exitcode or 0)


def _stop_this_process() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def serve(settings: NodeSettings) -> None:
    """Run the node until SIGINT/SIGTERM."""
    check_model_settings(settings)
    from worker.app import configure
    from worker.tasks import enqueue, enqueue_redelivery

    settings.spool.mkdir(parents=True, exist_ok=True)
    journal = Journal(settings.journal_path)
    spool = Spool(settings.spool, journal, min_free_bytes=settings.min_free_space_mb * 2**20)
    spool.remove_orphans()
    intake = Intake(
        spool, journal, enqueue, enqueue_redelivery, settings.destination, settings.max_pixels, settings.max_in_flight
    )
    broker = None
    broker_url = settings.broker_url
    if broker_url is None:  # the embedded default: a restarted broker is empty, the journal re-queues
        broker = EmbeddedBroker(settings.spool, on_restart=intake.recover, on_failure=_stop_this_process)
        broker_url = broker.start()
    configure(settings, broker_url)
    intake.start()
    intake.recover()
    server = start_scp(settings, spool, intake.submit)
    status = 0
    try:
        if settings.worker:
            status = run_worker(settings, broker_url, ALL_QUEUES)
        else:
            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            stop.wait()
    finally:
        server.shutdown()
        intake.stop()
        journal.close()
        if broker is not None:
            broker.stop()
        log.info("stopped")
    if broker is not None and broker.failed:
        log.error("the embedded broker could not be restarted: stopping with status 1")
        status = status or 1
    if status:
        raise SystemExit(status)
