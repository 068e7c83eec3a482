"""Per-region maps in the model input frame, derived from one BS-Net forward pass.

Explainability (the paper shows per-region activity maps; BSNET.md allows any documented
faithful method). Each head ends in conv -> global average pooling, so the expected score
E = sum_k k p_k has the exact first-order decomposition over head-map locations
dE/dz_k = p_k (k - E) with z_k = mean(a_k): the map c(x) = sum_k p_k (k - E) a_k(x) says where the
region's features push its score up. We keep the positive part, normalise it to [0, 1] per
region, and carry it from the region's crop frame back through the ROI box and the inverse
alignment to the input frame, in the geometry of the authors' sampler and crops
(:mod:`inference.bsnet.alignment`, :mod:`inference.bsnet.roi_pooling`). The region label map uses
the same geometry.

The network's side computes only the small things the maps are made of (the lung mask, the
alignment ``theta`` and the heads' contributions, :func:`severity_contributions`); the S x S maps
are drawn from them where they are used (:class:`inference.result.BrixiaResult`), so that a GPU
worker neither copies nor sends them.
"""

import torch
import torch.nn.functional as F

from inference.bsnet.alignment import as_square, input_positions, invert_affine
from inference.bsnet.model import BSNetOutput
from inference.bsnet.roi_pooling import box_thetas
from inference.loss import expected_score, score_levels
from inference.regions import REGIONS


def lung_mask(output: BSNetOutput, threshold: float = 0.5) -> torch.Tensor:
    """(B, S, S) bool lung mask in the input frame."""
    return torch.sigmoid(output.lung_logits.float())[:, 0] > threshold


def _apply(matrices: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(..., 2, 3) affine matrices applied to (S, S, 2) points -> (..., S, S, 2)."""
    return torch.einsum("...ij,hwj->...hwi", matrices[..., :2], points) + matrices[..., None, None, :, 2]


def aligned_positions(theta: torch.Tensor, size: int) -> torch.Tensor:
    """(B, S, S, 2) aligned-frame (x, y) in [0, 1] of every input pixel (inverse of the alignment)."""
    points = input_positions(size, torch.float32, theta.device)
    return (_apply(invert_affine(theta.float()), points) + 1.0) / 2.0


# The region label map's cells: rows cut where a region's label rows start (0.35, 0.65), columns at
# the midline (the patient's right lung on the image's left); each cell's label is 1 + the index
# of its region in REGIONS.
_LABEL_ROW_CUTS = sorted({region.label_rows[0] for region in REGIONS} - {0.0})
_LUNG_SIDES = ("right", "left")


def _cell_labels() -> torch.Tensor:
    """(rows, sides) uint8: the label of each cell of the region label map."""
    tops = [0.0, *_LABEL_ROW_CUTS]
    table = torch.zeros(len(tops), len(_LUNG_SIDES), dtype=torch.uint8)
    for index, region in enumerate(REGIONS):
        table[tops.index(region.label_rows[0]), _LUNG_SIDES.index(region.lung)] = index + 1
    return table


_CELL_LABELS = _cell_labels().flatten()  # row-major: cell (row, side) at row * 2 + side


def region_label_map(theta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, S, S) uint8: 0 outside the lungs (``mask``, (B, S, S) bool), 1..6 for regions A..F, by
    each lung pixel's position in the aligned frame of ``theta`` (B, 2, 3) (rows split at
    0.35 / 0.65, columns at 0.5)."""
    position = aligned_positions(theta, mask.shape[-1]).clamp(0.0, 1.0)
    cuts = torch.tensor(_LABEL_ROW_CUTS, dtype=position.dtype, device=position.device)
    row = torch.bucketize(position[..., 1].contiguous(), cuts, right=True)  # cut values start the lower row
    side = (position[..., 0] >= 0.5).long()
    labels = _CELL_LABELS.to(mask.device)[row * len(_LUNG_SIDES) + side]
    return torch.where(mask, labels, torch.zeros_like(labels))  # no boolean index: no device sync


def severity_contributions(output: BSNetOutput) -> torch.Tensor:
    """(B, 6, h, w): positive first-order contribution of each head location to the expected score."""
    probabilities = output.score_probabilities  # (B, 6, 4)
    expected = expected_score(probabilities)[..., None]
    weights = probabilities * (score_levels(probabilities.device) - expected)  # dE/dz_k
    activations = output.region_activations.float()
    return torch.relu((weights[..., None, None] * activations).sum(dim=2))


def explainability_maps(contributions: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 6, size, size) per-region maps in [0, 1] in the input frame, from the heads'
    ``contributions`` (B, 6, h, w, :func:`severity_contributions`) and the alignment ``theta``
    (B, 2, 3) (see module docstring)."""
    batch, regions, height, width = contributions.shape
    boxes = as_square(box_thetas(torch.float32, contributions.device, REGIONS))  # crop -> aligned
    alignment = as_square(theta.float())  # aligned -> input
    # input q -> aligned inv(theta) q -> crop inv(box) inv(theta) q (corner-aligned crop coordinates)
    to_crop = torch.linalg.inv(boxes)[None] @ torch.linalg.inv(alignment)[:, None]
    grid = _apply(to_crop[..., :2, :], input_positions(size, torch.float32, contributions.device))
    maps = F.grid_sample(
        contributions.reshape(batch * regions, 1, height, width),
        grid.reshape(batch * regions, size, size, 2),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    ).view(batch, regions, size, size)
    peak = maps.amax(dim=(-2, -1), keepdim=True)
    return torch.where(peak > 0, maps / peak.clamp_min(1e-12), torch.zeros_like(maps))
