"""Run-time device choice and how the network runs there (never hard-coded; docs/benchmarks.md
has the measurements behind the per-device defaults)."""

from dataclasses import dataclass
from typing import Literal, get_args

import torch

from inference.errors import DeviceError

Precision = Literal["fp32", "bf16"]
# Images per forward pass when none is given: on the CPU a larger batch is slower per image
# (1.4 s at batch 1, 1.9 s at batch 8 on 2 cores); on an H200 (bf16) batch 32 reaches 98 % of
# the best compiled throughput and 94 % of the best eager one, in 23 ms (compiled) or 44 ms a batch.
DEFAULT_BATCH = {"cpu": 1, "cuda": 32}


def select_device(requested: str | torch.device | None = None) -> torch.device:
    """``requested`` if given (e.g. "cpu", "cuda:1"), else the first CUDA device, else the CPU."""
    if requested is not None:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DeviceError(f"device {device} requested but CUDA is not available here")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class RunOptions:
    """How the network runs on its device: images per forward pass, fp32 or bf16 autocast (the
    authors' network is fp32: bf16 is faster on tensor cores and may move a borderline score),
    channels-last memory format, and ``torch.compile`` (every batch then padded to ``batch_size``
    so that one graph is compiled, at start)."""

    batch_size: int
    precision: Precision = "fp32"
    channels_last: bool = True
    compiled: bool = False

    @classmethod
    def for_device(
        cls,
        device: torch.device,
        batch_size: int | None = None,
        precision: Precision = "fp32",
        channels_last: bool = True,
        compiled: bool = False,
    ) -> "RunOptions":
        """Options for ``device``: ``batch_size`` None takes the device's default (DEFAULT_BATCH)."""
        if precision not in get_args(Precision):
            raise DeviceError(f"precision {precision!r}: choose from {', '.join(get_args(Precision))}")
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise DeviceError(f"bf16 was asked for but {torch.cuda.get_device_name(device)} does not support it")
        size = batch_size if batch_size is not None else DEFAULT_BATCH.get(device.type, 1)
        if size < 1:
            raise DeviceError(f"batch size must be at least 1, got {size}")
        return cls(size, precision, channels_last, compiled)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def describe(self) -> str:
        layout = "channels_last" if self.channels_last else "contiguous"
        return f"batch {self.batch_size}, {self.precision}, {layout}{', compiled' if self.compiled else ''}"
