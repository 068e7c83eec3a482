"""ResNet-18 backbone (He et al. 2016) as BS-Net's feature extractor (BSNET.md "Network" 1).

Input (B, 1, 512, 512). Stem: 7x7/2 conv -> (B, 64, 256, 256), 3x3/2 max-pool -> 128x128.
Stages of two basic blocks: 64 @128, 128 @64, 256 @32, 512 @16.
"""

from dataclasses import dataclass

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


@dataclass
class BackboneFeatures:
    """Backbone outputs.

    ``skips``: encoder maps for the U-Net++ decoder, finest first:
    stem (64, 256^2), stage 1 (64, 128^2), stage 2 (128, 64^2), stage 3 (256, 32^2), stage 4 (512, 16^2).
    ``taps``: the four maps the alignment block warps (BSNET.md, "Alignment"): end of the first
    unit of stage 1 and of the second units of stages 2, 3 and 4.
    """

    skips: list[torch.Tensor]
    taps: list[torch.Tensor]


class ResNet18Backbone(nn.Module):
    """ResNet-18 for one-channel radiographs; returns decoder skips and alignment taps."""

    STAGE_CHANNELS = (64, 128, 256, 512)
    TAP_CHANNELS = (64, 128, 256, 512)

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.MaxPool2d(3, 2, 1)
        stages = []
        previous = 64
        for index, channels in enumerate(self.STAGE_CHANNELS):
            stride = 1 if index == 0 else 2
            stages.append(
                nn.ModuleList([BasicBlock(previous, channels, stride), BasicBlock(channels, channels)])
            )
            previous = channels
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> BackboneFeatures:
        """(B, 1, H, W) -> BackboneFeatures (H, W divisible by 32)."""
        stem = self.stem(x)
        out = self.pool(stem)
        skips = [stem]
        taps = []
        for index, (first, second) in enumerate(self.stages):
            out = first(out)
            if index == 0:
                taps.append(out)
            out = second(out)
            if index > 0:
                taps.append(out)
            skips.append(out)
        return BackboneFeatures(skips=skips, taps=taps)
