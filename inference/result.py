"""The typed result of scoring one radiograph with BS-Net."""

from dataclasses import dataclass

import numpy as np

from inference.geometry import FrameMapping
from inference.regions import MAX_GLOBAL_SCORE, REGION_NAMES

UNTRAINED_WARNING = "UNTRAINED MODEL - DEMONSTRATION ONLY"


@dataclass
class BrixiaResult:
    """Brixia scores and maps for one image.

    region_scores: {"A".."F": 0-3}; probabilities: {"A".."F": (p0, p1, p2, p3)};
    global_score: 0-18. lung_mask (S, S) bool, region_map (S, S) uint8 (0 = background, 1..6 =
    A..F) and explainability (6, S, S) float32 in [0, 1] are in the model frame; ``mapping`` and
    :meth:`to_source` bring them to source pixels. model_name/model_version/weights_sha256 say what
    produced the result and weights_source where the weights come from ("authors' release", "own
    training" or "untrained"); ``untrained`` is True for randomly initialised weights.
    """

    region_scores: dict[str, int]
    probabilities: dict[str, tuple[float, float, float, float]]
    global_score: int
    lung_mask: np.ndarray
    region_map: np.ndarray
    explainability: np.ndarray
    mapping: FrameMapping
    model_name: str
    model_version: str
    weights_sha256: str
    untrained: bool
    weights_source: str

    def __post_init__(self) -> None:
        if tuple(self.region_scores) != REGION_NAMES:
            raise ValueError(f"region scores must be keyed {REGION_NAMES}")
        if not all(0 <= s <= 3 for s in self.region_scores.values()):
            raise ValueError(f"region scores out of 0-3: {self.region_scores}")
        if self.global_score != sum(self.region_scores.values()) or self.global_score > MAX_GLOBAL_SCORE:
            raise ValueError("global score must be the sum of the region scores")

    def to_source(self, model_map: np.ndarray, labels: bool = False) -> np.ndarray:
        """A model-frame map -> source pixels (nearest for masks/labels, bilinear otherwise)."""
        return self.mapping.map_to_source(model_map, labels=labels)

    @property
    def algorithm_label(self) -> str:
        """One line naming the model, its version and checksum (and the untrained warning)."""
        label = (
            f"{self.model_name} {self.model_version} (weights sha256 {self.weights_sha256[:12]}, {self.weights_source})"
        )
        return f"{label} {UNTRAINED_WARNING}" if self.untrained else label
