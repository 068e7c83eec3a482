"""BS-Net assembled (Signoroni et al., Medical Image Analysis 2021; BSNET.md "Network").

backbone (ResNet-18) -> U-Net++ lung segmentation -> alignment (spatial transformer on the lung
map) -> aligned backbone features x aligned lung map (explicit self-attention) -> ROI pooling of
the six regions -> feature pyramid -> per-region scoring heads -> softmax over scores 0-3.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from inference.bsnet.alignment import AffineLocalisation, warp
from inference.bsnet.backbone import ResNet18Backbone
from inference.bsnet.fpn import FPN_CHANNELS, TopDownPyramid
from inference.bsnet.roi_pooling import pool_regions
from inference.bsnet.scoring import RegionScoringHeads
from inference.bsnet.segmentation import NestedUNetDecoder

INPUT_SIZE = 512


@dataclass
class BSNetOutput:
    """Raw network outputs for a batch of B images of size S x S (S = 512).

    score_logits (B, 6, 4); lung_logits (B, 1, S, S) in the input frame; theta (B, 2, 3) the
    alignment transform; aligned_lung (B, 1, S, S) lung probability in the aligned frame;
    region_activations (B, 6, 4, S/4, S/4) head maps in each region's pooled frame.
    """

    score_logits: torch.Tensor
    lung_logits: torch.Tensor
    theta: torch.Tensor
    aligned_lung: torch.Tensor
    region_activations: torch.Tensor

    @property
    def score_probabilities(self) -> torch.Tensor:
        """Softmax over the four Brixia scores, (B, 6, 4)."""
        return self.score_logits.float().softmax(dim=-1)


class BSNet(nn.Module):
    """The multi-network BS-Net: (B, 1, 512, 512) radiographs in [0, 1] -> :class:`BSNetOutput`."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = ResNet18Backbone(in_channels=1)
        self.segmentation = NestedUNetDecoder()
        self.alignment = AffineLocalisation()
        self.pyramid = TopDownPyramid(ResNet18Backbone.TAP_CHANNELS)
        self.heads = RegionScoringHeads(FPN_CHANNELS)

    def forward(self, images: torch.Tensor) -> BSNetOutput:
        features = self.backbone(images)
        lung_logits = self.segmentation(features.skips)
        lung_probability = torch.sigmoid(lung_logits)
        theta = self.alignment(lung_probability)
        aligned_lung = warp(lung_probability, theta)
        pooled_scales = []
        for tap in features.taps:
            attention = F.interpolate(aligned_lung, size=tap.shape[-2:], mode="area")
            aligned = warp(tap, theta) * attention
            pooled = pool_regions(aligned)  # (B, 6, C, h, w)
            pooled_scales.append(pooled.flatten(0, 1))
        batch = images.shape[0]
        merged = self.pyramid(pooled_scales)
        region_features = merged.view(batch, -1, *merged.shape[1:])
        activations = self.heads(region_features)
        logits = activations.mean(dim=(-2, -1))
        return BSNetOutput(logits, lung_logits, theta, aligned_lung, activations)
