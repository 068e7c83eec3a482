"""Size and cost of a model: weight count and FLOPs for one input (torch's FLOP counter)."""

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from inference.model_spec import ModelSpec, build_untrained


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    parameters: int  # trainable and frozen parameters plus BatchNorm statistics, as Keras counts
    flops_per_image: int  # multiply-add = 2 FLOPs
    input_shape: tuple[int, int, int]


def weight_count(model: torch.nn.Module) -> int:
    """Parameters plus BatchNorm running means and variances: the count Keras' ``count_params``
    gives for the authors' model (20,947,836 for BS-Net), without torch's step counters."""
    statistics = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    return sum(p.numel() for p in model.parameters()) + statistics


def describe(spec: ModelSpec) -> ModelInfo:
    """Count parameters and FLOPs of ``spec`` for one image of its input size (on the CPU)."""
    model = build_untrained(spec).eval()
    shape = (spec.input_spec.channels, spec.input_spec.height, spec.input_spec.width)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape))
    return ModelInfo(
        name=spec.name,
        version=spec.version,
        parameters=weight_count(model),
        flops_per_image=int(counter.get_total_flops()),
        input_shape=shape,
    )
