"""``dicom-node retry``: send results again on an operator's request (issue 11, "Delivery outlives
outages"). A receipt with stored outputs goes back to ``scored`` with its attempts reset and its
outputs are sent again (nothing is computed again); one that failed before its outputs existed
is scored again from its spooled instance. Skipped receipts are left alone."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dicom_node.journal import Journal, Receipt, State


@dataclass(frozen=True)
class Resend:
    """What ``retry`` did with one receipt: ``action`` is "resend", "rescore" or "left"."""

    receipt_id: str
    action: str
    detail: str


def _choose(journal: Journal, receipt_ids: Iterable[str], failed: bool) -> list[Receipt | str]:
    chosen: list[Receipt | str] = [journal.get(r) or r for r in receipt_ids]
    if failed:
        known = {r.id for r in chosen if isinstance(r, Receipt)}
        chosen += [r for r in journal.in_states((State.FAILED,)) if r.id not in known]
    return chosen


def resend(
    journal: Journal,
    receipt_ids: Iterable[str],
    failed: bool,
    enqueue: Callable[[str, str], None],
    enqueue_redelivery: Callable[[str, str], None],
) -> list[Resend]:
    """Queue the given receipts (and every ``failed`` one if ``failed``) again; one Resend each."""
    done = []
    for receipt in _choose(journal, receipt_ids, failed):
        if isinstance(receipt, str):
            done.append(Resend(receipt, "left", "no such receipt in the journal"))
        elif receipt.state == State.SKIPPED:
            done.append(Resend(receipt.id, "left", f"skipped: {receipt.reason}"))
        elif receipt.outputs and receipt.destination:
            journal.requeued(receipt.id, State.SCORED, "sent again on request")
            enqueue_redelivery(receipt.id, journal.issue_token(receipt.id))
            done.append(Resend(receipt.id, "resend", f"{len(receipt.outputs)} outputs to {receipt.destination}"))
        else:
            journal.requeued(receipt.id, State.QUEUED, "scored again on request")
            enqueue(receipt.id, journal.issue_token(receipt.id))
            done.append(Resend(receipt.id, "rescore", "scored again from the spooled instance"))
    return done
