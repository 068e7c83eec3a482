"""``dicom-node serve``: the node process. Embedded default: a local Redis if needed and an
in-process worker for both queues; ``--no-worker`` for the production split (ARCHITECTURE.md)."""

import logging
import os
import signal
import threading

from dicom_node.broker import ensure_local_redis
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


def run_worker(settings: NodeSettings, queues: tuple[str, ...], concurrency: int, pool: str) -> None:
    """Run a Celery worker for ``queues`` in this process until it is told to stop."""
    from worker import runtime
    from worker.app import configure

    runtime.use_settings(settings)
    app = configure(settings)
    worker = app.Worker(
        queues=list(queues), concurrency=concurrency, pool=pool, loglevel="INFO",
        hostname=f"dicom-node-{'-'.join(queues)}-{os.getpid()}@%h",
    )
    worker.start()


def serve(settings: NodeSettings) -> None:
    """Run the node until SIGINT/SIGTERM."""
    check_model_settings(settings)
    from worker.app import configure
    from worker.tasks import enqueue, enqueue_delivery

    settings.spool.mkdir(parents=True, exist_ok=True)
    redis_process = ensure_local_redis(settings.broker_url, settings.spool)
    configure(settings)
    journal = Journal(settings.journal_path)
    spool = Spool(settings.spool, journal)
    spool.remove_orphans()
    intake = Intake(spool, journal, enqueue, settings.destination_for, enqueue_delivery)
    intake.start()
    intake.recover()
    server = start_scp(settings, spool, intake.submit)
    try:
        if settings.worker:
            run_worker(settings, ALL_QUEUES, concurrency=1, pool="solo")
        else:
            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            stop.wait()
    finally:
        server.shutdown()
        intake.stop()
        journal.close()
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(timeout=10)
        log.info("stopped")
