"""BS-Net and image preprocessing for the node (no networking, no Celery).

``from inference import Predictor``: ``Predictor(weights=PATH_OR_None, allow_untrained=False,
device=None).predict(dataset_or_array)`` returns a :class:`BrixiaResult`.
"""

from inference.errors import (
    ColourImageError,
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
from inference.predictor import Predictor
from inference.result import UNTRAINED_WARNING, BrixiaResult

__all__ = [
    "BSNET_SPEC",
    "UNTRAINED_WARNING",
    "BrixiaResult",
    "ColourImageError",
    "ImageTooSmallError",
    "InferenceError",
    "InputSpec",
    "ModelSpec",
    "MultiFrameError",
    "NoPixelDataError",
    "PixelDecodeError",
    "Predictor",
    "UnsupportedImageError",
    "UntrainedModelError",
    "WeightsError",
]
