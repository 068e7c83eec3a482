"""Spool and journal: durable write, journal row, and nothing left behind on failure."""

import os
import sqlite3
from pathlib import Path

import pytest

from dicom_node.journal import Journal, JournalError, State
from dicom_node.spool import Spool, SpoolError


@pytest.fixture
def spool(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    yield Spool(tmp_path, journal)
    journal.close()


def test_store_writes_the_bytes_and_journals_them(spool):
    receipt_id = spool.store(b"DICM-bytes", "MODALITY", "NODE", "1.2.840.10008.5.1.4.1.1.1", "1.2.3", None)
    receipt = spool.journal.get(receipt_id)
    assert receipt.state == State.RECEIVED and receipt.calling_ae == "MODALITY"
    assert spool.instance_path(receipt).read_bytes() == b"DICM-bytes"
    assert not list(spool.instance_path(receipt).parent.glob(".incoming-*"))
    assert spool.journal.get(spool.store(b"again", "MODALITY", "NODE", "1.2", "1.2.3", None)).path != receipt.path


def test_a_folder_the_spool_creates_is_itself_made_durable(spool, monkeypatch):
    """A new file is only as durable as the folder entries leading to it: the spool fsyncs the
    folder of each folder it creates (the instance's shard, a receipt's outputs), not only the
    folder of the file."""
    synced: list[Path] = []
    real_fsync = os.fsync

    def recording_fsync(handle: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{handle}")))
        real_fsync(handle)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    receipt = spool.journal.get(spool.store(b"DICM-bytes", "MODALITY", "NODE", "1.2", "1.2.3", None))
    shard = spool.instance_path(receipt).parent
    assert {shard, shard.parent, spool.root} <= set(synced)
    synced.clear()
    spool.store_output(receipt.id, 9701, "SR", b"SR-bytes")
    outputs = spool.root / "outputs"
    assert {outputs / receipt.id, outputs, spool.root} <= set(synced)
    for created in (shard, shard.parent, outputs, outputs / receipt.id):  # patient data: the owner's alone
        assert created.stat().st_mode & 0o077 == 0


def test_journal_failure_leaves_no_file(spool):
    spool.journal.close()
    with pytest.raises(SpoolError, match="cannot journal"):
        spool.store(b"data", "MODALITY", "NODE", "1.2", "1.2.3", None)
    assert not [p for p in (spool.root / "instances").rglob("*") if p.is_file()]


def test_write_failure_leaves_no_file_and_no_row(spool):
    (spool.root / "instances").write_text("a file where the folder should be")
    with pytest.raises(SpoolError, match="cannot write"):
        spool.store(b"data", "MODALITY", "NODE", "1.2", "1.2.3", None)
    assert spool.journal.recent() == []


def test_journal_states_and_queries(spool):
    first = spool.store(b"a", "A", "NODE", "1.2", "1.1", None)
    second = spool.store(b"b", "B", "NODE", "1.2", "1.2", None)
    spool.journal.update(first, state=State.SCORED, global_score=7, region_scores={"A": 1})
    spool.journal.update(second, state=State.SKIPPED, reason="modality MR")
    pending = spool.journal.in_states((State.RECEIVED, State.QUEUED, State.SCORED))
    assert [r.id for r in pending] == [first]
    assert pending[0].region_scores == {"A": 1}
    assert {r.id for r in spool.journal.recent()} == {first, second}
    with pytest.raises(ValueError):
        spool.journal.update(first, path="elsewhere")


def test_reopened_journal_keeps_committed_rows(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    journal.record_receipt("r1", "A", "NODE", "1.2", "1.3", "instances/r1.dcm", None)
    journal.close()
    assert Journal(tmp_path / "j.sqlite").get("r1").state == State.RECEIVED


def test_a_journal_from_before_added_columns_gains_them_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE receipts (id TEXT PRIMARY KEY, received_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
        " calling_ae TEXT NOT NULL, called_ae TEXT NOT NULL, sop_class_uid TEXT NOT NULL,"
        " sop_instance_uid TEXT NOT NULL, study_instance_uid TEXT, modality TEXT, path TEXT NOT NULL,"
        " state TEXT NOT NULL, reason TEXT, attempts INTEGER NOT NULL DEFAULT 0, global_score INTEGER,"
        " region_scores TEXT, outputs TEXT, destination TEXT);"
        "INSERT INTO receipts (id, received_at, updated_at, calling_ae, called_ae, sop_class_uid,"
        " sop_instance_uid, path, state) VALUES ('r1', 't', 't', 'A', 'NODE', '1.2', '1.3', 'p', 'delivered');"
    )
    old.close()
    journal = Journal(path)
    assert journal.get("r1").state == State.DELIVERED and journal.get("r1").compute_ms is None
    journal.update("r1", compute_ms=812)
    assert journal.get("r1").compute_ms == 812
    journal.close()


def test_columns_of_a_later_version_are_ignored(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    journal.record_receipt("r1", "A", "NODE", "1.2", "1.3", "instances/r1.dcm", None)
    journal.close()
    newer = sqlite3.connect(tmp_path / "j.sqlite")
    newer.execute("ALTER TABLE receipts ADD COLUMN added_later TEXT")
    newer.close()
    assert Journal(tmp_path / "j.sqlite").get("r1").state == State.RECEIVED


def test_unopenable_journal_is_a_clear_error(tmp_path):
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(JournalError):
        Journal(tmp_path / "dir.sqlite")


def test_orphans_of_an_interrupted_write_are_removed_at_start_up(spool):
    """A node killed between writing an instance and journaling it never answered success: the
    sender sends it again, so the file is removed; so are temp files of unfinished writes."""
    kept = spool.instance_path(spool.journal.get(spool.store(b"kept", "MODALITY", "NODE", "1.2", "1.2.3", None)))
    orphan = spool.root / "instances" / "ab" / ("ab" + "0" * 30 + ".dcm")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"never acknowledged")
    partial = kept.parent / ".incoming-xyz"
    partial.write_bytes(b"half written")
    assert spool.remove_orphans() == 2
    assert kept.read_bytes() == b"kept"
    assert not orphan.exists() and not partial.exists()
    assert spool.remove_orphans() == 0
