"""Size and cost of a model: parameter count and FLOPs for one input (torch's FLOP counter)."""

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from inference.model_spec import ModelSpec
from inference.predictor import build_untrained


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    parameters: int
    flops_per_image: int  # multiply-add = 2 FLOPs
    input_shape: tuple[int, int, int]


def describe(spec: ModelSpec) -> ModelInfo:
    """Count parameters and FLOPs of ``spec`` for one image of its input size (on the CPU)."""
    model = build_untrained(spec).eval()
    shape = (spec.input_spec.channels, spec.input_spec.height, spec.input_spec.width)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape))
    return ModelInfo(
        name=spec.name,
        version=spec.version,
        parameters=sum(p.numel() for p in model.parameters()),
        flops_per_image=int(counter.get_total_flops()),
        input_shape=shape,
    )
