"""Pre-activation ResNet-18 (He et al. 2016, "Identity mappings"), BS-Net's encoder as the authors
build it (qubvel's Keras ``classification_models`` ResNet18 converted from MXNet; BSNET.md "Network").

Stem: ``bn_data`` (BatchNorm without scale) -> ``conv0`` 7x7/2 pad 3 -> ``bn0`` -> ``relu0`` ->
max-pool 3x3/2 pad 1. Each unit: ``bn1`` -> ReLU (the tap ``stageN_unitM_relu1``, the unit's
pre-activated input) -> ``conv1`` 3x3 (stride 2 in unit 1 of stages 2-4) -> ``bn2`` -> ReLU -> ``conv2``
3x3 -> add. Unit 1 of a stage adds a 1x1 conv shortcut (``sc``, no BN) of the pre-activated input,
unit 2 its raw input. The encoder ends with ``bn1`` -> ``relu1``. Convolutions have no bias;
BatchNorm epsilon 2e-5, momentum 0.99 (Keras) = 0.01 (torch). Module names are the authors' layer
names, so a Keras weight maps to ``backbone.<name>`` (``stage1_unit1_bn1`` -> ``units.stage1_unit1.bn1``).
"""

import torch
import torch.nn.functional as F
from torch import nn

BACKBONE_EPS = 2e-5
KERAS_MOMENTUM = 0.01  # torch's momentum for Keras' 0.99
STAGE_CHANNELS = (64, 128, 256, 512)
UNITS_PER_STAGE = 2


class ShiftOnlyBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm with a learnt shift and no scale (Keras ``scale=False``; the authors' ``bn_data``)."""

    def __init__(self, channels: int, eps: float) -> None:
        super().__init__(channels, eps=eps, momentum=KERAS_MOMENTUM, affine=False)
        self.bias = nn.Parameter(torch.zeros(channels))


def backbone_bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BACKBONE_EPS, momentum=KERAS_MOMENTUM)


class PreActUnit(nn.Module):
    """One basic pre-activation unit (the authors' ``basic_conv_block`` / ``basic_identity_block``)."""

    def __init__(self, in_channels: int, channels: int, stride: int, projection: bool) -> None:
        super().__init__()
        self.bn1 = backbone_bn(in_channels)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn2 = backbone_bn(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.sc = nn.Conv2d(in_channels, channels, 1, stride, bias=False) if projection else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (unit output, pre-activated input = the tap ``relu1``)."""
        preactivated = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(preactivated))))
        shortcut = self.sc(preactivated) if self.sc is not None else x
        return out + shortcut, preactivated


def unit_name(stage: int, unit: int) -> str:
    """The authors' name of a unit, 1-based: ``stage3_unit2``."""
    return f"stage{stage}_unit{unit}"


class PreActResNet18(nn.Module):
    """(B, 1, H, W) -> the authors' named taps (H, W multiples of 32).

    Returns ``relu0`` (64 @ H/2), ``stageN_unitM_relu1`` for every unit (the pre-activated unit
    inputs: 64 @ H/4 for stage 1 and stage 2 unit 1, 128 @ H/8, 256 @ H/16, 512 @ H/32 for the
    second units of stages 2-4) and ``relu1`` (512 @ H/32, the encoder output).
    """

    def __init__(self) -> None:
        super().__init__()
        self.bn_data = ShiftOnlyBatchNorm2d(1, BACKBONE_EPS)
        self.conv0 = nn.Conv2d(1, STAGE_CHANNELS[0], 7, 2, 3, bias=False)
        self.bn0 = backbone_bn(STAGE_CHANNELS[0])
        self.units = nn.ModuleDict()
        previous = STAGE_CHANNELS[0]
        for stage, channels in enumerate(STAGE_CHANNELS, start=1):
            for unit in range(1, UNITS_PER_STAGE + 1):
                first = unit == 1
                stride = 2 if first and stage > 1 else 1
                self.units[unit_name(stage, unit)] = PreActUnit(previous, channels, stride, projection=first)
                previous = channels
        self.bn1 = backbone_bn(previous)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        taps = {"relu0": F.relu(self.bn0(self.conv0(self.bn_data(images))))}
        x = F.max_pool2d(taps["relu0"], 3, 2, 1)
        for name, unit in self.units.items():
            x, taps[f"{name}_relu1"] = unit(x)
        taps["relu1"] = F.relu(self.bn1(x))
        return taps
