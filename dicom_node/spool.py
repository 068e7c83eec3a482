"""The spool: each received instance written as received (Part 10 bytes, no re-encoding) with
temp file + fsync + rename + directory fsync, then recorded in the journal; only then may the
SCP answer success (ARCHITECTURE.md "Success means safe"). It owns its layout: instances under
``instances/``, each receipt's outputs under ``outputs/<receipt>/``."""

import contextlib
import fcntl
import logging
import os
import shutil
import uuid
from pathlib import Path

from dicom_node.journal import Journal, Receipt
from inference.durable import TEMPORARY_PREFIX, write_durably

log = logging.getLogger(__name__)
INSTANCES = "instances"
OUTPUTS = "outputs"
LOCK = "node.lock"


class SpoolError(OSError):
    """The instance could not be stored durably (disk full, permissions, journal failure)."""


class SpoolInUse(RuntimeError):
    """Another node serves this spool: one spool, one node."""


def claim_spool(root: Path) -> int:
    """Take the spool for this node (an exclusive lock on ``root/node.lock`` that ends with the
    process, however it ends) before anything in it is touched; returns the lock's descriptor,
    to keep open. Raises :class:`SpoolInUse` naming the node that holds it."""
    handle = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(handle, 32).decode(errors="replace").strip() or "unknown"
        os.close(handle)
        raise SpoolInUse(
            f"another dicom-node is serving the spool {root} (pid {holder}): one spool, one node; "
            "give this one a spool of its own"
        ) from None
    with contextlib.suppress(OSError):  # only for the message above; a full disk must not stop the node
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
    return handle


class Spool:
    """Instances under ``root/instances``, journal at ``root/journal.sqlite``; no instance is
    taken while the spool's file system has less than ``min_free_bytes`` free."""

    def __init__(self, root: Path, journal: Journal, min_free_bytes: int = 0) -> None:
        self.root = Path(root)
        self.journal = journal
        self.min_free_bytes = min_free_bytes

    def _check_free_space(self) -> None:
        """Disk pressure is a state: refuse (0xA700) below the floor, accept again above it, and keep
        room for the journal and the outputs of what was already accepted."""
        free = shutil.disk_usage(self.root).free
        if free < self.min_free_bytes:
            raise SpoolError(
                f"the spool's disk has {free // 2**20} MB free, below the floor of {self.min_free_bytes // 2**20} MB"
            )

    def instance_path(self, receipt: Receipt) -> Path:
        """Where ``receipt``'s instance lies."""
        return self.root / receipt.path

    def store_output(self, receipt_id: str, series_number: int, modality: str, data: bytes) -> None:
        """Store one output of ``receipt_id`` durably (one file per output series)."""
        write_durably(self.root / OUTPUTS / receipt_id / f"{series_number}-{modality.lower()}.dcm", data)

    def stored_outputs(self, receipt_id: str) -> list[Path]:
        """The stored outputs of ``receipt_id``, in series order."""
        return sorted((self.root / OUTPUTS / receipt_id).glob("*.dcm"))

    def remove_orphans(self) -> int:
        """Remove what an interrupted run left among the instances (at start-up, before the SCP,
        their only writer, listens): temp files of unfinished writes, and instance files with no
        journal row, whose C-STORE was never answered with success (the sender sends them
        again). Returns how many were removed."""
        orphans = list((self.root / INSTANCES).glob(f"*/{TEMPORARY_PREFIX}*"))
        for path in (self.root / INSTANCES).glob("*/*.dcm"):
            if self.journal.get(path.stem) is None:
                orphans.append(path)
        for path in orphans:
            path.unlink(missing_ok=True)
        if orphans:
            log.warning("removed %d files left by an interrupted run (never acknowledged)", len(orphans))
        return len(orphans)

    def store(
        self, data: bytes, calling_ae: str, called_ae: str, sop_class_uid: str, sop_instance_uid: str,
        destination: str | None,
    ) -> str:
        """Spool one received instance and journal it with where its results go; returns the
        receipt id.

        Every receipt gets its own file (a re-send never overwrites an accepted instance).
        Raises :class:`SpoolError` with nothing left behind if the file or journal write fails.
        """
        self._check_free_space()
        receipt_id = uuid.uuid4().hex
        relative = f"{INSTANCES}/{receipt_id[:2]}/{receipt_id}.dcm"
        target = self.root / relative
        try:
            write_durably(target, data)
        except OSError as error:
            raise SpoolError(f"cannot write {relative}: {error}") from error
        try:
            self.journal.record_receipt(
                receipt_id, calling_ae, called_ae, sop_class_uid, sop_instance_uid, relative, destination
            )
        except Exception as error:
            target.unlink(missing_ok=True)
            raise SpoolError(f"cannot journal {relative}: {error}") from error
        return receipt_id
