"""Agreement figures for Brixia scores, written out with numpy (the kinds the BS-Net paper reports).

Scores are (N, 6) integer arrays, regions A..F, values 0-3. Region figures pool all N x 6 region
scores: mean absolute error, exact-match accuracy, Cohen's kappa with linear and quadratic
weights (Cohen 1960, 1968), one 4 x 4 confusion matrix per region (rows: reference score,
columns: predicted score). Global figures use the per-image sums (0-18): MAE and Pearson's r.

Baselines: a human one (the other radiologist against the reference one, on the images that have
both annotations) and a constant predictor. The constant is the per-region *lower median* of the
training labels: a median minimises the absolute error, and the lower one is an integer score.
"""

import numpy as np

from inference.regions import REGION_NAMES, SCORE_LEVELS

KAPPA_WEIGHTS = ("linear", "quadratic")


def confusion_matrix(reference: np.ndarray, predicted: np.ndarray, levels: int = SCORE_LEVELS) -> np.ndarray:
    """(levels, levels) counts: entry [i, j] = how often reference i was predicted as j."""
    reference, predicted = np.asarray(reference).ravel(), np.asarray(predicted).ravel()
    matrix = np.zeros((levels, levels), dtype=np.int64)
    np.add.at(matrix, (reference, predicted), 1)
    return matrix


def cohen_kappa(reference: np.ndarray, predicted: np.ndarray, weights: str, levels: int = SCORE_LEVELS) -> float | None:
    """Weighted Cohen's kappa = 1 - sum(w * observed) / sum(w * expected).

    w[i, j] = |i - j| / (levels - 1) ("linear") or its square ("quadratic"); expected = outer
    product of the two raters' marginals / N. None where undefined (no expected disagreement).
    """
    if weights not in KAPPA_WEIGHTS:
        raise ValueError(f"weights must be one of {KAPPA_WEIGHTS}, got {weights!r}")
    observed = confusion_matrix(reference, predicted, levels).astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    distance = np.abs(np.subtract.outer(np.arange(levels), np.arange(levels))) / (levels - 1)
    weight = distance if weights == "linear" else distance**2
    disagreement = float((weight * expected).sum())
    if disagreement == 0.0:
        return None
    return 1.0 - float((weight * observed).sum()) / disagreement


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson's correlation coefficient; None where either variable is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    norm = float(np.sqrt((dx**2).sum() * (dy**2).sum()))
    return None if norm == 0.0 else float((dx * dy).sum()) / norm


def agreement(reference: np.ndarray, predicted: np.ndarray) -> dict:
    """Every figure of this module for (N, 6) reference and predicted scores, as a JSON-able dict."""
    reference, predicted = np.asarray(reference, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    if reference.shape != predicted.shape or reference.ndim != 2 or reference.shape[1] != len(REGION_NAMES):
        raise ValueError(f"expected two (N, 6) score arrays, got {reference.shape} and {predicted.shape}")
    errors = np.abs(reference - predicted)
    global_reference, global_predicted = reference.sum(axis=1), predicted.sum(axis=1)
    return {
        "n_images": int(reference.shape[0]),
        "region_mae": float(errors.mean()),
        "region_accuracy": float((errors == 0).mean()),
        "global_mae": float(np.abs(global_reference - global_predicted).mean()),
        "kappa_linear": cohen_kappa(reference, predicted, "linear"),
        "kappa_quadratic": cohen_kappa(reference, predicted, "quadratic"),
        "global_correlation": pearson(global_reference, global_predicted),
        "per_region_mae": {name: float(errors[:, r].mean()) for r, name in enumerate(REGION_NAMES)},
        "confusion": {
            name: confusion_matrix(reference[:, r], predicted[:, r]).tolist() for r, name in enumerate(REGION_NAMES)
        },
    }


def constant_scores(training_labels: np.ndarray) -> np.ndarray:
    """Per-region lower median of (N, 6) training labels -> (6,) integer constant prediction."""
    return np.quantile(np.asarray(training_labels), 0.5, axis=0, method="lower").astype(np.int64)


def evaluation_report(
    predicted: np.ndarray,
    reference: np.ndarray,
    other_rater: np.ndarray | None,
    constant: np.ndarray,
    label: str,
    constant_note: str = "per-region lower median of the training labels",
) -> dict:
    """Model figures against ``reference`` plus the human and constant baselines.

    ``constant`` is the constant prediction, (6,) or (N, 6) (cross-validation: one per fold).
    ``other_rater`` (N, 6) holds the other radiologist's scores with -1 rows where absent; the
    human baseline and a model figure restricted to the same images are given where any exist.
    """
    reference = np.asarray(reference, dtype=np.int64)
    report = agreement(reference, predicted)
    report["label"] = label
    report["baselines"] = {
        "constant": {
            "definition": constant_note,
            **agreement(reference, np.broadcast_to(constant, reference.shape)),
        }
    }
    if other_rater is not None:
        both = (np.asarray(other_rater) >= 0).all(axis=1)
        if both.any():
            rater = "junior" if label == "senior" else "senior"
            report["baselines"]["human"] = {
                "rater": rater,
                "reference": label,
                **agreement(reference[both], np.asarray(other_rater)[both]),
                "model_on_same_images": agreement(reference[both], np.asarray(predicted)[both]),
            }
    return report
