"""The BrixIA COVID-19 Dataset in its own layout, and which layout an evaluation folder uses.

The authors distribute ~4,700 anonymised DICOM radiographs (github.com/BrixIA/Brixia-score-COVID-19,
README "BrixIA COVID-19 Dataset": the archives unpack to a folder ``dicom_clean/``) and a metadata
CSV; the project page (brixia.github.io, "Brixia score COVID-19 dataset") lists its fields:
``Filename`` (the DICOM file), ``BrixiaScore`` ("the 6 regions ... ABCDEF from 0 to 3", one digit
per region in that order: digit 1 = A upper right ... digit 6 = F lower left, BSNET.md "Brixia
score"), ``BrixiaScoreGlobal`` (their sum), ``ConsensusTestset`` (whether the image was
re-annotated in the consensus set), ``Subject``, ``Sex``, ``AgeAtStudyDateFiveYear``, ...

A folder in this layout holds ``metadata_global_v2.csv`` (or another CSV with a ``BrixiaScore``
column) and the DICOM files, either in ``dicom_clean/`` or beside the CSV. Tolerant readings,
where the published facts stop:

- separator: users' code reads the file with ``;``; ``,``, ``;`` and tab are all accepted (the one
  most frequent in the header line wins); column names match without regard to case (v1 says
  ``filename``);
- ``BrixiaScore`` with fewer than six digits is taken to have lost its leading zeros to a program
  that read it as a number ("1203" -> "001203"), and a trailing ".0" of such a program is dropped;
- ``ConsensusTestset``: 1/0 (also true/false, yes/no); other values count as "not in the set".

The dataset has one radiologist's score per image: it is the reference (``senior`` in
:class:`~inference.datasets.AnnotatedImage`); there are no junior scores, so no human baseline.
Files listed but absent are skipped with a warning and counted; a malformed ``BrixiaScore`` is a
:class:`~inference.datasets.DatasetError` naming the line.
"""

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from inference.datasets import AnnotatedImage, DatasetError, read_annotations
from inference.regions import REGION_NAMES

log = logging.getLogger(__name__)

METADATA_CSV = "metadata_global_v2.csv"
DICOM_FOLDER = "dicom_clean"
SCORE_COLUMN = "BrixiaScore"
FILENAME_COLUMN = "Filename"
GLOBAL_COLUMN = "BrixiaScoreGlobal"
CONSENSUS_COLUMN = "ConsensusTestset"
OUR_ANNOTATIONS = "annotations.csv"
LAYOUT_BRIXIA = "brixia-covid19"
LAYOUT_ANNOTATIONS = "annotations"
_SEPARATORS = ",;\t"
_TRUE = {"1", "true", "yes", "y"}
_FALSE = {"0", "false", "no", "n", ""}


@dataclass(frozen=True)
class BrixiaRow:
    """One usable row of the metadata CSV: DICOM path, scores A..F, consensus-set flag, CSV line."""

    filename: str
    path: Path
    scores: tuple[int, ...]
    consensus: bool | None
    line: int


@dataclass
class BrixiaTable:
    """The rows whose DICOM file exists, and the names of those listed but missing on disk."""

    csv_path: Path
    image_dir: Path
    rows: list[BrixiaRow]
    missing: list[str] = field(default_factory=list)


@dataclass
class EvaluationSource:
    """An annotated folder in either layout, as the evaluation reads it.

    ``records[i]`` is the image at ``paths[i]``; ``listed`` counts the rows of the table, ``missing``
    names files listed but absent (skipped), ``excluded`` counts rows left out on purpose.
    """

    layout: str
    table: Path
    paths: list[Path]
    records: list[AnnotatedImage]
    listed: int
    missing: list[str] = field(default_factory=list)
    excluded: int = 0


def _separator(header_line: str) -> str:
    """The one of ``,``, ``;`` and tab that occurs most in the header line (``,`` if none does)."""
    return max(_SEPARATORS, key=header_line.count) if any(s in header_line for s in _SEPARATORS) else ","


def _open(path: Path) -> TextIO:
    return open(path, newline="", encoding="utf-8-sig", errors="replace")


def _read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header (stripped) and (line number, row) pairs of a CSV with any accepted separator."""
    with _open(path) as stream:
        separator = _separator(stream.readline())
        stream.seek(0)
        reader = csv.reader(stream, delimiter=separator)
        header = [name.strip() for name in next(reader, [])]
        rows = []
        for cells in reader:
            if any(cell.strip() for cell in cells):
                rows.append((reader.line_num, dict(zip(header, (c.strip() for c in cells), strict=False))))
    return header, rows


def _header(path: Path) -> list[str]:
    """The stripped column names of a CSV (empty if it cannot be read)."""
    try:
        with _open(path) as stream:
            line = stream.readline()
    except OSError:
        return []
    return [name.strip() for name in next(csv.reader([line], delimiter=_separator(line)), [])]


def _column(header: list[str], name: str) -> str | None:
    """The header entry equal to ``name`` ignoring case, or None."""
    return next((entry for entry in header if entry.lower() == name.lower()), None)


def find_metadata_csv(root: Path) -> Path | None:
    """The BrixIA metadata CSV of ``root``: ``metadata_global_v2.csv``, else the one CSV with a
    ``BrixiaScore`` column; None if there is none. Several candidates without the usual name: an error."""
    root = Path(root)
    preferred = root / METADATA_CSV
    if preferred.is_file() and _column(_header(preferred), SCORE_COLUMN):
        return preferred
    candidates = [
        path
        for path in sorted(root.glob("*.csv"))
        if path.name != OUR_ANNOTATIONS and path.is_file() and _column(_header(path), SCORE_COLUMN)
    ]
    if len(candidates) > 1:
        names = ", ".join(path.name for path in candidates)
        raise DatasetError(f"{root} holds several CSVs with a {SCORE_COLUMN} column ({names}); keep one")
    return candidates[0] if candidates else None


def parse_brixia_score(text: str, where: str = "") -> tuple[int, ...]:
    """'ABCDEF' digits 0-3 -> (A, B, C, D, E, F); leading zeros lost to a number format are restored."""
    value = text.strip()
    if value.endswith(".0") and value[:-2].isdigit():
        value = value[:-2]
    prefix = f"{where}: " if where else ""
    if not value or not value.isascii() or not value.isdigit() or len(value) > len(REGION_NAMES):
        raise DatasetError(f"{prefix}{SCORE_COLUMN} {text!r} is not six digits 0-3 (regions A..F)")
    scores = tuple(int(digit) for digit in value.zfill(len(REGION_NAMES)))
    if any(score > 3 for score in scores):
        raise DatasetError(f"{prefix}{SCORE_COLUMN} {text!r} has a digit above 3 (regions A..F score 0-3)")
    return scores


def _consensus(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered.endswith(".0"):
        lowered = lowered[:-2]
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def image_folder(root: Path) -> Path:
    """Where the DICOM files are: ``root/dicom_clean`` if it exists, else ``root``."""
    root = Path(root)
    return root / DICOM_FOLDER if (root / DICOM_FOLDER).is_dir() else root


def read_brixia_table(root: Path, csv_path: Path | None = None) -> BrixiaTable:
    """Parse the metadata CSV of a BrixIA-layout folder; rows whose DICOM is absent are skipped."""
    root = Path(root)
    csv_path = Path(csv_path) if csv_path is not None else find_metadata_csv(root)
    if csv_path is None:
        raise DatasetError(f"{root} has no {METADATA_CSV} (or other CSV with a {SCORE_COLUMN} column)")
    header, lines = _read_table(csv_path)
    score_key, file_key = _column(header, SCORE_COLUMN), _column(header, FILENAME_COLUMN)
    if score_key is None or file_key is None:
        raise DatasetError(f"{csv_path.name} needs columns {FILENAME_COLUMN} and {SCORE_COLUMN}; it has {header}")
    global_key, consensus_key = _column(header, GLOBAL_COLUMN), _column(header, CONSENSUS_COLUMN)
    images = image_folder(root)
    table = BrixiaTable(csv_path, images, [])
    for line, row in lines:
        filename = row.get(file_key) or ""
        where = f"{csv_path.name} line {line} ({filename or 'no ' + FILENAME_COLUMN})"
        if not filename:
            raise DatasetError(f"{where}: empty {FILENAME_COLUMN}")
        scores = parse_brixia_score(row.get(score_key) or "", where)
        total = (row.get(global_key) or "") if global_key else ""
        if total.isdigit() and int(total) != sum(scores):
            log.warning("%s: %s %s is not the sum of %s", where, GLOBAL_COLUMN, total, scores)
        path = images / filename
        if not path.is_file():
            table.missing.append(filename)
            continue
        consensus = _consensus(row.get(consensus_key)) if consensus_key else None
        table.rows.append(BrixiaRow(filename, path, scores, consensus, line))
    if table.missing:
        shown = ", ".join(table.missing[:5]) + (", ..." if len(table.missing) > 5 else "")
        log.warning(
            "%d file(s) listed in %s are not in %s and are skipped: %s",
            len(table.missing),
            csv_path.name,
            images,
            shown,
        )
    return table


def _brixia_source(root: Path, csv_path: Path, consensus_only: bool) -> EvaluationSource:
    table = read_brixia_table(root, csv_path)
    rows = table.rows
    if consensus_only:
        if not _column(_header(csv_path), CONSENSUS_COLUMN):
            raise DatasetError(f"{csv_path.name} has no {CONSENSUS_COLUMN} column: cannot select the consensus set")
        rows = [row for row in rows if row.consensus]
    if not rows:
        raise DatasetError(
            f"{csv_path.name}: no listed DICOM file found in {table.image_dir}"
            + (" among the consensus test set" if consensus_only else "")
        )
    return EvaluationSource(
        layout=LAYOUT_BRIXIA,
        table=csv_path,
        paths=[row.path for row in rows],
        records=[AnnotatedImage(row.filename, row.scores, None, None) for row in rows],
        listed=len(table.rows) + len(table.missing),
        missing=table.missing,
        excluded=len(table.rows) - len(rows),
    )


def open_annotated_folder(root: Path, consensus_only: bool = False) -> EvaluationSource:
    """Read ``root`` in whichever layout it uses, detected from its files.

    A CSV with a ``BrixiaScore`` column (``metadata_global_v2.csv``): the BrixIA COVID-19 layout;
    ``annotations.csv``: ours (:mod:`inference.datasets`); both or neither: a DatasetError.
    ``consensus_only`` keeps the BrixIA rows with ``ConsensusTestset`` = 1.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    metadata = find_metadata_csv(root)
    ours = root / OUR_ANNOTATIONS
    if metadata is not None and ours.is_file():
        raise DatasetError(
            f"{root} holds both {ours.name} (our layout) and {metadata.name} (BrixIA COVID-19 layout); keep one"
        )
    if metadata is not None:
        return _brixia_source(root, metadata, consensus_only)
    if ours.is_file():
        if consensus_only:
            raise DatasetError(f"the consensus test set exists only in the BrixIA COVID-19 layout ({METADATA_CSV})")
        records = read_annotations(root)
        return EvaluationSource(
            LAYOUT_ANNOTATIONS, ours, [root / "images" / r.filename for r in records], records, len(records)
        )
    raise DatasetError(
        f"{root} is in neither known layout: expected {OUR_ANNOTATIONS} with images/ (see inference/datasets.py) "
        f"or the BrixIA COVID-19 Dataset's {METADATA_CSV} (a {SCORE_COLUMN} column) with {DICOM_FOLDER}/"
    )
