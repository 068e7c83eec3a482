"""BS-Net assembled as its authors build it (Signoroni et al., Medical Image Analysis 2021; their
``BSNet``/``build_BScore``; BSNET.md "Network"), layer for layer, so that their Keras weights load
one-to-one (:mod:`inference.keras_import`).

pre-activation ResNet-18 -> U-Net++ lung map (``sigmoid``) -> spatial transformer on the lung map
(``stn``) -> aligned lung map (``alignmnet_segmentation``) -> each of four taps warped by the same
theta and multiplied by the aligned map resized to the tap (explicit self-attention) -> six ROI
crops per tap (head order A, D, B, E, C, F) -> bottom-up FPN -> six heads on P5 -> global average
pooling -> softmax. Outputs are reordered to regions A..F.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from inference.bsnet.alignment import LocalisationNet, warp
from inference.bsnet.backbone import PreActResNet18
from inference.bsnet.fpn import BottomUpPyramid
from inference.bsnet.roi_pooling import crop_regions
from inference.bsnet.scoring import RegionHeads
from inference.bsnet.segmentation import NestedUNetDecoder
from inference.regions import HEADS_TO_REGIONS

INPUT_SIZE = 512
SIZE_MULTIPLE = 128  # the alignment block max-pools the lung map to 128^2
ATTENDED_TAPS = ("stage1_unit1_relu1", "stage2_unit2_relu1", "stage3_unit2_relu1", "stage4_unit2_relu1")


@dataclass
class BSNetOutput:
    """Raw network outputs for a batch of B images of size S x S.

    score_logits (B, 6, 4), regions A..F; lung_logits (B, 1, S, S) in the input frame (sigmoid =
    the authors' lung map); theta (B, 2, 3) the alignment transform (output -> input, the
    sampler's convention, :mod:`inference.bsnet.alignment`); aligned_lung (B, 1, S, S) the lung map
    in the aligned frame; region_activations (B, 6, 4, S/32, S/32) head maps, regions A..F, in
    each region's crop frame.
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


def check_input_size(size: int) -> None:
    """Raise ValueError unless ``size`` is a side BS-Net can read (a multiple of 128)."""
    if size < SIZE_MULTIPLE or size % SIZE_MULTIPLE:
        raise ValueError(f"BS-Net reads square inputs whose side is a multiple of {SIZE_MULTIPLE}, got {size}")


class AlignedAttention(nn.Module):
    """Explicit self-attention: warp(tap, theta) x the aligned lung map resized to the tap
    (``tf.image.resize``: bilinear, half-pixel centres, no antialias)."""

    def forward(self, tap: torch.Tensor, aligned_lung: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        attention = F.interpolate(aligned_lung, size=tap.shape[-2:], mode="bilinear", align_corners=False)
        return warp(tap, theta) * attention


class BSNet(nn.Module):
    """(B, 1, S, S) radiographs in [0, 1] (S a multiple of 128; 512 as published) -> :class:`BSNetOutput`."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = PreActResNet18()
        self.segmentation = NestedUNetDecoder()
        self.alignment = LocalisationNet()
        self.attention = AlignedAttention()
        self.pyramid = BottomUpPyramid()
        self.heads = RegionHeads(self.pyramid.P5.out_channels)

    def forward(self, images: torch.Tensor) -> BSNetOutput:
        check_input_size(images.shape[-1])
        taps = self.backbone(images)
        lung_logits = self.segmentation(taps)
        lung = torch.sigmoid(lung_logits)
        theta = self.alignment(lung)
        aligned_lung = warp(lung, theta)
        crops = [crop_regions(self.attention(taps[name], aligned_lung, theta)) for name in ATTENDED_TAPS]
        head_maps = self.heads(self.pyramid(crops)[-1])[:, list(HEADS_TO_REGIONS)]
        logits = head_maps.mean(dim=(-2, -1))
        return BSNetOutput(logits, lung_logits, theta, aligned_lung, head_maps)
