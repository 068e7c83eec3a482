"""One optimisation step of BS-Net's end-to-end scoring stage (paper Sec. 3.6, stage 3)."""

import torch
from torch import nn

from inference.loss import BrixiaScoreLoss


def scoring_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: BrixiaScoreLoss,
    images: torch.Tensor,
    targets: torch.Tensor,
) -> float:
    """Forward (B, 1, S, S) images, loss against (B, 6) scores 0-3, backward, step; returns the loss."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(images).score_logits, targets)
    loss.backward()
    optimizer.step()
    return float(loss.detach())
