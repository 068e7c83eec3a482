"""The intake keeps at most ``max_in_flight`` images queued for scoring (issue 13): later images
wait ``received`` in the journal, not in the broker, and go on as soon as one is scored."""

import logging
import threading

import pydicom

from dicom_node.intake import Intake
from dicom_node.journal import Journal, State
from dicom_node.spool import Spool
from tests.servers import wait_until

IN_FLIGHT = 2
IMAGES = 4


def test_new_images_wait_in_the_journal_while_max_in_flight_are_queued(tmp_path, fuji_cr, caplog):
    caplog.set_level(logging.INFO, logger="dicom_node.intake")
    journal = Journal(tmp_path / "journal.sqlite")
    spool = Spool(tmp_path, journal)
    source = pydicom.dcmread(fuji_cr)
    receipts = [
        spool.store(fuji_cr.read_bytes(), "MODALITY", "NODE", source.SOPClassUID, f"1.2.3.{index}", None)
        for index in range(IMAGES)
    ]
    queued: list[str] = []
    lock = threading.Lock()

    def enqueue(receipt_id: str, token: str) -> None:  # stands in for handing the chain to Celery
        with lock:
            queued.append(receipt_id)

    intake = Intake(spool, journal, enqueue, enqueue, None, max_in_flight=IN_FLIGHT)
    intake.start()
    try:
        for receipt in receipts:
            intake.submit(receipt)
        wait_until(lambda: journal.count_in_states((State.QUEUED,)) == IN_FLIGHT, 30, "the first images queued")
        wait_until(lambda: "new images wait" in caplog.text, 30, "the next image to be held back")
        assert queued == receipts[:IN_FLIGHT]
        assert [journal.get(r).state for r in receipts[IN_FLIGHT:]] == [State.RECEIVED] * (IMAGES - IN_FLIGHT)
        journal.scored(receipts[0], 0, dict.fromkeys("ABCDEF", 0), [], 1)  # one image scored: room for one more
        wait_until(lambda: len(queued) == IN_FLIGHT + 1, 30, "the next image queued")
        assert queued == receipts[: IN_FLIGHT + 1]
        assert journal.get(receipts[-1]).state == State.RECEIVED
    finally:
        intake.stop()
        journal.close()


def test_a_scored_receipt_without_destination_is_not_scored_again(tmp_path, fuji_cr):
    """After a restart the intake sees every pending receipt again: one scored with its outputs
    kept for want of a destination has nothing left to compute (docs/operations.md, Recovery)."""
    journal = Journal(tmp_path / "journal.sqlite")
    spool = Spool(tmp_path, journal)
    receipt = spool.store(fuji_cr.read_bytes(), "MODALITY", "NODE", "1.2.840.10008.5.1.4.1.1.1", "1.2.3", None)
    journal.scored(receipt, 0, dict.fromkeys("ABCDEF", 0), ["1.2.3.4"], 1)
    journal.undeliverable(receipt, "no destination configured: outputs kept in the spool")
    queued: list[str] = []
    intake = Intake(spool, journal, lambda r, _: queued.append(r), lambda r, _: queued.append(r), None)
    try:
        intake.process(receipt)
        assert queued == [] and journal.get(receipt).state == State.SCORED
    finally:
        journal.close()
