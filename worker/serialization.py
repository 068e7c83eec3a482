"""JSON-safe messages between the node and inference workers: arrays travel as compressed,
base64-encoded bytes, never as file paths (ARCHITECTURE.md "workers own tensors")."""

import base64
import zlib
from typing import Any

import numpy as np

from inference.geometry import FrameMapping
from inference.preprocessing import PreparedImage
from inference.result import BrixiaResult


def encode_array(array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array)
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "data": base64.b64encode(zlib.compress(array.tobytes(), 3)).decode("ascii"),
    }


def decode_array(message: dict[str, Any]) -> np.ndarray:
    data = zlib.decompress(base64.b64decode(message["data"]))
    return np.frombuffer(data, dtype=np.dtype(message["dtype"])).reshape(message["shape"]).copy()


def _encode_mapping(mapping: FrameMapping) -> dict[str, Any]:
    return {"source_shape": list(mapping.source_shape), "model_size": mapping.model_size}


def _decode_mapping(message: dict[str, Any]) -> FrameMapping:
    return FrameMapping(tuple(message["source_shape"]), int(message["model_size"]))


def _model_input_codes(model_input: np.ndarray) -> np.ndarray:
    """The 8-bit codes of a model input, which is an equalised 8-bit image / 255
    (``inference.preprocessing.model_input_from_display``): a quarter of the float32 bytes."""
    codes = np.round(model_input * 255.0).astype(np.uint8)
    if not np.array_equal(codes.astype(np.float32) / 255.0, model_input):
        raise ValueError("model input is not an 8-bit image / 255; it cannot travel as 8-bit codes")
    return codes


def encode_prepared(prepared: PreparedImage) -> dict[str, Any]:
    """Model input (as its 8-bit codes, exactly) and mapping: all the inference worker needs."""
    return {
        "model_input_codes": encode_array(_model_input_codes(prepared.model_input)),
        "mapping": _encode_mapping(prepared.mapping),
    }


def decode_prepared(message: dict[str, Any]) -> PreparedImage:
    return PreparedImage(
        model_input=decode_array(message["model_input_codes"]).astype(np.float32) / 255.0,
        mapping=_decode_mapping(message["mapping"]),
    )


def encode_result(result: BrixiaResult) -> dict[str, Any]:
    """Scores and metadata as JSON; maps compressed (explainability as 8-bit, plenty for display)."""
    return {
        "region_scores": result.region_scores,
        "probabilities": {k: list(v) for k, v in result.probabilities.items()},
        "global_score": result.global_score,
        "lung_mask": encode_array(result.lung_mask.astype(np.uint8)),
        "region_map": encode_array(result.region_map),
        "explainability": encode_array(np.round(result.explainability * 255).astype(np.uint8)),
        "mapping": _encode_mapping(result.mapping),
        "model_name": result.model_name,
        "model_version": result.model_version,
        "weights_sha256": result.weights_sha256,
        "untrained": result.untrained,
    }


def decode_result(message: dict[str, Any]) -> BrixiaResult:
    return BrixiaResult(
        region_scores={k: int(v) for k, v in message["region_scores"].items()},
        probabilities={k: tuple(float(p) for p in v) for k, v in message["probabilities"].items()},
        global_score=int(message["global_score"]),
        lung_mask=decode_array(message["lung_mask"]).astype(bool),
        region_map=decode_array(message["region_map"]),
        explainability=decode_array(message["explainability"]).astype(np.float32) / 255.0,
        mapping=_decode_mapping(message["mapping"]),
        model_name=message["model_name"],
        model_version=message["model_version"],
        weights_sha256=message["weights_sha256"],
        untrained=bool(message["untrained"]),
    )
