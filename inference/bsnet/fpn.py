"""Feature pyramid (Lin et al. 2017) over the four pooled, aligned scales (BSNET.md "Network" 6).

Inputs, finest first: (N, 64, 128^2), (N, 128, 64^2), (N, 256, 32^2), (N, 512, 16^2), where N is
batch x 6 regions (one shared pyramid for every region). Top-down: 1x1 lateral convs to 64
channels, add the x2 bilinear up-sampled coarser level, 3x3 conv + swish. Output: the finest
merged level (N, 64, 128^2), which feeds the scoring heads.
"""

import torch
import torch.nn.functional as F
from torch import nn

FPN_CHANNELS = 64


class TopDownPyramid(nn.Module):
    """Merges multi-scale features top-down; returns the finest merged map."""

    def __init__(self, in_channels: tuple[int, ...], channels: int = FPN_CHANNELS) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.SiLU(inplace=True))
            for _ in in_channels[:-1]
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        merged = self.laterals[-1](features[-1])
        for level in range(len(features) - 2, -1, -1):
            lateral = self.laterals[level](features[level])
            up = F.interpolate(merged, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            merged = self.smooth[level](lateral + up)
        return merged
