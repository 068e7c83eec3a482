"""From a DICOM radiograph or an image file to BS-Net's input (BSNET.md "Input").

DICOM: decode with pydicom's pixel handlers (any transfer syntax it and pylibjpeg support),
Modality LUT (PS3.3 C.11.1), VOI LUT or window (PS3.3 C.11.2), MONOCHROME1 / Presentation LUT
Shape INVERSE inversion (PS3.3 C.7.6.3.1.2, C.11.6) -> display image in [0, 1], air dark.
An 8-bit image file -> its grey codes / 255 in float64, as the authors' ``load_image`` reads it.

Model input, exactly as the authors' ``datasets/utils.py`` (BS-Net, BrixIA) makes it:
``load_image`` resizes with ``cv2.resize(img, (S, S))`` (bilinear, half-pixel centres, two taps per
axis even when downscaling, aspect not kept) and ``equalize`` applies PIL's equalisation on 4096
bins, then divides by the maximum (both in :mod:`inference.authors_input`, bit for bit).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from inference.authors_input import equalize, resize_bilinear
from inference.errors import (
    ColourImageError,
    ImageTooSmallError,
    MultiFrameError,
    NoPixelDataError,
    PixelDecodeError,
    UnsupportedImageError,
)
from inference.geometry import FrameMapping

MODEL_INPUT_SIZE = 512
MIN_SOURCE_SIZE = 128
DISPLAY_MAX_SIDE = 1024


@dataclass
class PreparedImage:
    """One radiograph ready for the model.

    model_input: (512, 512) float32 in [0, 1]; mapping: model frame <-> source pixels.
    Overlays draw on :func:`display_copy` of the source, made where the DICOM is (the node).
    """

    model_input: np.ndarray
    mapping: FrameMapping


def _check_shape(rows: int, cols: int) -> None:
    if rows < MIN_SOURCE_SIZE or cols < MIN_SOURCE_SIZE:
        raise ImageTooSmallError(
            f"image is {rows}x{cols} pixels; at least {MIN_SOURCE_SIZE}x{MIN_SOURCE_SIZE} is needed"
        )


def check_dataset_supported(ds: Dataset) -> None:
    """Raise a typed :class:`UnsupportedImageError` if ``ds`` is no single-frame greyscale image."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise NoPixelDataError("dataset has no Pixel Data (7FE0,0010)")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ColourImageError(
            f"Photometric Interpretation {photometric or 'missing'} with {samples} samples per "
            "pixel: only MONOCHROME1/MONOCHROME2 radiographs can be scored"
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise MultiFrameError(f"dataset has {frames} frames; a radiograph has one")
    _check_shape(int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0))


def _normalise(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    return np.clip((values.astype(np.float64) - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _number(ds: Dataset, keyword: str) -> float:
    """The (first) value of a DS/IS attribute as a finite number; a typed error naming it otherwise."""
    value = ds[keyword].value
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = value[0] if len(value) else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number):
        raise UnsupportedImageError(f"{keyword} {str(value)[:20]!r} is not a number")
    return number


def _check_rescale(ds: Dataset) -> None:
    """Rescale Slope/Intercept, where present, must be numbers (PS3.3 C.11.1)."""
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        if keyword in ds:
            _number(ds, keyword)


def _check_native_length(ds: Dataset) -> None:
    """Uncompressed Pixel Data must hold Rows x Columns x Samples x Bits Allocated bits (PS3.5 8.1.1),
    padded to even length: a dataset whose dimensions lie would otherwise be read as another image."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or syntax.is_compressed or "PixelData" not in ds:
        return
    bits = int(ds.get("BitsAllocated", 0) or 0)
    pixels = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
    expected = -(-pixels * bits // 8)
    actual = len(ds.PixelData or b"")
    if bits not in (1, 8, 16, 32) or actual not in (expected, expected + expected % 2):
        raise PixelDecodeError(
            f"Pixel Data holds {actual} bytes; {ds.Rows} x {ds.Columns} pixels of {bits} bits need {expected}"
        )


def _apply_window(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """Window Center/Width with VOI LUT Function (PS3.3 C.11.2.1.2-3) -> [0, 1]."""
    center = _number(ds, "WindowCenter")
    width = _number(ds, "WindowWidth")
    if width < 1.0:
        raise UnsupportedImageError(f"Window Width {width:g} is below 1 (PS3.3 C.11.2.1.2)")
    function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
    x = values.astype(np.float64)
    if function == "SIGMOID":
        return (1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))).astype(np.float32)
    if function == "LINEAR_EXACT":
        return np.clip((x - center) / width + 0.5, 0.0, 1.0).astype(np.float32)
    if width <= 1.0:
        return (x > center - 0.5).astype(np.float32)
    return np.clip((x - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0).astype(np.float32)


def _apply_voi(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """VOI LUT Sequence if present, else the first window, else the full range -> [0, 1]."""
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        lut = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64)
        mapped = apply_voi_lut(values, ds, index=0, prefer_lut=True)
        return _normalise(mapped, float(lut.min()), float(lut.max()))
    if "WindowCenter" in ds and "WindowWidth" in ds:
        return _apply_window(values, ds)
    return _normalise(values, float(values.min()), float(values.max()))


def _needs_inversion(ds: Dataset) -> bool:
    """True where low values display white: MONOCHROME1, or MONOCHROME2 with an INVERSE
    Presentation LUT Shape (for MONOCHROME1 the INVERSE shape is the same single inversion)."""
    photometric = str(ds.PhotometricInterpretation).upper()
    shape = str(ds.get("PresentationLUTShape", "IDENTITY")).upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"


def display_image_from_dataset(ds: Dataset) -> np.ndarray:
    """The radiograph as a viewer shows it: (rows, cols) float32 in [0, 1], air dark."""
    check_dataset_supported(ds)
    _check_native_length(ds)
    _check_rescale(ds)
    try:
        stored = ds.pixel_array
    except Exception as error:  # pydicom raises many types for codecs and codestreams
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise PixelDecodeError(f"cannot decode pixel data ({syntax}): {error}") from error
    if stored.ndim != 2:
        raise UnsupportedImageError(f"decoded pixel array has shape {stored.shape}, expected 2-D")
    values = apply_modality_lut(stored, ds)
    display = _apply_voi(values, ds)
    if _needs_inversion(ds):
        display = 1.0 - display
    return display


def display_image_from_file(path: Path) -> np.ndarray:
    """A plain image file (PNG/JPEG, 8 or 16 bit) or a DICOM file -> display image in [0, 1].

    8-bit files give codes / 255 in float64 (the authors' ``load_image``), the others float32.
    """
    path = Path(path)
    if pydicom.misc.is_dicom(path):
        return display_image_from_dataset(pydicom.dcmread(path))
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                values = np.asarray(image, dtype=np.float64)
                display = _normalise(values, float(values.min()), float(values.max()))
            else:  # the authors' load_image: uint8 codes / 255 in float64
                display = np.asarray(image.convert("L"), dtype=np.uint8) / 255.0
    except (OSError, ValueError) as error:
        raise UnsupportedImageError(f"cannot read image file {path.name}: {error}") from error
    _check_shape(*display.shape)
    return display


def _to_uint8(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8))


def model_input_from_display(display: np.ndarray, size: int = MODEL_INPUT_SIZE) -> np.ndarray:
    """Display image in [0, 1] -> (size, size) float32: the authors' ``cv2.resize`` and
    ``equalize``, in float64 (pass 8-bit images as codes / 255 in float64 to be bit-exact)."""
    _check_shape(*display.shape)
    resized = resize_bilinear(np.asarray(display, dtype=np.float64), size, size)
    return equalize(resized).astype(np.float32)


def display_copy(display: np.ndarray, max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray:
    """uint8 copy of the display image with its longest side <= max_side, aspect kept."""
    rows, cols = display.shape
    factor = min(1.0, max_side / max(rows, cols))
    image = _to_uint8(display)
    if factor < 1.0:
        size = (max(1, round(cols * factor)), max(1, round(rows * factor)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image)


def prepare_display(display: np.ndarray, size: int = MODEL_INPUT_SIZE) -> PreparedImage:
    """Display image (rows, cols) in [0, 1] -> :class:`PreparedImage` (computed in float64)."""
    display = np.asarray(display, dtype=np.float64)
    if display.ndim != 2:
        raise ColourImageError(f"expected a 2-D greyscale image, got shape {display.shape}")
    return PreparedImage(
        model_input=model_input_from_display(display, size),
        mapping=FrameMapping(display.shape, size),
    )


def prepare_dataset(ds: Dataset, size: int = MODEL_INPUT_SIZE) -> PreparedImage:
    """pydicom Dataset -> :class:`PreparedImage` (mapping to the dataset's Rows x Columns)."""
    return prepare_display(display_image_from_dataset(ds), size)


def prepare_file(path: Path, size: int = MODEL_INPUT_SIZE) -> PreparedImage:
    """Image or DICOM file -> :class:`PreparedImage`."""
    return prepare_display(display_image_from_file(path), size)
