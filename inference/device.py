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
    channels-last memory format, ``torch.compile``, and ``cuda_graphs``: that many CUDA graphs of
    the compiled network, one per batch scored at the same time (:mod:`inference.cuda_graphs`; 0: none).
    Compiled or graphed, every batch is padded to ``batch_size``: one shape, compiled or captured
    at start."""

    batch_size: int
    precision: Precision = "fp32"
    channels_last: bool = True
    compiled: bool = False
    cuda_graphs: int = 0

    @classmethod
    def for_device(
        cls,
        device: torch.device,
        batch_size: int | None = None,
        precision: Precision = "fp32",
        channels_last: bool = True,
        compiled: bool = False,
        cuda_graphs: int = 0,
    ) -> "RunOptions":
        """Options for ``device``: ``batch_size`` None takes the device's default (DEFAULT_BATCH)."""
        if precision not in get_args(Precision):
            raise DeviceError(f"precision {precision!r}: choose from {', '.join(get_args(Precision))}")
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise DeviceError(f"bf16 was asked for but {torch.cuda.get_device_name(device)} does not support it")
        size = batch_size if batch_size is not None else DEFAULT_BATCH.get(device.type, 1)
        if size < 1:
            raise DeviceError(f"batch size must be at least 1, got {size}")
        if cuda_graphs < 0:
            raise DeviceError(f"CUDA graph copies must be 0 or more, got {cuda_graphs}")
        if cuda_graphs and device.type != "cuda":
            raise DeviceError(f"CUDA graphs were asked for but the network runs on {device}, not a CUDA device")
        if cuda_graphs and not compiled:
            # the eager network copies host tensors to the device in its forward pass (the ROI
            # boxes), which a graph capture refuses; compiled, they are constants (H200, 2026-11-27)
            raise DeviceError("CUDA graphs are captured from the compiled network: add --compile")
        return cls(size, precision, channels_last, compiled, cuda_graphs)

    @property
    def fixed_shape(self) -> bool:
        """Whether every batch is padded to ``batch_size`` (a compiled or graphed network)."""
        return self.compiled or self.cuda_graphs > 0

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def describe(self) -> str:
        layout = "channels_last" if self.channels_last else "contiguous"
        graphs = f", {self.cuda_graphs} CUDA graph{'s' if self.cuda_graphs > 1 else ''}" if self.cuda_graphs else ""
        return f"batch {self.batch_size}, {self.precision}, {layout}{', compiled' if self.compiled else ''}{graphs}"
