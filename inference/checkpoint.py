"""Training checkpoints: the file beside the weights a run writes, its format tag, and the global
RNG states it carries so that a resumed run equals an uninterrupted one (:mod:`inference.training`
decides what else goes in). Written with :func:`inference.durable.save_durably`."""

import random
from pathlib import Path

import numpy as np
import torch

from inference.durable import save_durably

CHECKPOINT_FORMAT = "dicom-node-checkpoint/1"


def checkpoint_path(weights: Path) -> Path:
    """Where the resumable checkpoint of a run writing ``weights`` lives."""
    weights = Path(weights)
    return weights.with_name(weights.name + ".checkpoint")


def rng_state() -> dict:
    """Global RNG states as types ``torch.load(weights_only=True)`` accepts."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss)
    return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    """Restore the global RNG states :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    name, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    random.setstate(state["python"])


def save_checkpoint(state: dict, path: Path) -> None:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) to ``path`` under the format tag."""
    save_durably({"format": CHECKPOINT_FORMAT, **state}, path)


def load_checkpoint(path: Path) -> dict:
    """The state :func:`save_checkpoint` wrote; ValueError if ``path`` holds something else."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a training checkpoint")
    return state
