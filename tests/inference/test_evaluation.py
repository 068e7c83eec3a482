"""Agreement figures on a hand-made fixture: 3 images x 6 regions, values worked out by hand.

Pooled confusion matrix (rows: reference, columns: predicted) of the 18 region pairs:
[[4,1,0,0],[1,3,2,0],[0,1,3,0],[0,0,0,3]]; marginals rows (5,6,4,3), columns (5,5,5,3).
Linear kappa: observed weighted disagreement 5 * 1/3, expected 378 / (18 * 3) = 7 -> 1 - 5/21.
Quadratic: observed 5 * 1/9, expected 714 / (18 * 9) -> 1 - 15/119.
"""

import math

import numpy as np
import pytest

from inference.evaluation import agreement, cohen_kappa, confusion_matrix, constant_scores, evaluation_report, pearson

REFERENCE = np.array([[0, 1, 2, 3, 0, 1], [1, 1, 2, 2, 3, 3], [0, 0, 0, 1, 1, 2]])
PREDICTED = np.array([[0, 1, 1, 3, 0, 2], [1, 2, 2, 2, 3, 3], [0, 0, 1, 1, 0, 2]])


def test_pooled_confusion_matrix_and_kappas_match_the_hand_computation():
    assert confusion_matrix(REFERENCE, PREDICTED).tolist() == [[4, 1, 0, 0], [1, 3, 2, 0], [0, 1, 3, 0], [0, 0, 0, 3]]
    assert cohen_kappa(REFERENCE, PREDICTED, "linear") == pytest.approx(16 / 21, abs=1e-12)
    assert cohen_kappa(REFERENCE, PREDICTED, "quadratic") == pytest.approx(104 / 119, abs=1e-12)


def test_agreement_figures_match_the_hand_computation():
    figures = agreement(REFERENCE, PREDICTED)
    assert figures["n_images"] == 3
    assert figures["region_mae"] == pytest.approx(5 / 18, abs=1e-12)
    assert figures["region_accuracy"] == pytest.approx(13 / 18, abs=1e-12)
    assert figures["global_mae"] == pytest.approx(1 / 3, abs=1e-12)  # globals 7/12/4 vs 7/13/4
    assert figures["global_correlation"] == pytest.approx(37 / math.sqrt(98 / 3 * 42), abs=1e-12)
    assert figures["per_region_mae"] == pytest.approx({"A": 0, "B": 1 / 3, "C": 2 / 3, "D": 0, "E": 1 / 3, "F": 1 / 3})
    confusion = figures["confusion"]
    assert confusion["A"] == [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert confusion["B"] == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert confusion["E"] == [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]


def test_degenerate_cases():
    assert cohen_kappa(np.ones(5, int), np.ones(5, int), "linear") is None  # no expected disagreement
    assert cohen_kappa(REFERENCE, np.ones_like(REFERENCE), "quadratic") == pytest.approx(0.0, abs=1e-12)
    assert pearson(np.arange(3), np.ones(3)) is None
    with pytest.raises(ValueError, match="weights"):
        cohen_kappa(REFERENCE, PREDICTED, "cubic")


def test_constant_is_the_lower_median_and_baselines_use_shared_images():
    training = np.array([[0] * 6, [1] * 6, [2] * 6, [3] * 6])
    assert constant_scores(training).tolist() == [1] * 6
    junior = np.array([[0, 1, 2, 3, 0, 1], [-1] * 6, [0, 0, 0, 1, 1, 3]])
    report = evaluation_report(PREDICTED, REFERENCE, junior, constant_scores(training), "senior")
    constant = report["baselines"]["constant"]
    assert constant["region_mae"] == pytest.approx(np.abs(REFERENCE - 1).mean())
    human = report["baselines"]["human"]
    assert (human["rater"], human["n_images"]) == ("junior", 2)
    assert human["region_mae"] == pytest.approx(1 / 12)
    assert human["model_on_same_images"]["region_mae"] == pytest.approx(4 / 12)
