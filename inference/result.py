"""The typed result of scoring one radiograph with BS-Net."""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from inference.explainability import explainability_maps, region_label_map
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
    global_score: 0-18. What the maps are made of: lung_mask (S, S) bool, ``alignment`` (2, 3)
    float32, the network's alignment transform (``BSNetOutput.theta``), and ``contributions``
    (6, h, w) float32, the region heads' contributions to each expected score
    (:func:`inference.explainability.severity_contributions`). The maps are drawn from them on
    first use: :attr:`region_map` (S, S) uint8 (0 = background, 1..6 = A..F) and
    :attr:`explainability` (6, S, S) float32 in [0, 1]. All are in the model frame; ``mapping``
    and :meth:`to_source` bring them to source pixels. ``model`` says what produced the result.
    """

    region_scores: dict[str, int]
    probabilities: dict[str, tuple[float, float, float, float]]
    global_score: int
    lung_mask: np.ndarray
    alignment: np.ndarray
    contributions: np.ndarray
    mapping: FrameMapping
    model: ModelIdentity

    def __post_init__(self) -> None:
        if tuple(self.region_scores) != REGION_NAMES:
            raise ValueError(f"region scores must be keyed {REGION_NAMES}")
        if not all(0 <= s <= 3 for s in self.region_scores.values()):
            raise ValueError(f"region scores out of 0-3: {self.region_scores}")
        if self.global_score != sum(self.region_scores.values()) or self.global_score > MAX_GLOBAL_SCORE:
            raise ValueError("global score must be the sum of the region scores")

    @cached_property
    def region_map(self) -> np.ndarray:
        """(S, S) uint8: 0 outside the lungs, 1..6 for regions A..F
        (:func:`inference.explainability.region_label_map`)."""
        labels = region_label_map(torch.from_numpy(self.alignment)[None], torch.from_numpy(self.lung_mask)[None])
        return labels[0].numpy()

    @cached_property
    def explainability(self) -> np.ndarray:
        """(6, S, S) float32 in [0, 1]: each region's map (:func:`inference.explainability.explainability_maps`)."""
        contributions, theta = torch.from_numpy(self.contributions)[None], torch.from_numpy(self.alignment)[None]
        return explainability_maps(contributions, theta, self.lung_mask.shape[-1])[0].numpy()

    def to_source(self, model_map: np.ndarray, labels: bool = False) -> np.ndarray:
        """A model-frame map -> source pixels (nearest for masks/labels, bilinear otherwise)."""
        return self.mapping.map_to_source(model_map, labels=labels)
