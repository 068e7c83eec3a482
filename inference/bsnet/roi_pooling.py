"""ROI pooling of the six Brixia regions: the authors' ``pool_rois`` (BSNET.md "Network").

``tf.image.crop_and_resize`` of each box (y1, x1, y2, x2) in [0, 1] of an aligned, attended map
(B, C, H, W) to the map's own size H x W, bilinear with corner alignment
(y = y1 (H-1) + i (y2-y1)(H-1)/(H-1)); boxes lie inside the map, so the extrapolation value never
applies. This equals ``grid_sample(align_corners=True)`` on the affine box grid. The six crops come
in the authors' head order A, D, B, E, C, F (:data:`inference.regions.HEAD_ORDER`) and are stacked
batch-major: (B * 6, C, H, W), as their reshape does.
"""

import torch
import torch.nn.functional as F

from inference.regions import HEAD_REGIONS, Region


def box_thetas(dtype: torch.dtype, device: torch.device, regions: tuple[Region, ...] = HEAD_REGIONS) -> torch.Tensor:
    """(6, 2, 3) affine maps from a crop's corner-aligned coordinates to the full map's (head order by default)."""
    rows = []
    for region in regions:
        y1, x1, y2, x2 = region.box
        rows.append([[x2 - x1, 0.0, x1 + x2 - 1.0], [0.0, y2 - y1, y1 + y2 - 1.0]])
    return torch.tensor(rows, dtype=dtype, device=device)


def crop_regions(feature: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B * 6, C, H, W): the six region crops, each resized to H x W, head order."""
    batch, channels, height, width = feature.shape
    thetas = box_thetas(feature.dtype, feature.device)
    count = thetas.shape[0]
    grid = F.affine_grid(thetas, [count, channels, height, width], align_corners=True)
    grid = grid.repeat(batch, 1, 1, 1)
    repeated = feature.repeat_interleave(count, dim=0)
    return F.grid_sample(repeated, grid, mode="bilinear", align_corners=True)
