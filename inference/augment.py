"""Random affine transforms for training (BSNET.md "Loss and training").

The synthetic alignment set ("alignment pre-training"): each radiograph and its
lung mask are rotated by up to 25 degrees, scaled by up to 10 % and shifted by up to 10 %, the
same transform for both; the alignment block must undo it, so its target is the un-transformed
mask. The scoring stage uses milder transforms of the same kind plus a brightness/contrast
jitter as data augmentation. Transforms are theta matrices of ``torch.nn.functional.affine_grid``
(output -> input normalised coordinates) applied with ``grid_sample`` (:func:`resample`), so that
images and masks are resampled with one geometry. (The network's own sampler,
:func:`inference.bsnet.alignment.warp`, reproduces the authors' edge behaviour, which an
augmentation should not add.) Every draw takes an explicit generator, which
makes a run reproducible and resumable.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AffineRange:
    """Largest rotation (degrees), relative zoom and shift (fraction of the image side)."""

    rotation: float
    zoom: float
    shift: float


SYNTHETIC_ALIGNMENT = AffineRange(rotation=25.0, zoom=0.10, shift=0.10)
SCORING_AUGMENTATION = AffineRange(rotation=10.0, zoom=0.05, shift=0.05)
INTENSITY_JITTER = 0.1  # brightness offset and relative contrast change, uniform +-


def _uniform(count: int, limit: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(count, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * limit


def random_affine(count: int, ranges: AffineRange, generator: torch.Generator) -> torch.Tensor:
    """``count`` random theta matrices (count, 2, 3): rotation, isotropic zoom and shift.

    A shift of 10 % of the image side is 0.2 in normalised [-1, 1] coordinates.
    """
    angle = _uniform(count, math.radians(ranges.rotation), generator)
    scale = 1.0 + _uniform(count, ranges.zoom, generator)
    shift = _uniform(count * 2, 2.0 * ranges.shift, generator).view(count, 2)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], dim=1), torch.stack([sin, cos, shift[:, 1]], dim=1)], dim=1
    )
    return theta.float()


def resample(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Bilinear affine resampling of (B, C, H, W) by theta (B, 2, 3); zeros outside the input."""
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def transform_pair(
    images: torch.Tensor, masks: torch.Tensor, ranges: AffineRange, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one random transform per sample to images and masks (B, 1, S, S) alike."""
    theta = random_affine(images.shape[0], ranges, generator)
    return resample(images, theta), resample(masks, theta)


def augment_images(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Scoring-stage augmentation: a mild random affine and a brightness/contrast jitter.

    No horizontal flips: they would swap the patient's right and left lungs (regions A-C, D-F).
    """
    moved = resample(images, random_affine(images.shape[0], SCORING_AUGMENTATION, generator))
    count = images.shape[0]
    contrast = (1.0 + _uniform(count, INTENSITY_JITTER, generator)).float().view(-1, 1, 1, 1)
    brightness = _uniform(count, INTENSITY_JITTER, generator).float().view(-1, 1, 1, 1)
    return ((moved - 0.5) * contrast + 0.5 + brightness).clamp(0.0, 1.0)
