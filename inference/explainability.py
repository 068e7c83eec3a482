"""Per-region maps in the model input frame, derived from one BS-Net forward pass.

Explainability (the paper shows per-region activity maps; BSNET.md allows any documented
faithful method). Each head ends in conv -> global average pooling, so the expected score
E = sum_k k p_k has the exact first-order decomposition over head-map locations
dE/dz_k = p_k (k - E) with z_k = mean(a_k): the map c(x) = sum_k p_k (k - E) a_k(x) says where the
region's features push its score up. We keep the positive part, normalise it to [0, 1] per
region, and carry it from the pooled region frame back through the ROI box and the inverse
alignment to the input frame. The lung mask and the region label map use the same geometry.
"""

import torch
import torch.nn.functional as F

from inference.bsnet.alignment import invert_affine
from inference.bsnet.model import BSNetOutput
from inference.bsnet.roi_pooling import region_thetas
from inference.regions import REGIONS, SCORE_LEVELS


def _as_square(theta: torch.Tensor) -> torch.Tensor:
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=theta.dtype, device=theta.device)
    return torch.cat([theta, bottom.expand(*theta.shape[:-2], 1, 3)], dim=-2)


def lung_mask(output: BSNetOutput, threshold: float = 0.5) -> torch.Tensor:
    """(B, S, S) bool lung mask in the input frame."""
    return torch.sigmoid(output.lung_logits.float())[:, 0] > threshold


def region_label_map(output: BSNetOutput, mask: torch.Tensor) -> torch.Tensor:
    """(B, S, S) uint8: 0 outside the lungs, 1..6 for regions A..F, by each lung pixel's
    position in the aligned frame (rows split at 0.35 / 0.65, columns at 0.5)."""
    batch, size = mask.shape[0], mask.shape[-1]
    inverse = invert_affine(output.theta.float())
    grid = F.affine_grid(inverse, [batch, 1, size, size], align_corners=False)
    x01 = ((grid[..., 0] + 1.0) / 2.0).clamp(0.0, 1.0)
    y01 = ((grid[..., 1] + 1.0) / 2.0).clamp(0.0, 1.0)
    labels = torch.zeros(batch, size, size, dtype=torch.uint8, device=mask.device)
    for index, region in enumerate(REGIONS):
        top, bottom = region.label_rows
        in_rows = (y01 >= top) & ((y01 < bottom) | (bottom >= 1.0))
        in_cols = (x01 < 0.5) if region.lung == "right" else (x01 >= 0.5)
        labels[in_rows & in_cols & mask] = index + 1
    return labels


def severity_contributions(output: BSNetOutput) -> torch.Tensor:
    """(B, 6, h, w): positive first-order contribution of each head location to the expected score."""
    probabilities = output.score_probabilities  # (B, 6, 4)
    levels = torch.arange(SCORE_LEVELS, dtype=torch.float32, device=probabilities.device)
    expected = (probabilities * levels).sum(-1, keepdim=True)
    weights = probabilities * (levels - expected)  # dE/dz_k
    activations = output.region_activations.float()
    return torch.relu((weights[..., None, None] * activations).sum(dim=2))


def explainability_maps(output: BSNetOutput, size: int) -> torch.Tensor:
    """(B, 6, size, size) per-region maps in [0, 1] in the input frame (see module docstring)."""
    contributions = severity_contributions(output)
    batch, regions, height, width = contributions.shape
    boxes = _as_square(region_thetas(torch.float32, contributions.device))  # pooled -> aligned
    alignment = _as_square(output.theta.float())  # aligned -> input
    # input frame q -> aligned p = inv(theta) q -> pooled u = inv(box) p
    to_pooled = torch.linalg.inv(boxes)[None] @ torch.linalg.inv(alignment)[:, None]
    grid = F.affine_grid(
        to_pooled[..., :2, :].reshape(batch * regions, 2, 3),
        [batch * regions, 1, size, size],
        align_corners=True,
    )
    maps = F.grid_sample(
        contributions.reshape(batch * regions, 1, height, width),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    ).view(batch, regions, size, size)
    peak = maps.amax(dim=(-2, -1), keepdim=True)
    return torch.where(peak > 0, maps / peak.clamp_min(1e-12), torch.zeros_like(maps))
