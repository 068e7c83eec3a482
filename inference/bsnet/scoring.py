"""Per-region scoring heads (BSNET.md "Network" 7).

One head per region, run together as grouped convolutions: three [3x3 conv, 8 channels, batch
norm, swish] blocks and a 3x3 conv to 4 channels give per-region activation maps
(B, 6, 4, H, W); global average pooling gives the logits (B, 6, 4) and a softmax the
probabilities of Brixia scores 0-3. Because pooling is the last step, each logit is exactly the
spatial mean of its activation map (used for the explainability maps).
"""

import torch
from torch import nn

from inference.regions import REGIONS, SCORE_LEVELS

HEAD_CHANNELS = 8
HEAD_BLOCKS = 3


class RegionScoringHeads(nn.Module):
    """(B, 6, C, H, W) region features -> activation maps (B, 6, 4, H, W)."""

    def __init__(self, in_channels: int, regions: int = len(REGIONS)) -> None:
        super().__init__()
        self.regions = regions
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(HEAD_BLOCKS):
            layers += [
                nn.Conv2d(regions * channels, regions * HEAD_CHANNELS, 3, 1, 1, groups=regions, bias=False),
                nn.BatchNorm2d(regions * HEAD_CHANNELS),
                nn.SiLU(inplace=True),
            ]
            channels = HEAD_CHANNELS
        layers.append(nn.Conv2d(regions * channels, regions * SCORE_LEVELS, 3, 1, 1, groups=regions))
        self.body = nn.Sequential(*layers)

    def forward(self, region_features: torch.Tensor) -> torch.Tensor:
        batch, regions, channels, height, width = region_features.shape
        stacked = region_features.reshape(batch, regions * channels, height, width)
        maps = self.body(stacked)
        return maps.view(batch, regions, SCORE_LEVELS, height, width)
