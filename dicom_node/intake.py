"""Intake: after the SCP has answered success, triage each receipt and queue the frontal chest
radiographs for scoring, one image at a time (no study-complete timers). Runs in a background
thread so that C-STORE responses never wait for the broker; on start-up it re-queues what the
journal says was received but not delivered (ARCHITECTURE.md "Success means safe"): a receipt
already scored only has its stored outputs sent again, without computing them again.

At most ``max_in_flight`` images are queued for scoring at once: a new image waits, ``received``
in the journal, until one of them is scored, so that the broker holds a bounded amount of work
and of prepared images however long the backlog (docs/operations.md "Scheduling")."""

import logging
import queue
import threading
from collections.abc import Callable

import pydicom

from dicom_node.config import DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_PIXELS, Destination
from dicom_node.failures import failure_reason
from dicom_node.journal import PENDING_STATES, Journal, Receipt, State
from dicom_node.relays import identity_problem
from dicom_node.spool import Spool
from dicom_node.triage import size_problem, triage

log = logging.getLogger(__name__)
DEFERRED_VALUE_BYTES = 1024  # read headers only; pixel data stays on disk
RETRY_DELAY_S = 5.0
ROOM_POLL_S = 0.2  # how often a held-back image looks for room among the images in flight


class Intake:
    """Triage + enqueue worker thread fed with receipt ids."""

    def __init__(
        self,
        spool: Spool,
        journal: Journal,
        enqueue: Callable[[str, str], None],
        enqueue_redelivery: Callable[[str, str], None],
        default_destination: Destination | None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self.spool = spool
        self.journal = journal
        self.enqueue = enqueue
        self.enqueue_redelivery = enqueue_redelivery
        self.max_pixels = max_pixels
        self.max_in_flight = max_in_flight
        self.default_destination = default_destination
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="intake", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._queue.put(None)
        self._thread.join(timeout=10)

    def submit(self, receipt_id: str) -> None:
        self._queue.put(receipt_id)

    def recover(self) -> int:
        """Submit every receipt left received/queued/scored by an earlier run; returns the count."""
        pending = self.journal.in_states(PENDING_STATES)
        for receipt in pending:
            self.submit(receipt.id)
        if pending:
            log.info("re-queueing %d receipts not yet delivered", len(pending))
        return len(pending)

    def _run(self) -> None:
        while not self._stopped.is_set():
            receipt_id = self._queue.get()
            if receipt_id is None:
                continue
            try:
                self.process(receipt_id)
            except Exception as error:  # broker down (being restarted): keep the receipt pending, try again
                log.warning(
                    "intake of receipt %s failed (%s: %s); retrying in %.0f s",
                    receipt_id, type(error).__name__, error, RETRY_DELAY_S,
                )
                threading.Timer(RETRY_DELAY_S, self.submit, (receipt_id,)).start()

    def _triage(self, receipt: Receipt) -> bool:
        """Triage a newly received instance: True when it is to be scored; otherwise it ends
        ``skipped`` or ``failed`` here (the spooled file never changes: nothing is retried)."""
        try:
            ds = pydicom.dcmread(self.spool.instance_path(receipt), defer_size=DEFERRED_VALUE_BYTES)
            decision = triage(ds)
            identity = {
                "study_instance_uid": str(ds.get("StudyInstanceUID", "")) or None,
                "modality": str(ds.get("Modality", "")) or None,
            }
        except Exception as error:
            self.journal.failed(receipt.id, failure_reason("triage: cannot read the instance", error))
            return False
        if not decision.accept:
            self.journal.skipped(receipt.id, decision.reason, **identity)
            log.info("receipt %s skipped: %s", receipt.id, decision.reason)
            return False
        problem = identity_problem(ds) or size_problem(ds, self.max_pixels)
        if problem:
            self.journal.failed(receipt.id, f"triage: {problem}")
            return False
        # the SCP recorded the admitting allow entry's destination; a receipt journaled without one
        # (by a version before known senders, or spooled by hand) goes to the default
        destination = receipt.destination or (str(self.default_destination) if self.default_destination else None)
        self.journal.triaged(receipt.id, destination=destination, **identity)
        return True

    def _room_for_one_more(self) -> bool:
        """Wait while ``max_in_flight`` images are queued for scoring; False when stopped meanwhile."""
        waiting = False
        while self.journal.count_in_states((State.QUEUED,)) >= self.max_in_flight:
            if not waiting:
                log.info("%d images in flight (max_in_flight): new images wait until one is scored", self.max_in_flight)
                waiting = True
            if self._stopped.wait(ROOM_POLL_S):
                return False
        return True

    def process(self, receipt_id: str) -> None:
        """Triage one receipt (first time only) and queue it if it is to be scored."""
        receipt = self.journal.get(receipt_id)
        if receipt is None or receipt.state not in PENDING_STATES:
            return
        if receipt.state == State.SCORED and receipt.outputs:  # nothing to compute again
            if receipt.destination:
                self.enqueue_redelivery(receipt_id, self.journal.issue_token(receipt_id))
                log.info("receipt %s: stored outputs queued for delivery", receipt_id)
            return
        if receipt.state == State.RECEIVED and not (self._triage(receipt) and self._room_for_one_more()):
            return
        self.enqueue(receipt_id, self.journal.issue_token(receipt_id))
        if receipt.state == State.RECEIVED:
            self.journal.queued(receipt_id)
        log.info("receipt %s queued for scoring", receipt_id)
