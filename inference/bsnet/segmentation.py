"""U-Net++ lung segmentation decoder (Zhou et al. 2018) as the authors build it (their ``build_xnet``
with ``Transpose2D_block``; BSNET.md "Network").

Node ``decoder_stage{r}-{c}`` (row r = 2..5 at 256^2, 128^2, 64^2, 32^2 for a 512 input; column c):
ConvTranspose 4x4/2 (``upsample``, no bias) -> ``bn1`` -> ReLU -> concatenate [up-sampled, the
row's skip, the row's earlier nodes] -> 3x3 conv (``conv2``, no bias) -> ``bn2`` -> ReLU. Column 1
up-samples an encoder tap; column c > 1 up-samples node (r+1)-(c-1). Widths 64/128/256/16 for rows
2/3/4/5. ``decoder_stage1-5`` (32 @ 512^2) up-samples node 2-4 without a skip; ``final_conv``
(3x3, bias) gives the lung logits, whose sigmoid is the authors' ``sigmoid`` output.
BatchNorm epsilon 1e-3 (Keras default), momentum 0.99.
"""

import torch
import torch.nn.functional as F
from torch import nn

from inference.bsnet.backbone import KERAS_MOMENTUM

DECODER_EPS = 1e-3
ROW_FILTERS = {1: 32, 2: 64, 3: 128, 4: 256, 5: 16}
ROW_SKIPS = {2: "relu0", 3: "stage2_unit1_relu1", 4: "stage3_unit1_relu1", 5: "stage4_unit1_relu1"}
COLUMN1_INPUTS = {2: "stage1_unit2_relu1", 3: "stage2_unit2_relu1", 4: "stage3_unit2_relu1", 5: "relu1"}
TAP_CHANNELS = {
    "relu0": 64,
    "stage1_unit2_relu1": 64,
    "stage2_unit1_relu1": 64,
    "stage2_unit2_relu1": 128,
    "stage3_unit1_relu1": 128,
    "stage3_unit2_relu1": 256,
    "stage4_unit1_relu1": 256,
    "relu1": 512,
}
# (row, column) in the authors' build order: columns outer, rows inner.
NODES: tuple[tuple[int, int], ...] = (
    (2, 1), (3, 1), (4, 1), (5, 1), (2, 2), (3, 2), (4, 2), (2, 3), (3, 3), (2, 4), (1, 5),
)


def decoder_bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=DECODER_EPS, momentum=KERAS_MOMENTUM)


def node_name(row: int, column: int) -> str:
    return f"stage{row}-{column}"


class DecoderNode(nn.Module):
    """One ``Transpose2D_block``: up-sample x2, then merge with the skips and convolve."""

    def __init__(self, in_channels: int, filters: int, skip_channels: int) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_channels, filters, 4, 2, 1, bias=False)
        self.bn1 = decoder_bn(filters)
        self.conv2 = nn.Conv2d(filters + skip_channels, filters, 3, 1, 1, bias=False)
        self.bn2 = decoder_bn(filters)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        up = F.relu(self.bn1(self.upsample(x)))
        return F.relu(self.bn2(self.conv2(torch.cat([up, *skips], dim=1))))


def _node_inputs(row: int, column: int) -> tuple[str | tuple[int, int], list[str | tuple[int, int]]]:
    """What node (row, column) up-samples and which tensors it concatenates (tap names or nodes)."""
    if row == 1:
        return (2, column - 1), []
    source = COLUMN1_INPUTS[row] if column == 1 else (row + 1, column - 1)
    return source, [ROW_SKIPS[row], *((row, c) for c in range(1, column))]


def _channels(key: str | tuple[int, int]) -> int:
    return TAP_CHANNELS[key] if isinstance(key, str) else ROW_FILTERS[key[0]]


class NestedUNetDecoder(nn.Module):
    """Encoder taps (see :class:`~inference.bsnet.backbone.PreActResNet18`) -> lung logits (B, 1, H, W)."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes = nn.ModuleDict()
        for row, column in NODES:
            source, skips = _node_inputs(row, column)
            self.nodes[node_name(row, column)] = DecoderNode(
                _channels(source), ROW_FILTERS[row], sum(_channels(s) for s in skips)
            )
        self.final_conv = nn.Conv2d(ROW_FILTERS[1], 1, 3, 1, 1)

    def forward(self, taps: dict[str, torch.Tensor]) -> torch.Tensor:
        values: dict[str | tuple[int, int], torch.Tensor] = dict(taps)
        for row, column in NODES:
            source, skips = _node_inputs(row, column)
            values[(row, column)] = self.nodes[node_name(row, column)](values[source], [values[s] for s in skips])
        return self.final_conv(values[NODES[-1]])
