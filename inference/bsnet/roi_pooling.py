"""ROI pooling of the six Brixia regions (BSNET.md "Network" 5).

Each box (y1, x1, y2, x2) in [0, 1] of an aligned map (B, C, H, W) is cropped and bilinearly
resized back to (H, W), like TensorFlow's ``crop_and_resize``: output (B, 6, C, H, W), regions
in the order A..F of :data:`inference.regions.REGIONS`.
"""

import torch
import torch.nn.functional as F

from inference.regions import REGIONS


def region_thetas(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Affine matrices (6, 2, 3) that sample each region box from the full map."""
    rows = []
    for region in REGIONS:
        y1, x1, y2, x2 = region.box
        rows.append([[x2 - x1, 0.0, x1 + x2 - 1.0], [0.0, y2 - y1, y1 + y2 - 1.0]])
    return torch.tensor(rows, dtype=dtype, device=device)


def pool_regions(feature: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 6, C, H, W): the six region crops, each resized to H x W."""
    batch, channels, height, width = feature.shape
    thetas = region_thetas(feature.dtype, feature.device)
    count = thetas.shape[0]
    grid = F.affine_grid(thetas, [count, channels, height, width], align_corners=True)
    grid = grid.unsqueeze(0).expand(batch, -1, -1, -1, -1).reshape(batch * count, height, width, 2)
    repeated = feature.unsqueeze(1).expand(-1, count, -1, -1, -1)
    repeated = repeated.reshape(batch * count, channels, height, width)
    pooled = F.grid_sample(repeated, grid, mode="bilinear", align_corners=True)
    return pooled.view(batch, count, channels, height, width)
