"""Per-process state of a worker: the settings :func:`worker.app.configure` handed it, and the
journal connection, spool, model input store and predictor made from them (created lazily, once
per process, after any fork)."""

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np
import torch

from dicom_node.config import NodeSettings
from dicom_node.journal import Journal
from dicom_node.spool import Spool
from inference import Predictor
from inference.device import select_device
from worker.app import SETTINGS_KEY, app
from worker.model_inputs import ModelInputStore

log = logging.getLogger(__name__)
WARM_UP_SIDE = 256  # the synthetic image of warm_up_predictor (resized to the model's input)
# Batches scored at once per device type: on a GPU, one batch's decoding and results (CPU work)
# overlap the next one's forward pass (docs/benchmarks.md); on the CPU both would share its cores.
DEFAULT_SCORING_THREADS = {"cuda": 2}


def settings() -> NodeSettings:
    """The settings this process's tasks run with (:func:`worker.app.configure`)."""
    configured = app.conf.get(SETTINGS_KEY)
    if configured is None:
        raise RuntimeError("the worker's Celery app was not configured (worker.app.configure)")
    return configured


@cache
def _journal_for(pid: int, path: str) -> Journal:
    return Journal(path)


def journal() -> Journal:
    """This process's connection to the node's journal (node-queue tasks only)."""
    return _journal_for(os.getpid(), str(settings().journal_path))


@cache
def _spool_for(pid: int, root: str) -> Spool:
    return Spool(Path(root), journal())


def spool() -> Spool:
    """The node's spool, as this process reaches it (node-queue tasks only)."""
    return _spool_for(os.getpid(), str(settings().spool))


@cache
def _model_inputs_for(pid: int, broker_url: str) -> ModelInputStore:
    return ModelInputStore.of_broker(app)


def model_inputs() -> ModelInputStore:
    """Where this process's tasks keep (prepare) and find (infer) model inputs: the broker's Redis."""
    return _model_inputs_for(os.getpid(), str(app.conf.broker_url))


def scoring_threads(configured: NodeSettings, device: torch.device) -> int:
    """How many batches an inference worker scores at once: ``scoring_threads``, else the device's
    default (:data:`DEFAULT_SCORING_THREADS`)."""
    return configured.scoring_threads or DEFAULT_SCORING_THREADS.get(device.type, 1)


@cache
def _predictor_for(pid: int) -> Predictor:
    configured = settings()
    threads = scoring_threads(configured, select_device(configured.device))
    return Predictor(
        weights=configured.weights,
        allow_untrained=configured.untrained,
        device=configured.device,
        batch_size=configured.batch_size,
        precision=configured.precision,
        channels_last=configured.channels_last,
        compiled=configured.compile_network,
        cuda_graphs=threads if configured.cuda_graphs else 0,
    )


def predictor() -> Predictor:
    """This process's BS-Net predictor (inference-queue tasks only)."""
    return _predictor_for(os.getpid())


@cache
def _codec_threads_for(pid: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="codec")


def codec_threads() -> ThreadPoolExecutor:
    """Threads that decode one batch's model inputs in parallel (numpy releases the GIL for much
    of that work); one per core, for this process."""
    return _codec_threads_for(os.getpid())


def warm_up_predictor() -> Predictor:
    """Load this process's predictor and score a full batch of a synthetic ramp once: a weights
    file that cannot be loaded fails here, when the worker starts, and neither the first image nor
    a compiled network's first batch pays for loading or compiling."""
    loaded = predictor()
    ramp = np.tile(np.linspace(0.0, 1.0, WARM_UP_SIDE, dtype=np.float32), (WARM_UP_SIDE, 1))
    loaded.predict_batch([ramp] * loaded.options.batch_size)
    log.info("model warmed: %s on %s (%s)", loaded.identity.label, loaded.device, loaded.options.describe())
    return loaded
