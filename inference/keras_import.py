"""Import the authors' Keras BS-Net weights (``bscore-model.h5``) into our weights format.

The file is read with h5py (no TensorFlow). Both root layouts are accepted: ``save_weights``
(``layer_names`` on the root) and a full ``model.save`` (the same tree under ``model_weights``).
Plain layers carry fixed official names (``conv0``, ``stage2_unit1_bn1``, ``decoder_stage3-2_conv2``,
``P5``...), which are our module names (see :func:`keras_layer_of`). The nested layers are named by
session counters and list their variables in an order that depends on trainable flags at save
time, so they are found and mapped by sub-path: the STN is the layer holding ``locnet_*`` weights;
the six heads are the layers holding ``conv_block*`` weights, in file order (= head order
A, D, B, E, C, F); inside a head, blocks are ordered by their creation counters (``conv_block``,
``conv_block_1``, ...), whatever order the variables are listed in, and the remaining conv is the
4-channel scorer (reference/bsnet-keras/README.md, "The h5 file, for an importer").

Layouts: Conv2D kernel (kh, kw, in, out) and Conv2DTranspose kernel (kh, kw, out, in) both become
torch's layout by ``permute(3, 2, 0, 1)``; Dense kernels are transposed; the STN's first Dense
reads a Keras (H, W, C) flatten, which :class:`~inference.bsnet.alignment.LocalisationNet` reproduces.
"""

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from inference.bsnet.model import BSNet
from inference.errors import WeightsError
from inference.model_spec import BSNET_SPEC
from inference.weights import AUTHORS_RELEASE, metadata_for, save_weights

STN_LAYER = "stn"
HEAD_LAYER = "head"


@dataclass(frozen=True)
class KerasLocation:
    """Where a torch module's weights sit in the h5: a layer key and, for nested layers, a sub-path."""

    layer: str  # official name, or STN_LAYER, or f"{HEAD_LAYER}{k}"
    sub_path: str = ""  # nested layers: "locnet_conv0", "block1/conv", "score_regressor"


def keras_layer_of(module_path: str) -> KerasLocation:
    """Our module path -> the authors' layer (e.g. ``backbone.units.stage1_unit1.bn1`` -> ``stage1_unit1_bn1``)."""
    part, _, rest = module_path.partition(".")
    if part == "alignment":
        return KerasLocation(STN_LAYER, rest)
    if part == "heads":
        match = re.fullmatch(r"heads\.(\d)\.(?:blocks\.(\d)\.(conv|bn)|(score_regressor))", rest)
        if match is None:
            raise ValueError(f"no Keras counterpart for {module_path}")
        head, block, kind, scorer = match.groups()
        return KerasLocation(f"{HEAD_LAYER}{head}", scorer or f"block{block}/{kind}")
    if part == "segmentation" and rest.startswith("nodes."):
        node, _, layer = rest.removeprefix("nodes.").partition(".")
        return KerasLocation(f"decoder_{node}_{layer}")
    return KerasLocation(rest.replace("units.", "").replace(".", "_"))


def _keras_leaves(module: nn.Module) -> dict[str, str]:
    """Keras variable name -> our parameter/buffer name, for one layer."""
    if isinstance(module, nn.BatchNorm2d):
        leaves = {"beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
        return {"gamma": "weight", **leaves} if module.weight is not None else leaves
    if isinstance(module, nn.ConvTranspose2d):
        return {"kernel": "weight"}
    return {"kernel": "weight", "bias": "bias"} if module.bias is not None else {"kernel": "weight"}


def _to_torch(module: nn.Module, leaf: str, array: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if leaf != "kernel":
        return tensor
    if isinstance(module, nn.Linear):
        return tensor.T.contiguous()
    return tensor.permute(3, 2, 0, 1).contiguous() if tensor.ndim == 4 else tensor


def _keras_shape(module: nn.Module, leaf: str, shape: torch.Size) -> tuple[int, ...]:
    """The Keras shape that becomes ``shape`` in torch (for messages)."""
    if leaf == "kernel" and isinstance(module, nn.Linear):
        return tuple(reversed(shape))
    if leaf == "kernel" and len(shape) == 4:
        return (shape[2], shape[3], shape[1], shape[0])
    return tuple(shape)


def _weighted_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    weighted = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d)
    for path, module in model.named_modules():
        if isinstance(module, weighted):
            yield path, module


def _text(value: object) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _attribute_list(group: h5py.Group, name: str) -> list[str]:
    """A Keras name list attribute, whole or chunked (``name0``, ``name1``...); str or bytes."""
    if name in group.attrs:
        return [_text(v) for v in group.attrs[name]]
    values, chunk = [], 0
    while f"{name}{chunk}" in group.attrs:
        values += [_text(v) for v in group.attrs[f"{name}{chunk}"]]
        chunk += 1
    return values


def _creation_order(block: str) -> int:
    """Keras' session counter in a layer name: ``conv_block`` -> 0, ``conv_block_4`` -> 4."""
    suffix = block.rpartition("_")[2]
    return int(suffix) if suffix.isdigit() else 0


def _block_indices(weights: list[str]) -> dict[str, int]:
    """Each ``conv_block*`` name of a head -> its position in the head, by creation order."""
    blocks = {p for w in weights for p in w.split("/") if p.startswith("conv_block")}
    return {name: index for index, name in enumerate(sorted(blocks, key=_creation_order))}


def _nested_key(layer_key: str, weight_name: str, blocks: dict[str, int]) -> str:
    """A nested layer's weight name -> "sub_path/leaf" as :func:`keras_layer_of` spells it."""
    parts = [p for p in weight_name.split("/") if p]
    leaf = parts[-1].split(":")[0]
    if layer_key == STN_LAYER:
        layer = next((p for p in parts if p.startswith("locnet_")), parts[-2])
        return f"{layer}/{leaf}"
    block = next((p for p in parts if p.startswith("conv_block")), None)
    if block is None:
        return f"score_regressor/{leaf}"
    index = blocks[block]
    kind = "bn" if any(p.startswith("batch_normalization") for p in parts) else "conv"
    return f"block{index}/{kind}/{leaf}"


def read_keras_layers(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every weighted layer of a Keras h5 as {layer key: {"sub_path/leaf" or "leaf": array}}.

    Plain layers keep their names; the STN becomes ``stn`` and the heads ``head0``..``head5``.
    Raises :class:`WeightsError` for a file that is not a readable Keras weight file.
    """
    try:
        with h5py.File(path, "r") as handle:
            root = handle
            if "layer_names" not in handle.attrs and "model_weights" in handle:
                root = handle["model_weights"]
            names = _attribute_list(root, "layer_names")
            if not names:
                raise WeightsError(f"{path} is an HDF5 file without Keras 'layer_names': not a Keras weight file")
            layers: dict[str, dict[str, np.ndarray]] = {}
            heads = 0
            for name in names:
                weights = _attribute_list(root[name], "weight_names")
                if not weights:
                    continue
                key = name
                if any("/locnet_" in w for w in weights):
                    key = STN_LAYER
                elif any("/conv_block" in w for w in weights):
                    key, heads = f"{HEAD_LAYER}{heads}", heads + 1
                if key in layers:
                    raise WeightsError(f"{path}: layer {name!r} appears twice")
                layers[key] = _read_layer(root[name], name, key, weights)
            return layers
    except OSError as error:
        raise WeightsError(f"{path} is not a readable HDF5 file (truncated or another format): {error}") from error


def _read_layer(group: h5py.Group, name: str, key: str, weights: list[str]) -> dict[str, np.ndarray]:
    nested = key == STN_LAYER or key.startswith(HEAD_LAYER)
    blocks = _block_indices(weights)
    values = {}
    for weight in weights:
        leaf = _nested_key(key, weight, blocks) if nested else weight.split("/")[-1].split(":")[0]
        try:
            values[leaf] = np.asarray(group[weight])
        except (OSError, KeyError) as error:
            raise WeightsError(f"layer {name!r}: weight {weight!r} cannot be read: {error}") from error
    return values


def keras_state_dict(layers: dict[str, dict[str, np.ndarray]], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map read Keras layers onto ``model``'s state dict, checking every layer and shape.

    Errors name the first offending layer in the network's order; unused Keras layers are refused.
    """
    state = model.state_dict()
    result: dict[str, torch.Tensor] = {}
    used: set[tuple[str, str]] = set()
    for path, module in _weighted_modules(model):
        location = keras_layer_of(path)
        layer = layers.get(location.layer)
        if layer is None:
            raise WeightsError(f"layer {location.layer!r} not found: not a BS-Net weight file (or another version)")
        for leaf, ours in _keras_leaves(module).items():
            key = f"{location.sub_path}/{leaf}" if location.sub_path else leaf
            if key not in layer:
                raise WeightsError(f"layer {location.layer!r} has no weight {key!r}")
            target = state[f"{path}.{ours}"]
            tensor = _to_torch(module, leaf, layer[key])
            if tensor.shape != target.shape:
                expected = _keras_shape(module, leaf, target.shape)
                raise WeightsError(
                    f"layer {location.layer!r} weight {key!r} has shape {tuple(layer[key].shape)}, "
                    f"BS-Net expects {expected}"
                )
            result[f"{path}.{ours}"] = tensor
            used.add((location.layer, key))
    unused = [(layer, key) for layer, values in layers.items() for key in values if (layer, key) not in used]
    if unused:
        raise WeightsError(f"layer {unused[0][0]!r} weight {unused[0][1]!r} is not part of BS-Net")
    for name, tensor in state.items():  # BatchNorm's step counters have no Keras counterpart
        result.setdefault(name, tensor.clone())
    return result


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_keras_weights(source: Path, out: Path) -> str:
    """Read the authors' h5 ``source``, check it, write our weights file ``out``; returns its sha256.

    Nothing is written when the file is refused (:class:`WeightsError` naming the first bad layer).
    """
    source = Path(source)
    if not source.is_file():
        raise WeightsError(f"{source} not found")
    state = keras_state_dict(read_keras_layers(source), BSNet())
    metadata = metadata_for(
        BSNET_SPEC,
        training_data="the authors' training set (BrixIA COVID-19 dataset, Signoroni et al. 2021)",
        source=AUTHORS_RELEASE,
        source_file=f"{source.name} sha256 {file_sha256(source)}",
    )
    return save_weights(Path(out), state, metadata)
