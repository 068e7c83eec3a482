"""Delivery and retry, in this process and in seconds (issue 14): ``deliver`` and ``redeliver`` run
as a node worker runs them, on a real journal and spool in a temporary folder, with a real Storage
SCP as the destination (pynetdicom in this process; dcmtk's storescp where a PACS comes back at
the address it was down at) and a real redis-server as the broker, whose queued messages are read
back instead of mocking Celery.

Covered: an accepting destination gets the outputs at the first attempt; a refused or unreachable
one leaves the receipt ``scored`` with the next delay and one ``redeliver`` queued with that
countdown; ``redeliver`` sends the stored outputs, computed once, when the PACS is back; the
schedule's end gives up (``failed``) and queues nothing more; no destination keeps the outputs;
tasks of a superseded chain, or run again for a delivered receipt, change nothing.
"""

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydicom
import pytest
from celery.exceptions import Ignore

from dicom_node.config import Destination, NodeSettings
from dicom_node.journal import Journal, Receipt, State
from dicom_node.retry_schedule import retry_delay
from dicom_node.spool import Spool
from inference import BrixiaResult, Predictor
from tests.servers import LOOPBACK, free_port, storage_scp, storescp_server
from worker.app import NODE_QUEUE, SETTINGS_KEY, app
from worker.messages import Scored
from worker.serialization import encode_result
from worker.tasks import deliver, redeliver

NODE_AE = "NODE"
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
OUT_OF_RESOURCES = 0xA700
COMPUTE_S = 0.25  # what infer reports as the image's compute time
GIVE_UP_AFTER_S = 6  # waits of 2 then 4 s: the third failed attempt spends the schedule


@dataclass(frozen=True)
class Queued:
    """A task message the broker holds: its task and arguments, and the range (s) that the
    countdown it was sent with lies in (its eta less the times it may have been sent at)."""

    task: str
    args: list[Any]
    countdown: tuple[float, float]

    def due_in(self, seconds: int) -> bool:
        return self.countdown[0] <= seconds <= self.countdown[1]


def take_queued(sent_after: datetime | None = None) -> list[Queued]:
    """Take every message off the node queue (sent after ``sent_after``, when given)."""
    with app.connection_for_read() as connection:
        queue = app.amqp.queues[NODE_QUEUE](connection.default_channel)
        messages = list(iter(lambda: queue.get(no_ack=True), None))
    taken_at = datetime.now(UTC)
    queued = []
    for message in messages:
        eta = datetime.fromisoformat(message.headers["eta"]) if message.headers.get("eta") else taken_at
        latest = (eta - sent_after).total_seconds() if sent_after else float("inf")
        queued.append(Queued(message.headers["task"], message.decode()[0], ((eta - taken_at).total_seconds(), latest)))
    return queued


@dataclass
class Node:
    """The node as its worker sees it: settings, and the spool with its journal; and the image
    every test sends through it, with infer's result for it."""

    settings: NodeSettings
    spool: Spool
    instance: Path
    result: BrixiaResult

    @property
    def journal(self) -> Journal:
        return self.spool.journal

    def receive(self, destination: Destination | None, configured: bool = True) -> tuple[str, str]:
        """Spool and journal the instance as the intake leaves it once queued for scoring, for
        ``destination`` (``configured``: as the tasks' settings' default destination); returns the
        receipt id and its chain's token."""
        if destination is not None and configured:
            app.conf[SETTINGS_KEY] = self.settings.model_copy(update={"destination": destination})
        receipt_id = self.spool.store(self.instance.read_bytes(), "MODALITY", NODE_AE, CR_STORAGE, "1.2.3", None)
        self.journal.triaged(receipt_id, "1.2.3.4", "CR", str(destination) if destination else None)
        token = self.journal.issue_token(receipt_id)
        self.journal.queued(receipt_id)
        return receipt_id, token

    def scored(self, receipt_id: str, token: str) -> dict[str, Any]:
        """infer's message to deliver, as it arrives through the broker (JSON)."""
        return json.loads(json.dumps(Scored(receipt_id, token, encode_result(self.result), COMPUTE_S).to_json()))

    def receipt(self, receipt_id: str) -> Receipt:
        receipt = self.journal.get(receipt_id)
        assert receipt is not None
        return receipt

    def stored_outputs(self, receipt_id: str) -> list[Path]:
        return self.spool.stored_outputs(receipt_id)


@pytest.fixture(scope="module")
def result(fuji_cr: Path) -> BrixiaResult:
    """infer's result for the Fuji CR (computed once per module)."""
    return Predictor(allow_untrained=True, device="cpu").predict(fuji_cr)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NodeSettings:
    """The tasks' runtime settings: a spool in tmp_path, the SR alone (fast), a short schedule."""
    settings = NodeSettings(
        spool=tmp_path / "spool", untrained=True, outputs=["sr"], delivery_give_up_after=GIVE_UP_AFTER_S
    )
    monkeypatch.setitem(app.conf, SETTINGS_KEY, settings)  # as worker.app.configure hands them
    return settings


@pytest.fixture
def node(settings: NodeSettings, broker: str, fuji_cr: Path, result: BrixiaResult) -> Iterator[Node]:
    journal = Journal(settings.journal_path)
    yield Node(settings, Spool(settings.spool, journal), fuji_cr, result)
    journal.close()


@contextmanager
def refusing() -> Iterator[Destination]:
    """A PACS that answers every C-STORE with "out of resources"."""
    with storage_scp(answer=OUT_OF_RESOURCES) as (destination, _):
        yield destination


@contextmanager
def unreachable() -> Iterator[Destination]:
    """A PACS that is down: nothing listens at its address."""
    yield Destination.parse(f"PACS@{LOOPBACK}:{free_port()}")


FAILURES: dict[str, tuple[Callable[[], AbstractContextManager[Destination]], str]] = {
    "refused": (refusing, f"answered failure status 0x{OUT_OF_RESOURCES:04X}"),
    "unreachable": (unreachable, "connection refused"),
}


def test_an_accepting_destination_gets_the_outputs_at_the_first_attempt(node: Node):
    with storage_scp() as (destination, received):
        receipt_id, token = node.receive(destination)
        deliver.run(node.scored(receipt_id, token))
    receipt = node.receipt(receipt_id)
    assert (receipt.state, receipt.attempts, receipt.reason) == (State.DELIVERED, 1, None)
    assert (receipt.global_score, receipt.region_scores) == (node.result.global_score, node.result.region_scores)
    assert receipt.compute_ms == round(COMPUTE_S * 1000)
    stored = [pydicom.dcmread(path) for path in node.stored_outputs(receipt_id)]
    assert [dataset.Modality for dataset in stored] == ["SR"]
    assert [str(dataset.SOPInstanceUID) for dataset in stored] == receipt.outputs
    assert [uid for uid, _, _ in received] == receipt.outputs
    assert take_queued() == []


def test_a_task_run_again_for_a_delivered_receipt_sends_nothing(node: Node):
    """Redis delivers a task again whose worker died before acknowledging it (docs/operations.md)."""
    with storage_scp() as (destination, received):
        receipt_id, token = node.receive(destination)
        deliver.run(node.scored(receipt_id, token))
        delivered = node.receipt(receipt_id)
        deliver.run(node.scored(receipt_id, token))
        redeliver.run(receipt_id, token)
    assert node.receipt(receipt_id) == delivered
    assert len(received) == 1
    assert take_queued() == []


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failed_first_attempt_keeps_the_outputs_and_queues_the_next_one(node: Node, failure: str):
    down, cause = FAILURES[failure]
    with down() as destination:
        receipt_id, token = node.receive(destination)
        sent_after = datetime.now(UTC)
        deliver.run(node.scored(receipt_id, token))
    receipt = node.receipt(receipt_id)
    delay = retry_delay(1, node.settings.delivery_max_backoff)
    assert (receipt.state, receipt.attempts, receipt.global_score) == (State.SCORED, 1, node.result.global_score)
    assert receipt.reason.startswith("delivery attempt 1 failed: ") and cause in receipt.reason
    assert receipt.reason.endswith(f"; next attempt in {delay} s")
    assert len(node.stored_outputs(receipt_id)) == len(receipt.outputs) == 1
    (retry,) = take_queued(sent_after)
    assert receipt.task_token != token  # the retry chain supersedes the deliver that scheduled it
    assert (retry.task, retry.args) == (redeliver.name, [receipt_id, receipt.task_token])
    assert retry.due_in(delay)


def test_a_deliver_run_again_after_scheduling_its_retry_starts_no_second_chain(node: Node):
    """Redis delivers the deliver task again when its worker died after the failed attempt was
    journaled and the next one queued: it must stop, not send, count and queue a second chain."""
    with unreachable() as destination:
        receipt_id, token = node.receive(destination)
        message = node.scored(receipt_id, token)
        deliver.run(message)
        scheduled = node.receipt(receipt_id)
        (retry,) = take_queued()
        with pytest.raises(Ignore):
            deliver.run(message)
    assert node.receipt(receipt_id) == scheduled
    assert take_queued() == []
    assert retry.args == [receipt_id, scheduled.task_token]


def test_deliver_sends_the_stored_outputs_once_the_destination_is_back(node: Node, tmp_path: Path):
    port = free_port()  # the PACS is down ...
    receipt_id, token = node.receive(Destination.parse(f"PACS@{LOOPBACK}:{port}"))
    deliver.run(node.scored(receipt_id, token))
    (retry,) = take_queued()
    stored = {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in node.stored_outputs(receipt_id)}
    with storescp_server(tmp_path / "pacs", "PACS", port=port):  # ... and back at the same address
        redeliver.run(*retry.args)
    receipt = node.receipt(receipt_id)
    assert (receipt.state, receipt.attempts, receipt.reason) == (State.DELIVERED, 2, None)
    arrived = [str(pydicom.dcmread(path).SOPInstanceUID) for path in (tmp_path / "pacs").rglob("*") if path.is_file()]
    assert arrived == receipt.outputs
    assert {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in stored} == stored  # not written again
    assert take_queued() == []


def test_the_failed_attempt_that_spends_the_schedule_ends_failed_and_queues_nothing(node: Node):
    with unreachable() as destination:
        receipt_id, token = node.receive(destination)
        deliver.run(node.scored(receipt_id, token))  # attempt 1: the next in 2 s
        (second,) = take_queued()
        sent_after = datetime.now(UTC)
        redeliver.run(*second.args)  # attempt 2: the next in 4 s
        (third,) = take_queued(sent_after)
        assert third.due_in(retry_delay(2, node.settings.delivery_max_backoff))
        assert node.receipt(receipt_id).attempts == 2
        redeliver.run(*third.args)  # attempt 3, after waits of 6 s in all: given up
    receipt = node.receipt(receipt_id)
    assert (receipt.state, receipt.attempts) == (State.FAILED, 3)
    assert receipt.reason.startswith(f"delivery to {destination} failed 3 times over 6 s: connection refused")
    assert len(node.stored_outputs(receipt_id)) == 1  # kept, for `dicom-node retry`
    assert take_queued() == []


def test_without_a_destination_the_outputs_are_kept_and_nothing_is_sent(node: Node):
    receipt_id, token = node.receive(None)
    deliver.run(node.scored(receipt_id, token))
    receipt = node.receipt(receipt_id)
    assert (receipt.state, receipt.attempts, receipt.global_score) == (State.SCORED, 0, node.result.global_score)
    assert receipt.reason == "no destination configured: outputs kept in the spool"
    assert len(node.stored_outputs(receipt_id)) == len(receipt.outputs) == 1
    redeliver.run(receipt_id, token)  # a delivery queued anyway has nowhere to go
    assert node.receipt(receipt_id) == receipt
    assert take_queued() == []


def test_a_destination_no_longer_configured_gets_nothing_and_the_reason_says_so(node: Node):
    """The receipt's destination was removed from the configuration (its allow entry, or the
    default) after it was received: its results are kept and never sent there, neither by
    ``deliver`` nor by a ``redeliver`` (``dicom-node retry``)."""
    with storage_scp() as (destination, received):
        receipt_id, token = node.receive(destination, configured=False)
        deliver.run(node.scored(receipt_id, token))
        redeliver.run(receipt_id, token)
    receipt = node.receipt(receipt_id)
    assert (receipt.state, receipt.attempts) == (State.SCORED, 0)
    assert receipt.reason == f"destination {destination} is no longer configured: outputs kept in the spool, not sent"
    assert received == [] and len(node.stored_outputs(receipt_id)) == len(receipt.outputs) == 1
    assert take_queued() == []


def test_a_report_of_a_superseded_chain_does_nothing(node: Node):
    with storage_scp() as (destination, received):
        receipt_id, old_token = node.receive(destination)
        node.journal.issue_token(receipt_id)  # the node restarted and queued the receipt again
        before = node.receipt(receipt_id)
        with pytest.raises(Ignore):
            deliver.run(node.scored(receipt_id, old_token))
    assert node.receipt(receipt_id) == before
    assert received == [] and node.stored_outputs(receipt_id) == []
    assert take_queued() == []


def test_a_delivery_of_a_superseded_chain_does_nothing(node: Node):
    with storage_scp(answer=OUT_OF_RESOURCES) as (destination, received):
        receipt_id, token = node.receive(destination)
        deliver.run(node.scored(receipt_id, token))
        (stale,) = take_queued()
        node.journal.issue_token(receipt_id)  # the node restarted and queued the delivery again
        before = node.receipt(receipt_id)
        with pytest.raises(Ignore):
            redeliver.run(*stale.args)
    assert node.receipt(receipt_id) == before
    assert len(received) == 1  # deliver's attempt alone
    assert take_queued() == []
