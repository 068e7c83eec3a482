"""``dicom-node serve``: the node process, alone on its spool (:func:`~dicom_node.spool.claim_spool`).
Embedded default: a private, supervised Redis (:mod:`dicom_node.broker`); a shared Redis is
watched for restarts (:mod:`dicom_node.broker_watch`). The work itself (queueing tasks, running a
worker) is handed in by the composer (``worker.cli``, the command line), so that this package
never reaches into ``worker``. Exits non-zero when its worker or broker fails for good."""

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from dicom_node.broker import EmbeddedBroker
from dicom_node.broker_watch import BrokerWatch
from dicom_node.config import NodeSettings
from dicom_node.intake import Intake
from dicom_node.journal import Journal
from dicom_node.scp import start_scp
from dicom_node.spool import Spool, claim_spool
from inference.durable import make_folders_durably

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Work:
    """How the node hands work on: ``connect`` points the task queue at the broker's URL,
    ``enqueue`` / ``enqueue_redelivery`` queue a receipt (its id and chain token), and ``run_worker``,
    if given, runs a worker in this process on that URL until it stops (its exit status)."""

    connect: Callable[[str], None]
    enqueue: Callable[[str, str], None]
    enqueue_redelivery: Callable[[str, str], None]
    run_worker: Callable[[str], int] | None


def _stop_this_process() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def _wait_for_a_signal() -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    return 0


def serve(settings: NodeSettings, work: Work) -> None:
    """Run the node until SIGINT/SIGTERM (or until its in-process worker stops)."""
    make_folders_durably(settings.spool)
    claim = claim_spool(settings.spool)
    journal = Journal(settings.journal_path)
    spool = Spool(settings.spool, journal, min_free_bytes=settings.min_free_space_mb * 2**20)
    spool.remove_orphans()
    intake = Intake(
        spool, journal, work.enqueue, work.enqueue_redelivery, settings.destination, settings.max_pixels,
        settings.max_in_flight,
    )
    broker, watch = None, None
    broker_url = settings.broker_url
    if broker_url is None:  # the embedded default: a restarted broker is empty, the journal re-queues
        broker = EmbeddedBroker(settings.spool, on_restart=intake.recover, on_failure=_stop_this_process)
        broker_url = broker.start()
    elif BrokerWatch.applies_to(broker_url):  # a shared Redis: the same, once its restart is noticed
        watch = BrokerWatch(broker_url, on_restart=intake.recover)
    work.connect(broker_url)
    intake.start()
    intake.recover()
    if watch is not None:
        watch.start()
    server = start_scp(settings, spool, intake.submit)
    status = 0
    try:
        status = work.run_worker(broker_url) if work.run_worker is not None else _wait_for_a_signal()
    finally:
        server.shutdown()
        if watch is not None:
            watch.stop()
        intake.stop()
        journal.close()
        if broker is not None:
            broker.stop()
        os.close(claim)
        log.info("stopped")
    if broker is not None and broker.failed:
        log.error("the embedded broker could not be restarted: stopping with status 1")
        status = status or 1
    if status:
        raise SystemExit(status)
