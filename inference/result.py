"""The typed result of scoring one radiograph with BS-Net."""

from dataclasses import dataclass

import numpy as np

from inference.geometry import FrameMapping
from inference.regions import MAX_GLOBAL_SCORE, REGION_NAMES

UNTRAINED_WARNING = "UNTRAINED MODEL - DEMONSTRATION ONLY"


@dataclass(frozen=True)
class ModelIdentity:
    """What produced a result: the model's name and version, its weights' sha256 and where they
    come from ("authors' release", "own training" or "untrained"), and whether they are randomly
    initialised. Every output names it; output UIDs derive from :attr:`uid_parts`."""

    name: str
    version: str
    weights_sha256: str
    weights_source: str
    untrained: bool

    @property
    def uid_parts(self) -> tuple[str, str, str]:
        """Name, version and weights checksum: another model or other weights, other outputs."""
        return self.name, self.version, self.weights_sha256

    @property
    def short_checksum(self) -> str:
        """The first 12 hex digits of the weights' sha256, as people read them."""
        return self.weights_sha256[:12]

    @property
    def label(self) -> str:
        """One line naming the model, its version and checksum (and the untrained warning)."""
        label = f"{self.name} {self.version} (weights sha256 {self.short_checksum}, {self.weights_source})"
        return f"{label} {UNTRAINED_WARNING}" if self.untrained else label


@dataclass
class BrixiaResult:
    """Brixia scores and maps for one image.

    region_scores: {"A".."F": 0-3}; probabilities: {"A".."F": (p0, p1, p2, p3)};
    global_score: 0-18. lung_mask (S, S) bool, region_map (S, S) uint8 (0 = background, 1..6 =
    A..F) and explainability (6, S, S) float32 in [0, 1] are in the model frame; ``mapping`` and
    :meth:`to_source` bring them to source pixels. ``model`` says what produced the result.
    """

    region_scores: dict[str, int]
    probabilities: dict[str, tuple[float, float, float, float]]
    global_score: int
    lung_mask: np.ndarray
    region_map: np.ndarray
    explainability: np.ndarray
    mapping: FrameMapping
    model: ModelIdentity

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
