"""BS-Net and image preprocessing for the node (no networking, no Celery).

``from inference import Predictor``: ``Predictor(weights=PATH_OR_None, allow_untrained=False,
device=None).predict(dataset_or_array)`` returns a :class:`BrixiaResult`.
"""

import importlib

from inference.errors import (
    ColourImageError,
    DeviceError,
    ImageTooSmallError,
    InferenceError,
    MultiFrameError,
    NoPixelDataError,
    PixelDecodeError,
    UnsupportedImageError,
    UntrainedModelError,
    WeightsError,
)
from inference.model_spec import BSNET_SPEC, InputSpec, ModelSpec

# Imported on first use (PEP 562): the network's own modules need only torch; these need pydicom,
# OpenCV, Pillow and the pixel decoders.
LAZY = {
    "Predictor": "inference.predictor",
    "BrixiaResult": "inference.result",
    "ModelIdentity": "inference.result",
    "UNTRAINED_WARNING": "inference.result",
}

__all__ = [
    "BSNET_SPEC",
    "UNTRAINED_WARNING",
    "BrixiaResult",
    "ColourImageError",
    "DeviceError",
    "ImageTooSmallError",
    "InferenceError",
    "InputSpec",
    "ModelIdentity",
    "ModelSpec",
    "MultiFrameError",
    "NoPixelDataError",
    "PixelDecodeError",
    "Predictor",
    "UnsupportedImageError",
    "UntrainedModelError",
    "WeightsError",
]


def __getattr__(name: str) -> object:
    if name in LAZY:
        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module 'inference' has no attribute {name!r}")
