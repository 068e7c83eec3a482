"""Evaluate a weights file on an annotated folder and write a markdown report with PNG plots.

The folder is in our layout (:mod:`inference.datasets`) or the BrixIA COVID-19 Dataset's
(:mod:`inference.brixia_dataset`); :func:`evaluate_folder` tells them apart by their files.

Scores come from the node's own :class:`~inference.predictor.Predictor` (same preprocessing, same
arg-max scores as in production), run at the input size the weights were trained at. Figures are
those of :mod:`inference.evaluation`. Plots are drawn with PIL: one
confusion-matrix heatmap per region and predicted against annotated global score.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from pydicom.errors import InvalidDicomError

from inference.brixia_dataset import LAYOUT_BRIXIA, EvaluationSource, open_annotated_folder
from inference.errors import InferenceError
from inference.evaluation import constant_scores, evaluation_report
from inference.predictor import Predictor, prepare_input
from inference.preprocessing import PreparedImage
from inference.regions import MAX_GLOBAL_SCORE, REGION_NAMES, SCORE_LEVELS

log = logging.getLogger(__name__)

CELL = 44
MARGIN = 36
PLOT = 360
PROGRESS_EVERY = 500
# What reading one image may raise (pydicom and PIL raise many types for broken files).
READ_ERRORS = (InferenceError, InvalidDicomError, OSError, EOFError, ValueError)


@dataclass
class Evaluation:
    """A folder's figures (``report``) and the (N, 6) scores behind them."""

    report: dict
    filenames: list[str]
    predicted: np.ndarray
    reference: np.ndarray


def predict_scores(predictor: Predictor, paths: Sequence[Path]) -> tuple[np.ndarray, list[int]]:
    """(N, 6) arg-max scores of the images at ``paths`` (rows of unreadable ones: -1) and the
    indices of the unreadable ones (skipped with a warning).

    Images are read one at a time through the node's own preprocessing (DICOM: Modality LUT,
    VOI, MONOCHROME1 inversion) and scored ``predictor.options.batch_size`` at a time; only one batch of
    model inputs and results is held, so a folder of thousands of DICOMs fits in memory.
    """
    scores = np.full((len(paths), len(REGION_NAMES)), -1, dtype=np.int64)
    unreadable: list[int] = []
    step = predictor.options.batch_size
    for start in range(0, len(paths), step):
        indices, batch = [], []
        for index in range(start, min(start + step, len(paths))):
            prepared = _prepare(predictor, paths[index])
            if prepared is None:
                unreadable.append(index)
            else:
                indices.append(index)
                batch.append(prepared)
        if batch:
            results = predictor.predict_batch(batch)
            scores[indices] = [[result.region_scores[name] for name in REGION_NAMES] for result in results]
        done = min(start + step, len(paths))
        if done % PROGRESS_EVERY < step or done == len(paths):
            log.info("scored %d/%d images", done, len(paths))
    return scores, unreadable


def _prepare(predictor: Predictor, path: Path) -> PreparedImage | None:
    try:
        return prepare_input(path, predictor.input_size)
    except READ_ERRORS as error:
        log.warning("%s cannot be read and is skipped: %s", path, error)
        return None


def _data_summary(source: EvaluationSource, scored: int, unreadable: list[str], consensus_only: bool) -> dict:
    brixia = source.layout == LAYOUT_BRIXIA
    return {
        "layout": source.layout,
        "table": source.table.name,
        "reference": "BrixiaScore of the BrixIA COVID-19 Dataset (one radiologist per image)" if brixia else None,
        "consensus_test_set_only": consensus_only,
        "listed": source.listed,
        "excluded": source.excluded,
        "missing_files": len(source.missing),
        "missing_examples": source.missing[:10],
        "unreadable_files": len(unreadable),
        "unreadable_examples": unreadable[:10],
        "scored": scored,
    }


def evaluate_folder(
    root: Path,
    weights: Path,
    label: str = "senior",
    device: str | torch.device | None = None,
    batch_size: int = 8,
    consensus_only: bool = False,
) -> Evaluation:
    """Score every image of ``root`` annotated by ``label`` and compare with the annotations.

    ``root`` is in our layout (annotations.csv, :mod:`inference.datasets`) or the BrixIA COVID-19
    Dataset's (metadata_global_v2.csv, :mod:`inference.brixia_dataset`), detected from its files;
    the latter's BrixiaScore is the ``senior`` reference and has no junior scores (no human
    baseline); ``consensus_only`` keeps its ConsensusTestset rows. Files listed but absent, and
    files that cannot be read, are skipped with a warning and counted in ``report["data"]``.
    The constant baseline uses the training-set constant recorded in the weights' metadata; for
    weights without it, the lower median of the evaluated labels (optimistic, said in the report).
    """
    if label not in ("senior", "junior"):
        raise ValueError(f"label must be senior or junior, got {label!r}")
    source = open_annotated_folder(root, consensus_only=consensus_only)
    keep = [i for i, record in enumerate(source.records) if getattr(record, label) is not None]
    if not keep:
        brixia = source.layout == LAYOUT_BRIXIA
        hint = " (the BrixIA COVID-19 Dataset has one score per image: use senior)" if brixia else ""
        raise ValueError(f"no image in {root} has {label} scores{hint}")
    predictor = Predictor(weights=weights, device=device, batch_size=batch_size)
    metadata = predictor.metadata
    predicted, unreadable = predict_scores(predictor, [source.paths[i] for i in keep])
    if len(unreadable) == len(keep):
        raise ValueError(f"none of the {len(keep)} images of {root} could be read")
    failed = set(unreadable)
    scored = [i for position, i in enumerate(keep) if position not in failed]
    predicted = np.delete(predicted, unreadable, axis=0)
    records = [source.records[i] for i in scored]
    reference = np.array([getattr(r, label) for r in records])
    other_label = "junior" if label == "senior" else "senior"
    other = np.array([getattr(r, other_label) or (-1,) * len(REGION_NAMES) for r in records])
    recorded = metadata.metrics.get("constant_scores")
    if recorded is not None:
        constant, note = np.asarray(recorded), "per-region lower median of the training labels (weights metadata)"
    else:
        constant, note = constant_scores(reference), "per-region lower median of the evaluated labels (optimistic)"
    report = evaluation_report(predicted, reference, other, constant, label, note)
    report["weights"] = {
        "file": str(weights),
        "sha256": predictor.identity.weights_sha256,
        "model_version": predictor.identity.version,
        "input_size": predictor.input_size,
        "training_data": metadata.training_data,
    }
    unreadable_names = [source.records[keep[position]].filename for position in unreadable]
    report["data"] = _data_summary(source, len(records), unreadable_names, consensus_only)
    return Evaluation(report, [r.filename for r in records], predicted, reference)


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def confusion_png(confusion: dict[str, list[list[int]]], path: Path) -> None:
    """Six 4 x 4 heatmaps (rows: annotated score, columns: predicted), counts written in the cells."""
    side = SCORE_LEVELS * CELL + MARGIN
    canvas = Image.new("RGB", (3 * (side + MARGIN), 2 * (side + MARGIN)), "white")
    draw, font = ImageDraw.Draw(canvas), _font()
    for index, name in enumerate(REGION_NAMES):
        matrix = np.asarray(confusion[name])
        left = (index % 3) * (side + MARGIN) + MARGIN
        top = (index // 3) * (side + MARGIN) + MARGIN
        draw.text((left, top - MARGIN + 4), f"region {name}: annotated (rows) vs predicted", fill="black", font=font)
        peak = max(int(matrix.max()), 1)
        for i in range(SCORE_LEVELS):
            draw.text((left - 14, top + i * CELL + CELL // 2 - 5), str(i), fill="black", font=font)
            draw.text((left + i * CELL + CELL // 2 - 3, top + SCORE_LEVELS * CELL + 4), str(i), fill="black", font=font)
            for j in range(SCORE_LEVELS):
                shade = int(255 - 200 * matrix[i, j] / peak)
                box = (left + j * CELL, top + i * CELL, left + (j + 1) * CELL, top + (i + 1) * CELL)
                draw.rectangle(box, fill=(shade, shade, 255), outline="grey")
                colour = "white" if shade < 140 else "black"
                draw.text((box[0] + CELL // 2 - 6, box[1] + CELL // 2 - 5), str(matrix[i, j]), fill=colour, font=font)
    canvas.save(path)


def global_scatter_png(annotated: np.ndarray, predicted: np.ndarray, path: Path) -> None:
    """Predicted against annotated global score (0-18), with the identity line."""
    size = PLOT + 2 * MARGIN
    canvas = Image.new("RGB", (size, size), "white")
    draw, font = ImageDraw.Draw(canvas), _font()

    def point(x: float, y: float) -> tuple[float, float]:
        return MARGIN + x / MAX_GLOBAL_SCORE * PLOT, MARGIN + PLOT - y / MAX_GLOBAL_SCORE * PLOT

    draw.rectangle((MARGIN, MARGIN, MARGIN + PLOT, MARGIN + PLOT), outline="black")
    draw.line((*point(0, 0), *point(MAX_GLOBAL_SCORE, MAX_GLOBAL_SCORE)), fill="grey")
    for tick in range(0, MAX_GLOBAL_SCORE + 1, 3):
        x, y = point(tick, tick)
        draw.text((x - 4, MARGIN + PLOT + 4), str(tick), fill="black", font=font)
        draw.text((MARGIN - 18, y - 5), str(tick), fill="black", font=font)
    draw.text((MARGIN, 8), "global score: predicted (y) vs annotated (x)", fill="black", font=font)
    for a, p in zip(annotated, predicted, strict=True):
        x, y = point(float(a), float(p))
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), outline=(30, 60, 200), width=2)
    canvas.save(path)


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _data_line(data: dict) -> str:
    """One sentence on what was read: layout, rows listed, and what was skipped."""
    subset = ", consensus test set only" if data.get("consensus_test_set_only") else ""
    line = f"Data: {data['table']} ({data['layout']} layout{subset}), {data['listed']} rows listed"
    if data.get("excluded"):
        line += f", {data['excluded']} outside the selection"
    line += f"; {data['missing_files']} listed files missing and {data['unreadable_files']} unreadable (skipped)."
    return line


def write_report(evaluation: Evaluation, folder: Path) -> Path:
    """Write ``report.md``, ``confusion.png`` and ``global_scores.png`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    report = evaluation.report
    confusion_png(report["confusion"], folder / "confusion.png")
    global_scatter_png(evaluation.reference.sum(axis=1), evaluation.predicted.sum(axis=1), folder / "global_scores.png")
    columns = [("model", report)] + [(name, value) for name, value in report["baselines"].items()]
    keys = ("region_mae", "region_accuracy", "global_mae", "kappa_linear", "kappa_quadratic", "global_correlation")
    data = report.get("data", {})
    reference = data.get("reference") or f"the {report['label']} radiologist"
    lines = [
        "# BS-Net evaluation (research use only)",
        "",
        f"Weights: `{report['weights']['file']}` (sha256 {report['weights']['sha256'][:16]}, "
        f"input {report['weights']['input_size']} px). Reference: {reference}, {report['n_images']} images.",
        "",
    ]
    if data:
        lines += [_data_line(data), ""]
    lines += [
        "| figure | " + " | ".join(name for name, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    lines += [f"| {key} | " + " | ".join(_figure(value[key]) for _, value in columns) + " |" for key in keys]
    lines += ["| images | " + " | ".join(str(value["n_images"]) for _, value in columns) + " |", ""]
    if "human" in report["baselines"]:
        human = report["baselines"]["human"]
        lines.append(
            f"On the {human['n_images']} images scored by both radiologists the model's region MAE is "
            f"{human['model_on_same_images']['region_mae']:.3f}; the {human['rater']} radiologist's is "
            f"{human['region_mae']:.3f}."
        )
    lines += [
        f"Constant predictor: {report['baselines']['constant']['definition']}.",
        "",
        "| region | " + " | ".join(REGION_NAMES) + " |",
        "|---|" + "---|" * len(REGION_NAMES),
        "| model MAE | " + " | ".join(f"{report['per_region_mae'][n]:.3f}" for n in REGION_NAMES) + " |",
        "",
        "## Confusion matrices (rows: annotated score, columns: predicted score)",
        "",
        "![confusion matrices](confusion.png)",
        "",
        "## Global score",
        "",
        "![predicted vs annotated global score](global_scores.png)",
        "",
    ]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
