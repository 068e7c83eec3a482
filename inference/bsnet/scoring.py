"""The six scoring heads: the authors' ``RetinaNetClassifier(8, 3, 4)``, one per region
(BSNET.md "Network").

Each head: 3 x ``ConvBlock`` [3x3 'same' conv with bias, BatchNorm (epsilon 1e-3), swish], then
``score_regressor``, a 3x3 conv to 4 channels with bias. Head k reads the P5 features of region
crop k and scores region :data:`inference.regions.HEAD_ORDER` [k]. Global average pooling of a
head's map gives its logits, so each logit is exactly the spatial mean of its map (used by
:mod:`inference.explainability`).
"""

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from inference.bsnet.backbone import KERAS_MOMENTUM
from inference.bsnet.segmentation import DECODER_EPS
from inference.regions import HEAD_ORDER, SCORE_LEVELS

HEAD_WIDTH = 8
HEAD_DEPTH = 3


class ConvBlock(nn.Module):
    """The authors' ``ConvBlock``: conv (bias) -> BatchNorm -> swish."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, 1, 1)
        self.bn = nn.BatchNorm2d(channels, eps=DECODER_EPS, momentum=KERAS_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.bn(self.conv(x)))


class ScoringHead(nn.Module):
    """One ``RetinaNetClassifier``: (N, C, h, w) -> score maps (N, 4, h, w)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        widths = [in_channels] + [HEAD_WIDTH] * HEAD_DEPTH
        self.blocks = nn.Sequential(*(ConvBlock(a, b) for a, b in pairwise(widths)))
        self.score_regressor = nn.Conv2d(HEAD_WIDTH, SCORE_LEVELS, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score_regressor(self.blocks(x))


class RegionHeads(nn.Module):
    """P5 of the region crops (B * 6, C, h, w), head order -> score maps (B, 6, 4, h, w), head order."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(ScoringHead(in_channels) for _ in HEAD_ORDER)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        regions = features.view(-1, len(self.heads), *features.shape[1:])
        return torch.stack([head(regions[:, k]) for k, head in enumerate(self.heads)], dim=1)
