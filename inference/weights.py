"""Our weights file format: one ``torch.save`` archive, loadable with ``weights_only=True``.

Keys: ``format`` ("dicom-node-weights/1"), ``state_dict``, ``metadata`` (model name and version,
input spec, source (the authors' release or our own training) and source file, training data
description, metrics, creation time) and ``sha256``: the checksum of the tensors (names, dtypes,
shapes and bytes in name order), checked on every load. Weights whose model version has another
major version than the network's (e.g. 1.x, the network before the layer-exact port) are refused.
"""

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch

from inference.durable import save_durably
from inference.errors import WeightsError
from inference.model_spec import ModelSpec

WEIGHTS_FORMAT = "dicom-node-weights/1"
AUTHORS_RELEASE = "authors' release"
OWN_TRAINING = "own training"


@dataclass
class WeightsMetadata:
    """Provenance of a weights file (shown in outputs as model version + checksum)."""

    model_name: str
    model_version: str
    input_spec: dict
    source: str = OWN_TRAINING  # AUTHORS_RELEASE or OWN_TRAINING
    source_file: str = ""  # imported file and its sha256, or the weights a training run started from
    training_data: str = ""
    metrics: dict = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


@dataclass
class LoadedWeights:
    state_dict: dict[str, torch.Tensor]
    metadata: WeightsMetadata
    sha256: str


def tensors_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def metadata_for(
    spec: ModelSpec,
    training_data: str = "",
    metrics: dict | None = None,
    source: str = OWN_TRAINING,
    source_file: str = "",
) -> WeightsMetadata:
    """Metadata naming ``spec``; the other arguments describe where the weights come from."""
    return WeightsMetadata(
        model_name=spec.name,
        model_version=spec.version,
        input_spec=spec.input_spec.as_dict(),
        source=source,
        source_file=source_file,
        training_data=training_data,
        metrics=dict(metrics or {}),
    )


def save_weights(path: Path, state_dict: dict[str, torch.Tensor], metadata: WeightsMetadata) -> str:
    """Write a weights file atomically (temp file, fsync, rename); returns its tensors' sha256."""
    path = Path(path)
    tensors = {name: t.detach().cpu() for name, t in state_dict.items()}
    checksum = tensors_sha256(tensors)
    payload = {
        "format": WEIGHTS_FORMAT,
        "state_dict": tensors,
        "metadata": asdict(metadata),
        "sha256": checksum,
    }
    save_durably(payload, path)
    return checksum


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def load_weights(path: Path, spec: ModelSpec) -> LoadedWeights:
    """Read and verify a weights file for ``spec``; any problem raises :class:`WeightsError`."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        raise WeightsError(f"{path} is not a readable weights file: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{path} is not in the {WEIGHTS_FORMAT} format")
    try:
        metadata = WeightsMetadata(**payload["metadata"])
        state_dict = payload["state_dict"]
        recorded = str(payload["sha256"])
    except (KeyError, TypeError) as error:
        raise WeightsError(f"{path} lacks metadata, tensors or checksum: {error}") from error
    if metadata.model_name != spec.name:
        raise WeightsError(f"{path} holds weights for {metadata.model_name!r}, not {spec.name!r}")
    if _major(metadata.model_version) != _major(spec.version):
        raise WeightsError(
            f"{path} holds {spec.name} {metadata.model_version} weights; this node runs {spec.name} {spec.version}, "
            "whose network differs: import the authors' weights (dicom-node import-weights) or train again"
        )
    actual = tensors_sha256(state_dict)
    if actual != recorded:
        raise WeightsError(f"{path} fails its checksum (recorded {recorded[:12]}, actual {actual[:12]})")
    return LoadedWeights(state_dict=state_dict, metadata=metadata, sha256=actual)
