"""The one way files are written: atomically and durably (a temporary file in the target's
folder, fsync, rename over the target, fsync of the folder; each folder created on the way is
fsynced in its own parent), so that a crash leaves either the old file or the new one, never a
part, and never a file whose folder was lost. Spooled instances, outputs, weights and checkpoints."""

import io
import os
import tempfile
from pathlib import Path

import torch

TEMPORARY_PREFIX = ".incoming-"  # a crash can leave such a file behind: the spool removes them at start


def _fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def make_folders_durably(folder: Path) -> None:
    """Create ``folder`` and any missing parents, for their owner alone (they hold patient data),
    each one's entry fsynced in its parent (POSIX: a new directory entry is durable only once its
    directory is fsynced)."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir(mode=0o700, exist_ok=True)  # another process may create it meanwhile
        _fsync_directory(created.parent)


def write_durably(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically and durably. On any failure nothing is left at
    ``target`` or in its folder."""
    make_folders_durably(target.parent)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=TEMPORARY_PREFIX)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
        _fsync_directory(target.parent)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_durably(payload: object, target: Path) -> None:
    """``torch.save`` of ``payload`` to ``target``, written with :func:`write_durably`."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_durably(target, buffer.getvalue())
