"""Alignment block: a spatial transformer (Jaderberg et al. 2015) driven by the lung map
(BSNET.md "Network" 3).

The localisation network reads the lung probability map (B, 1, 512, 512): max-pool to 128^2,
twice [max-pool 2, 5x5 conv with 20 filters, ReLU] (-> (B, 20, 26, 26)), flatten, dense 50 + ReLU,
dense 6 = the affine matrix theta (B, 2, 3), initialised to the identity. theta maps output
(aligned) normalised coordinates to input coordinates, as in ``torch.nn.functional.affine_grid``;
the same theta warps the lung map and backbone features of any size.
"""

import torch
import torch.nn.functional as F
from torch import nn

LOCALISATION_INPUT = 128


class AffineLocalisation(nn.Module):
    """Lung map (B, 1, H, W) -> affine theta (B, 2, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.MaxPool2d(2),
            nn.Conv2d(1, 20, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(20, 20, 5),
            nn.ReLU(inplace=True),
        )
        side = ((LOCALISATION_INPUT // 2 - 4) // 2) - 4  # 26
        self.regressor = nn.Sequential(
            nn.Flatten(),
            nn.Linear(20 * side * side, 50),
            nn.ReLU(inplace=True),
            nn.Linear(50, 6),
        )
        last = self.regressor[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, lung_probability: torch.Tensor) -> torch.Tensor:
        small = F.adaptive_max_pool2d(lung_probability, LOCALISATION_INPUT)
        return self.regressor(self.features(small)).view(-1, 2, 3)


def warp(image: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Bilinear affine warp of (B, C, H, W) by theta (B, 2, 3); zeros outside the input."""
    grid = F.affine_grid(theta.to(image.dtype), list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def invert_affine(theta: torch.Tensor) -> torch.Tensor:
    """The inverse transform of theta (B, 2, 3): maps aligned maps back to the input frame."""
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=theta.dtype, device=theta.device)
    square = torch.cat([theta, bottom.expand(theta.shape[0], 1, 3)], dim=1)
    return torch.linalg.inv(square.float()).to(theta.dtype)[:, :2, :]
