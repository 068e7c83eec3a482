"""Nested U-Net (U-Net++, Zhou et al. 2018) lung segmentation decoder (BSNET.md "Network" 2).

Nodes X[i][j] at depth i (resolution 256 / 2**i) and nesting j: X[i][0] are the backbone skips;
X[i][j] = conv(cat(X[i][0..j-1], up(X[i+1][j-1]))) with a transposed-convolution up-sampling
block. The output X[0][4] (256^2) is up-sampled once more (fifth level, 16 filters) and a 3x3 conv
gives one channel: logits of the lung probability map, (B, 1, 512, 512).
Decoder filters per level: 256 @32^2, 128 @64^2, 64 @128^2, 32 @256^2, 16 @512^2.
"""

import torch
from torch import nn

SKIP_CHANNELS = (64, 64, 128, 256, 512)
DECODER_FILTERS = (32, 64, 128, 256)  # per depth i = 0..3 (256^2 .. 32^2)
FINAL_FILTERS = 16


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TransposeUp(nn.Module):
    """x2 up-sampling block: 4x4/2 transposed conv, batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class NestedUNetDecoder(nn.Module):
    """U-Net++ decoder over the ResNet-18 skips; returns lung logits at the input resolution."""

    DEPTH = 4

    def __init__(self) -> None:
        super().__init__()
        self.ups = nn.ModuleDict()
        self.convs = nn.ModuleDict()
        for j in range(1, self.DEPTH + 1):
            for i in range(0, self.DEPTH + 1 - j):
                below = SKIP_CHANNELS[i + 1] if j == 1 else DECODER_FILTERS[i + 1]
                filters = DECODER_FILTERS[i]
                self.ups[f"{i}_{j}"] = TransposeUp(below, filters)
                concat = filters + SKIP_CHANNELS[i] + (j - 1) * filters
                self.convs[f"{i}_{j}"] = conv_bn_relu(concat, filters)
        self.final_up = TransposeUp(DECODER_FILTERS[0], FINAL_FILTERS)
        self.final_conv = conv_bn_relu(FINAL_FILTERS, FINAL_FILTERS)
        self.head = nn.Conv2d(FINAL_FILTERS, 1, 3, 1, 1)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        """skips (finest first, see BackboneFeatures) -> lung logits (B, 1, 2H0, 2W0)."""
        nodes: dict[tuple[int, int], torch.Tensor] = {(i, 0): s for i, s in enumerate(skips)}
        for j in range(1, self.DEPTH + 1):
            for i in range(0, self.DEPTH + 1 - j):
                up = self.ups[f"{i}_{j}"](nodes[(i + 1, j - 1)])
                same_level = [nodes[(i, k)] for k in range(j)]
                nodes[(i, j)] = self.convs[f"{i}_{j}"](torch.cat([up, *same_level], dim=1))
        out = self.final_conv(self.final_up(nodes[(0, self.DEPTH)]))
        return self.head(out)
