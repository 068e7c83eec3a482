"""The small interface every scoring model of the node implements (ARCHITECTURE.md, "Models
beyond BS-Net"): a name, a version, an input spec and a network factory."""

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from inference.bsnet.model import INPUT_SIZE, BSNet, check_input_size


@dataclass(frozen=True)
class InputSpec:
    """What the network reads: size, channels, value range and the preprocessing recipe."""

    height: int
    width: int
    channels: int
    value_range: tuple[float, float]
    preprocessing: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelSpec:
    """Identity of a model: weights files record name and version and must match them."""

    name: str
    version: str
    input_spec: InputSpec
    build: Callable[[], nn.Module]

    def at_size(self, size: int) -> "ModelSpec":
        """This model read at ``size`` x ``size`` (weights record the size they were trained at)."""
        check_input_size(size)
        spec = self.input_spec
        recipe = spec.preprocessing.replace(f"{spec.height}x{spec.width}", f"{size}x{size}")
        return replace(self, input_spec=replace(spec, height=size, width=size, preprocessing=recipe))


BSNET_SPEC = ModelSpec(
    name="BS-Net",
    version="2.0.0",
    input_spec=InputSpec(
        height=INPUT_SIZE,
        width=INPUT_SIZE,
        channels=1,
        value_range=(0.0, 1.0),
        preprocessing="display image (Modality LUT, VOI, MONOCHROME1 inverted) in [0, 1], bilinear "
        "resize to 512x512 without antialias or aspect, 4096-bin equalisation / max (the authors' recipe)",
    ),
    build=BSNet,
)


UNTRAINED_SEED = 0


def build_untrained(spec: ModelSpec) -> nn.Module:
    """The network with a fixed-seed random initialisation (same checksum on every machine)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(UNTRAINED_SEED)
        return spec.build()
