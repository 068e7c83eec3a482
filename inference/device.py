"""Run-time device choice: CUDA where present, else CPU (never hard-coded)."""

import torch


def select_device(requested: str | torch.device | None = None) -> torch.device:
    """``requested`` if given (e.g. "cpu", "cuda:1"), else the first CUDA device, else the CPU."""
    if requested is not None:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device} requested but CUDA is not available here")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
