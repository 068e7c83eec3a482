"""Per-process state of a worker: its settings, journal connection and predictor (created
lazily, once per process, after any fork)."""

import logging
import os
from functools import cache

import numpy as np
import torch

from dicom_node.config import NodeSettings, load_settings
from dicom_node.journal import Journal
from inference import Predictor

log = logging.getLogger(__name__)
WARM_UP_SIDE = 256  # the synthetic image of warm_up_predictor (resized to the model's input)
_settings: NodeSettings | None = None


def use_settings(settings: NodeSettings) -> None:
    """Settings for the tasks of this process (set by ``dicom-node serve`` / ``worker``)."""
    global _settings
    _settings = settings


def settings() -> NodeSettings:
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


@cache
def _journal_for(pid: int, path: str) -> Journal:
    return Journal(path)


def journal() -> Journal:
    """This process's connection to the node's journal (node-queue tasks only)."""
    return _journal_for(os.getpid(), str(settings().journal_path))


@cache
def _predictor_for(pid: int) -> Predictor:
    configured = settings()
    return Predictor(weights=configured.weights, allow_untrained=configured.untrained)


def predictor() -> Predictor:
    """This process's BS-Net predictor (inference-queue tasks only)."""
    return _predictor_for(os.getpid())


def warm_up_predictor() -> Predictor:
    """Load this process's predictor and score a synthetic ramp once: a weights file that cannot be
    loaded fails here, when the worker starts, and the first image does not pay for the load.

    It runs on one thread: a prefork worker forks its pool after this, and a child forked from a
    process whose OpenMP thread pool exists hangs at its first parallel operation. The thread
    count is set back for the pool processes, which start their own threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loaded = predictor()
        ramp = np.tile(np.linspace(0.0, 1.0, WARM_UP_SIDE, dtype=np.float32), (WARM_UP_SIDE, 1))
        loaded.predict(ramp)
    finally:
        torch.set_num_threads(threads)
    log.info(
        "model warmed: %s %s, weights sha256 %s (%s) on %s",
        loaded.spec.name, loaded.model_version, loaded.weights_sha256[:12], loaded.weights_source, loaded.device,
    )
    return loaded
