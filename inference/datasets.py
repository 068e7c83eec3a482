"""Annotated radiograph folders for training and evaluation (the public Brixia-score layout).

A folder holds ``images/`` (JPEG/PNG or DICOM files), ``annotations.csv`` (``filename``, the
senior radiologist's ``S-A``..``S-F`` and optionally the junior's ``J-A``..``J-F``, 0-3 each,
BSNET.md "Brixia score") and optionally ``lung-masks/`` with ``index.csv`` (``image``, ``mask``)
mapping images to binary lung masks of the same size. Images go through the node's own
preprocessing (:func:`inference.preprocessing.prepare_file`); masks are resized to the model input
with the same geometry (the whole image to S x S, aspect not kept).

The BrixIA COVID-19 Dataset's own layout (dicom_clean/, metadata_global_v2.csv) is read by
:mod:`inference.brixia_dataset`, which also tells the two layouts apart for the evaluation.
"""

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inference.preprocessing import display_image_from_file, prepare_display
from inference.regions import REGION_NAMES

log = logging.getLogger(__name__)

LABEL_PREFIXES = {"senior": "S", "junior": "J"}


class DatasetError(ValueError):
    """The folder does not follow the layout described in this module."""


@dataclass(frozen=True)
class AnnotatedImage:
    """One row of annotations.csv: scores A..F per radiologist (None where absent) and mask file."""

    filename: str
    senior: tuple[int, ...] | None
    junior: tuple[int, ...] | None
    mask: str | None


@dataclass
class TensorSet:
    """A folder loaded at one input size; N images, masks only where ``has_mask``.

    images (N, 1, S, S) float32 in [0, 1]; masks (N, 1, S, S) float32 in {0, 1} (zeros where no
    mask); has_mask (N,) bool; senior / junior (N, 6) int64 with -1 where a score is absent.
    """

    filenames: list[str]
    images: torch.Tensor
    masks: torch.Tensor
    has_mask: torch.Tensor
    senior: torch.Tensor
    junior: torch.Tensor

    def __len__(self) -> int:
        return len(self.filenames)

    def labels(self, label: str) -> torch.Tensor:
        """(N, 6) scores of ``label`` ("senior" or "junior"), -1 where absent."""
        if label not in LABEL_PREFIXES:
            raise DatasetError(f"label must be one of {sorted(LABEL_PREFIXES)}, got {label!r}")
        return self.senior if label == "senior" else self.junior

    def subset(self, indices: np.ndarray | list[int]) -> "TensorSet":
        """The images at ``indices``, in that order."""
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return TensorSet(
            [self.filenames[i] for i in index.tolist()],
            self.images[index],
            self.masks[index],
            self.has_mask[index],
            self.senior[index],
            self.junior[index],
        )


def _scores(row: dict[str, str], prefix: str, filename: str) -> tuple[int, ...] | None:
    cells = [(row.get(f"{prefix}-{name}") or "").strip() for name in REGION_NAMES]
    if not any(cells):
        return None
    try:
        scores = tuple(int(cell) for cell in cells)
    except ValueError as error:
        raise DatasetError(f"{filename}: {prefix}-A..{prefix}-F must be integers 0-3: {cells}") from error
    if any(not 0 <= s <= 3 for s in scores):
        raise DatasetError(f"{filename}: {prefix}-A..{prefix}-F out of 0-3: {scores}")
    return scores


def _mask_index(root: Path) -> dict[str, str]:
    index = root / "lung-masks" / "index.csv"
    if not index.is_file():
        return {}
    with open(index, newline="") as stream:
        return {row["image"]: row["mask"] for row in csv.DictReader(stream)}


def read_annotations(root: Path) -> list[AnnotatedImage]:
    """Parse ``root/annotations.csv`` and ``root/lung-masks/index.csv``; checks files exist."""
    root = Path(root)
    table = root / "annotations.csv"
    if not table.is_file():
        raise DatasetError(f"{table} not found (see inference/datasets.py for the folder layout)")
    masks = _mask_index(root)
    records = []
    with open(table, newline="") as stream:
        for row in csv.DictReader(stream):
            filename = row["filename"]
            if not (root / "images" / filename).is_file():
                raise DatasetError(f"{filename} is listed in annotations.csv but not in {root / 'images'}")
            mask = masks.get(filename)
            if mask is not None and not (root / "lung-masks" / mask).is_file():
                log.warning("mask %s of %s is missing; image used without mask", mask, filename)
                mask = None
            records.append(
                AnnotatedImage(filename, _scores(row, "S", filename), _scores(row, "J", filename), mask)
            )
    if not records:
        raise DatasetError(f"{table} lists no images")
    return records


def _mask_at_size(path: Path, source_shape: tuple[int, int], size: int) -> np.ndarray | None:
    """Binary mask resized like the image (whole frame to size x size); None if sizes differ."""
    with Image.open(path) as image:
        mask = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    if mask.shape != source_shape:
        log.warning("mask %s is %s, its image %s: mask not used", path.name, mask.shape, source_shape)
        return None
    resized = Image.fromarray(mask, mode="F").resize((size, size), Image.Resampling.BILINEAR)
    return (np.asarray(resized) >= 0.5).astype(np.float32)


def _score_tensor(scores: list[tuple[int, ...] | None]) -> torch.Tensor:
    rows = [s if s is not None else (-1,) * len(REGION_NAMES) for s in scores]
    return torch.tensor(rows, dtype=torch.int64)


def load_folder(root: Path, size: int) -> TensorSet:
    """Read every annotated image of ``root`` at ``size`` x ``size`` (a multiple of 32)."""
    root = Path(root)
    records = read_annotations(root)
    images, masks, has_mask = [], [], []
    for record in records:
        display = display_image_from_file(root / "images" / record.filename)
        images.append(prepare_display(display, size).model_input)
        mask = None
        if record.mask is not None:
            mask = _mask_at_size(root / "lung-masks" / record.mask, display.shape, size)
        has_mask.append(mask is not None)
        masks.append(mask if mask is not None else np.zeros((size, size), dtype=np.float32))
    return TensorSet(
        filenames=[r.filename for r in records],
        images=torch.from_numpy(np.stack(images))[:, None],
        masks=torch.from_numpy(np.stack(masks))[:, None],
        has_mask=torch.tensor(has_mask, dtype=torch.bool),
        senior=_score_tensor([r.senior for r in records]),
        junior=_score_tensor([r.junior for r in records]),
    )
