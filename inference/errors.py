"""Typed errors of the inference package: callers can tell bad input from bad weights."""


class InferenceError(Exception):
    """Base class of every error raised on purpose by :mod:`inference`."""


class UnsupportedImageError(InferenceError, ValueError):
    """The input cannot be scored by BS-Net (a reason a person can act on is in the message)."""


class NoPixelDataError(UnsupportedImageError):
    """The dataset has no Pixel Data (7FE0,0010) element."""


class ColourImageError(UnsupportedImageError):
    """Samples per Pixel > 1: BS-Net reads one-channel radiographs only."""


class MultiFrameError(UnsupportedImageError):
    """Number of Frames > 1: a radiograph is one frame."""


class ImageTooSmallError(UnsupportedImageError):
    """Rows or Columns below the smallest size that can be scored meaningfully."""


class PixelDecodeError(UnsupportedImageError):
    """The pixel data could not be decoded (missing codec or broken codestream)."""


class WeightsError(InferenceError):
    """A weights file is missing, corrupt, for another model, or fails its checksum."""


class UntrainedModelError(InferenceError):
    """Scoring was asked for without weights and without explicit permission to run untrained."""


class DeviceError(InferenceError, RuntimeError):
    """The device or run options asked for are not available here (no CUDA, no bf16, bad batch size)."""
