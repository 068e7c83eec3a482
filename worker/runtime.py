"""Per-process state of a worker: its settings, journal connection and predictor (created
lazily, once per process, after any fork)."""

import os
from functools import cache

from dicom_node.config import NodeSettings, load_settings
from dicom_node.journal import Journal
from inference import Predictor

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
