"""The journal: one SQLite database in the spool (WAL, synchronous=FULL), the source of truth
for every received instance and its state (ARCHITECTURE.md, "Success means safe").

States: received -> queued -> scored -> delivered, or skipped (+ reason), or failed (+ reason).
Every change of state goes through one of the intent-named transitions of :class:`Journal`
(``triaged``, ``skipped``, ``queued``, ``scored``, ``delivery_failed``, ``delivered``,
``failed``, ``requeued``), so the life of a receipt reads in one place.
No patient-identifying attributes are stored here.
"""

import json
import logging
import sqlite3
import threading
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class State(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    SCORED = "scored"
    DELIVERED = "delivered"
    SKIPPED = "skipped"
    FAILED = "failed"


PENDING_STATES = (State.RECEIVED, State.QUEUED, State.SCORED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    id TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    calling_ae TEXT NOT NULL,
    called_ae TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    study_instance_uid TEXT,
    modality TEXT,
    path TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    global_score INTEGER,
    region_scores TEXT,
    outputs TEXT,
    destination TEXT,
    compute_ms INTEGER
);
CREATE INDEX IF NOT EXISTS receipts_state ON receipts (state);
CREATE INDEX IF NOT EXISTS receipts_sop ON receipts (sop_instance_uid);
CREATE INDEX IF NOT EXISTS receipts_received ON receipts (received_at);
"""

# Columns added after the first schema: added to older journals when they are opened.
ADDED_COLUMNS = {"compute_ms": "INTEGER", "task_token": "TEXT"}

UPDATABLE = {
    "state", "reason", "attempts", "study_instance_uid", "modality", "global_score",
    "region_scores", "outputs", "destination", "compute_ms", "task_token",
}


@dataclass
class Receipt:
    """One received instance as the journal knows it."""

    id: str
    received_at: str
    updated_at: str
    calling_ae: str
    called_ae: str
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str | None
    modality: str | None
    path: str
    state: State
    reason: str | None
    attempts: int
    global_score: int | None
    region_scores: dict[str, int] | None
    outputs: list[str] | None
    destination: str | None  # AET@HOST:PORT chosen by the node when it queued the image
    compute_ms: int | None  # model compute as timed by the workers: preprocessing + BS-Net
    task_token: str | None = None  # the token of the receipt's current chain; older chains stop

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Receipt":
        """The receipt of a row; columns a later version added are ignored."""
        known = {field.name for field in fields(cls)}
        values = {name: value for name, value in dict(row).items() if name in known}
        values["state"] = State(values["state"])
        for key in ("region_scores", "outputs"):
            values[key] = json.loads(values[key]) if values[key] else None
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "state": str(self.state)}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class JournalError(RuntimeError):
    """The journal could not be read or written."""


class Journal:
    """Thread-safe access to the journal database at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
            self._add_missing_columns()
        except sqlite3.Error as error:
            raise JournalError(f"cannot open journal {self.path}: {error}") from error

    def _add_missing_columns(self) -> None:
        present = {row["name"] for row in self._db.execute("PRAGMA table_info(receipts)")}
        for name, kind in ADDED_COLUMNS.items():
            if name not in present:
                try:
                    self._db.execute(f"ALTER TABLE receipts ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as error:  # another process added it meanwhile
                    if "duplicate column" not in str(error):
                        raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _execute(self, sql: str, parameters: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, parameters).fetchall()
            except sqlite3.Error as error:
                raise JournalError(f"journal {self.path}: {error}") from error

    def record_receipt(
        self, receipt_id: str, calling_ae: str, called_ae: str, sop_class_uid: str,
        sop_instance_uid: str, path: str, destination: str | None,
    ) -> None:
        """Record a newly spooled instance in state ``received`` with the destination of the
        allow entry that admitted its sender (committed on return)."""
        now = _now()
        self._execute(
            "INSERT INTO receipts (id, received_at, updated_at, calling_ae, called_ae, sop_class_uid,"
            " sop_instance_uid, path, state, destination) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (receipt_id, now, now, calling_ae, called_ae, sop_class_uid, sop_instance_uid, path,
             State.RECEIVED, destination),
        )

    def triaged(
        self, receipt_id: str, study_instance_uid: str | None, modality: str | None, destination: str | None
    ) -> None:
        """Triage accepted the instance: its identity and where its results go (still ``received``)."""
        self.update(receipt_id, study_instance_uid=study_instance_uid, modality=modality, destination=destination)

    def skipped(self, receipt_id: str, reason: str, study_instance_uid: str | None, modality: str | None) -> None:
        """``skipped``: not a frontal chest radiograph; ``reason`` says why."""
        self.update(
            receipt_id, state=State.SKIPPED, reason=reason, study_instance_uid=study_instance_uid, modality=modality
        )

    def queued(self, receipt_id: str) -> None:
        """``queued``: a scoring chain was handed to the broker."""
        self.update(receipt_id, state=State.QUEUED)

    def scored(
        self, receipt_id: str, global_score: int, region_scores: dict[str, int], outputs: list[str], compute_ms: int
    ) -> None:
        """``scored``: the outputs ``outputs`` (SOP Instance UIDs) are stored in the spool."""
        self.update(
            receipt_id, state=State.SCORED, global_score=global_score, region_scores=region_scores,
            outputs=outputs, compute_ms=compute_ms,
        )

    def undeliverable(self, receipt_id: str, reason: str) -> None:
        """Scored, with nowhere to send the results (still ``scored``)."""
        self.update(receipt_id, reason=reason)

    def delivery_failed(self, receipt_id: str, attempts: int, reason: str) -> None:
        """A delivery attempt failed and another is scheduled (still ``scored``)."""
        self.update(receipt_id, attempts=attempts, reason=reason)

    def delivered(self, receipt_id: str, attempts: int) -> None:
        """``delivered``: every output was stored by the destination, at attempt ``attempts``."""
        self.update(receipt_id, state=State.DELIVERED, reason=None, attempts=attempts)

    def failed(self, receipt_id: str, reason: str, attempts: int | None = None) -> None:
        """``failed`` for good (until ``dicom-node retry``): ``reason`` names the stage and cause;
        the one log line of the failure is written here, wherever it happened."""
        fields: dict[str, Any] = {"state": State.FAILED, "reason": reason}
        if attempts is not None:
            fields["attempts"] = attempts
        self.update(receipt_id, **fields)
        log.warning("receipt %s failed: %s", receipt_id, reason)

    def requeued(self, receipt_id: str, state: State, reason: str) -> None:
        """Sent again on request: back to ``scored`` (outputs re-sent) or ``queued`` (scored again),
        attempts reset."""
        if state not in (State.SCORED, State.QUEUED):
            raise ValueError(f"a receipt is re-queued as scored or queued, not {state}")
        self.update(receipt_id, state=state, attempts=0, reason=reason)

    def update(self, receipt_id: str, **fields: Any) -> None:
        """Set ``fields`` (see UPDATABLE) of one receipt; dict/list values are stored as JSON.
        The transitions above are the way to change a receipt's state."""
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        values = [json.dumps(v) if isinstance(v, (dict, list)) else v for v in fields.values()]
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._execute(
            f"UPDATE receipts SET {assignments}, updated_at = ? WHERE id = ?",
            (*values, _now(), receipt_id),
        )

    def issue_token(self, receipt_id: str) -> str:
        """A new token for the chain about to be queued for ``receipt_id``; tasks carrying an
        older one are superseded (a restart re-queues what the broker may still hold)."""
        token = uuid.uuid4().hex
        self.update(receipt_id, task_token=token)
        return token

    def get(self, receipt_id: str) -> Receipt | None:
        rows = self._execute("SELECT * FROM receipts WHERE id = ?", (receipt_id,))
        return Receipt.from_row(rows[0]) if rows else None

    def recent(self, limit: int = 50) -> list[Receipt]:
        rows = self._execute("SELECT * FROM receipts ORDER BY received_at DESC, id LIMIT ?", (limit,))
        return [Receipt.from_row(row) for row in rows]

    def count_in_states(self, states: tuple[State, ...]) -> int:
        marks = ", ".join("?" for _ in states)
        return int(self._execute(f"SELECT COUNT(*) FROM receipts WHERE state IN ({marks})", tuple(states))[0][0])

    def in_states(self, states: tuple[State, ...]) -> list[Receipt]:
        marks = ", ".join("?" for _ in states)
        rows = self._execute(
            f"SELECT * FROM receipts WHERE state IN ({marks}) ORDER BY received_at", tuple(states)
        )
        return [Receipt.from_row(row) for row in rows]
