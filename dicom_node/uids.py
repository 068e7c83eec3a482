"""Deterministic DICOM UIDs: the same inputs always give the same UID.

PS3.5 Annex B.2: a UID may be "2.25." followed by the decimal value of a UUID. We use a
name-based (SHA-1, version 5) UUID of the parts, so a retry or a re-send of the same radiograph
produces the same output UIDs and the PACS overwrites instead of duplicating.

``pydicom.uid.generate_uid(prefix=None, ...)`` is not used: with ``prefix=None`` it ignores
``entropy_srcs`` and returns a random UUID.
"""

import json
import uuid

# Fixed namespace of this project's name-based UUIDs (never change it: every output UID depends
# on it).
_NAMESPACE = uuid.UUID("8ac2b502-5edb-4529-b33c-48fa1358b980")


def derived_uid(*parts: str) -> str:
    """A "2.25..." UID determined by ``parts`` (order matters; at most 44 characters)."""
    if not parts:
        raise ValueError("derived_uid needs at least one part")
    name = json.dumps([str(part) for part in parts])  # unambiguous: ("ab", "c") != ("a", "bc")
    return f"2.25.{uuid.uuid5(_NAMESPACE, name).int}"
