"""The authors' feature pyramid (their ``create_pyramid_features`` with ``feature_size`` 64;
BSNET.md "Network"). It runs bottom-up, fine to coarse, on the region crops C1..C4 of the attended
taps (batch B * 6, one pyramid shared by the regions); every conv has a bias, and the down-sampling
is a bilinear half-pixel resize without antialias (``tf.image.resize`` = ``F.interpolate``):

P1 = swish(P1(resize(C1_reduced(C1))))                           64 @ H/8   (64 @ 64^2 at 512)
Pmid0 = swish(Pmid0(resize(P1 + Cmid0_reduced(C2))))            128 @ H/16
Pmid1 = swish(Pmid1(resize(Pmid0 + Cmid1_reduced(C3))))         256 @ H/32
P5 = swish(P5(Pmid1 + C5_reduced(C4)))                          512 @ H/32; only P5 feeds the heads.
"""

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_SIZE = 64
CROP_CHANNELS = (64, 128, 256, 512)  # C1..C4: stage1_unit1, stage2_unit2, stage3_unit2, stage4_unit2 taps


def resize_like(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The authors' ``UpsampleLike``: bilinear, half-pixel centres, no antialias."""
    return F.interpolate(x, size=target.shape[-2:], mode="bilinear", align_corners=False)


class BottomUpPyramid(nn.Module):
    """[C1, C2, C3, C4] -> [P1, Pmid0, Pmid1, P5] (the heads read P5)."""

    def __init__(self) -> None:
        super().__init__()
        c1, c2, c3, c4 = CROP_CHANNELS
        width = FEATURE_SIZE
        self.C1_reduced = nn.Conv2d(c1, width, 1)
        self.P1 = nn.Conv2d(width, width, 3, 1, 1)
        self.Cmid0_reduced = nn.Conv2d(c2, width, 1)
        self.Pmid0 = nn.Conv2d(width, 2 * width, 3, 1, 1)
        self.Cmid1_reduced = nn.Conv2d(c3, 2 * width, 1)
        self.Pmid1 = nn.Conv2d(2 * width, 4 * width, 3, 1, 1)
        self.C5_reduced = nn.Conv2d(c4, 4 * width, 1)
        self.P5 = nn.Conv2d(4 * width, 8 * width, 3, 1, 1)

    def forward(self, crops: list[torch.Tensor]) -> list[torch.Tensor]:
        c1, c2, c3, c4 = crops
        p1 = F.silu(self.P1(resize_like(self.C1_reduced(c1), c2)))
        pmid0 = F.silu(self.Pmid0(resize_like(p1 + self.Cmid0_reduced(c2), c3)))
        pmid1 = F.silu(self.Pmid1(resize_like(pmid0 + self.Cmid1_reduced(c3), c4)))
        p5 = F.silu(self.P5(pmid1 + self.C5_reduced(c4)))
        return [p1, pmid0, pmid1, p5]
