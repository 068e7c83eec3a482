"""JSON-safe messages between the node and inference workers: arrays travel as base64-encoded
bytes (compressed where that pays), never as file paths (ARCHITECTURE.md "workers own tensors");
a model input's codes, the one large array, travel as raw bytes beside their message
(:mod:`worker.model_inputs`). base64 is pybase64's SIMD codec (docs/benchmarks.md)."""

import zlib
from dataclasses import asdict
from typing import Any

import numpy as np
import pybase64

from inference.authors_input import EQUALISATION_BINS
from inference.geometry import FrameMapping
from inference.preprocessing import PreparedImage
from inference.result import BrixiaResult, ModelIdentity


def encode_array(array: np.ndarray, compress: bool = True) -> dict[str, Any]:
    """``array`` as base64 text, zlib-compressed unless ``compress`` is False (for data that
    compresses poorly, where zlib costs more time than the bytes it saves)."""
    data = np.ascontiguousarray(array).tobytes()
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "compression": "zlib" if compress else "none",
        "data": pybase64.b64encode_as_string(zlib.compress(data, 3) if compress else data),
    }


def decode_array(message: dict[str, Any]) -> np.ndarray:
    """The array of :func:`encode_array`; no "compression" key means zlib (messages queued by a
    node before this key existed)."""
    data = pybase64.b64decode(message["data"], validate=True)
    compression = message.get("compression", "zlib")
    if compression == "zlib":
        data = zlib.decompress(data)
    elif compression != "none":
        raise ValueError(f"array compression {compression!r} is not known here (zlib or none)")
    return np.frombuffer(data, dtype=np.dtype(message["dtype"])).reshape(message["shape"]).copy()


def _encode_mapping(mapping: FrameMapping) -> dict[str, Any]:
    return {"source_shape": list(mapping.source_shape), "model_size": mapping.model_size}


def _decode_mapping(message: dict[str, Any]) -> FrameMapping:
    return FrameMapping(tuple(message["source_shape"]), int(message["model_size"]))


def _as_codes(model_input: np.ndarray, divisor: int) -> np.ndarray:
    return np.rint(model_input.astype(np.float64) * divisor).astype(np.uint16)


def _from_codes(codes: np.ndarray, divisor: int) -> np.ndarray:
    """float32(code / divisor), divided in float64 like ``inference.authors_input.equalize``
    (looked up per level: a few hundred divisions instead of one per pixel)."""
    levels = (np.arange(int(codes.max(initial=0)) + 1, dtype=np.float64) / divisor).astype(np.float32)
    return levels[codes]


def _divisor_candidates(values: np.ndarray) -> np.ndarray:
    """Divisors d <= EQUALISATION_BINS with float32(round(v * d) / d) == v for every value v.

    The values are tried in growing chunks against the divisors still standing (a few after the
    first chunk), each chunk's work bounded to about a million products."""
    divisors = np.arange(1, EQUALISATION_BINS + 1)
    start, size = 0, 16
    while start < len(values) and len(divisors):
        chunk = values[start : start + size].astype(np.float64)
        codes = np.rint(chunk[None, :] * divisors[:, None])
        exact = (codes / divisors[:, None]).astype(np.float32) == chunk[None, :]
        divisors = divisors[exact.all(axis=1)]
        start += size
        size = min(4 * size, max(16, 2**20 // max(len(divisors), 1)))
    return divisors


def _model_input_codes(model_input: np.ndarray) -> tuple[np.ndarray, int]:
    """A model input as uint16 codes and their divisor, exactly: the equalised levels and their
    maximum (``inference.authors_input.equalize``), half the float32 bytes and far fewer once
    compressed. Anything else is refused with a ValueError."""
    values = np.unique(model_input) if model_input.dtype == np.float32 else np.empty(0, np.float32)
    if not len(values) or values[0] < 0.0 or values[-1] > 1.0:
        raise ValueError("model input is not float32 in [0, 1]; it cannot travel as equalisation codes")
    divisors = _divisor_candidates(values)
    if len(divisors):
        divisor = int(divisors[0])
        codes = _as_codes(model_input, divisor)
        if np.array_equal(_from_codes(codes, divisor), model_input):
            return codes, divisor
    raise ValueError(
        f"model input is not equalisation levels / a divisor <= {EQUALISATION_BINS}; "
        "it cannot travel as equalisation codes"
    )


def encode_prepared(prepared: PreparedImage) -> tuple[dict[str, Any], bytes]:
    """A model input as its equalisation codes (exactly; uncompressed: equalised codes are nearly
    incompressible) and their header: the codes' dtype, shape and divisor, and the mapping. The
    header travels in the task message, the codes' bytes beside it (:mod:`worker.model_inputs`)."""
    codes, divisor = _model_input_codes(prepared.model_input)
    header = {
        "model_input_codes": {"dtype": codes.dtype.str, "shape": list(codes.shape)},
        "model_input_divisor": divisor,
        "mapping": _encode_mapping(prepared.mapping),
    }
    return header, codes.tobytes()


def decode_prepared(header: dict[str, Any], codes: bytes) -> PreparedImage:
    """The prepared image of :func:`encode_prepared`'s header and codes."""
    layout = header["model_input_codes"]
    array = np.frombuffer(codes, dtype=np.dtype(layout["dtype"])).reshape(layout["shape"])
    return PreparedImage(
        model_input=_from_codes(array, int(header["model_input_divisor"])),
        mapping=_decode_mapping(header["mapping"]),
    )


def _encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """A bool mask as one bit a pixel (``np.packbits``), compressed, with its shape."""
    return {"shape": list(mask.shape), "bits": encode_array(np.packbits(mask))}


def _decode_mask(message: dict[str, Any]) -> np.ndarray:
    shape = tuple(message["shape"])
    bits = np.unpackbits(decode_array(message["bits"]), count=int(np.prod(shape)))
    return bits.reshape(shape).astype(bool)


def encode_result(result: BrixiaResult) -> dict[str, Any]:
    """Scores and metadata as JSON, with what the maps are made of (the lung mask as bits, the
    alignment and the heads' contributions, exactly): the node draws the maps from them."""
    return {
        "region_scores": result.region_scores,
        "probabilities": {k: list(v) for k, v in result.probabilities.items()},
        "global_score": result.global_score,
        "lung_mask": _encode_mask(result.lung_mask),
        "alignment": encode_array(result.alignment, compress=False),
        "contributions": encode_array(result.contributions, compress=False),
        "mapping": _encode_mapping(result.mapping),
        "model": asdict(result.model),
    }


def decode_result(message: dict[str, Any]) -> BrixiaResult:
    """The result of :func:`encode_result`; a result queued by an older build (which sent the maps
    themselves) is refused with a ValueError that says how to score the image again."""
    if "alignment" not in message:
        raise ValueError(
            "this result was sent by an older dicom-node (full-size maps, no alignment): "
            "score the image again with `dicom-node retry --failed`"
        )
    return BrixiaResult(
        region_scores={k: int(v) for k, v in message["region_scores"].items()},
        probabilities={k: tuple(float(p) for p in v) for k, v in message["probabilities"].items()},
        global_score=int(message["global_score"]),
        lung_mask=_decode_mask(message["lung_mask"]),
        alignment=decode_array(message["alignment"]),
        contributions=decode_array(message["contributions"]),
        mapping=_decode_mapping(message["mapping"]),
        model=ModelIdentity(**message["model"]),
    )
