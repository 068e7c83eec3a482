"""BS-Net scoring loss (BSNET.md "Loss and training"): sparse categorical cross-entropy on the six regions plus
a differentiable mean absolute error between the expected score (softmax-weighted 0..3) and the
target, combined as alpha * SCCE + (1 - alpha) * MAE; alpha = 0.7 is our reading of the paper's
weighting (see docs/bsnet.md).

The pre-training losses of "from the part to the whole" (Signoroni et al. 2021; BSNET.md "Loss and
training"): binary cross-entropy + (1 - soft Dice) of the lung segmentation (stage 1) and of the
aligned lung map (stage 2)."""

import torch
import torch.nn.functional as F
from torch import nn

from inference.regions import SCORE_LEVELS

PAPER_ALPHA = 0.7


def score_levels(device: torch.device) -> torch.Tensor:
    """The Brixia score levels 0..3 as floats."""
    return torch.arange(SCORE_LEVELS, dtype=torch.float32, device=device)


def expected_score(probabilities: torch.Tensor) -> torch.Tensor:
    """(..., 4) probabilities of the score levels -> (...) expected Brixia score, sum of k p_k."""
    return (probabilities * score_levels(probabilities.device)).sum(dim=-1)


def expected_scores(logits: torch.Tensor) -> torch.Tensor:
    """(B, 6, 4) logits -> (B, 6) expected Brixia score under the softmax."""
    return expected_score(logits.float().softmax(dim=-1))


class BrixiaScoreLoss(nn.Module):
    """alpha * cross-entropy + (1 - alpha) * MAE(expected score, target); targets (B, 6) in 0..3."""

    def __init__(self, alpha: float = PAPER_ALPHA) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        cross_entropy = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten().long())
        mae = (expected_scores(logits) - targets.float()).abs().mean()
        return self.alpha * cross_entropy + (1.0 - self.alpha) * mae


def soft_dice(probability: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Mean soft Dice coefficient over the batch of (B, 1, H, W) maps."""
    intersection = (probability * target).sum(dim=(1, 2, 3))
    total = probability.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))
    return ((2.0 * intersection + eps) / (total + eps)).mean()


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy + (1 - soft Dice) of lung logits against binary masks (stage 1, Signoroni et al. 2021)."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), masks)
    return bce + 1.0 - soft_dice(torch.sigmoid(logits.float()), masks)


def alignment_loss(aligned: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The same Dice + cross-entropy for an aligned lung probability map (no logits after warping; stage 2)."""
    bce = F.binary_cross_entropy(aligned.float().clamp(1e-6, 1.0 - 1e-6), targets)
    return bce + 1.0 - soft_dice(aligned.float(), targets)
