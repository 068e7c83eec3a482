"""Preprocessing on real radiographs: transfer syntaxes, photometric interpretations, LUTs,
stored bits, errors, the model -> source mapping, and the authors' resize + equalisation
against the official fixture (../shared/reference/bsnet-keras)."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from inference.authors_input import equalize, resize_bilinear
from inference.errors import (
    ColourImageError,
    ImageTooSmallError,
    MultiFrameError,
    NoPixelDataError,
    PixelDecodeError,
)
from inference.geometry import FrameMapping
from inference.preprocessing import (
    display_copy,
    display_image_from_dataset,
    model_input_from_display,
    prepare_dataset,
    prepare_display,
    prepare_file,
)
from tests.conftest import CHEST_RADIOGRAPHS, DICOM_DATA, SHARED_DATA, require_path, require_tool

# The authors' official preprocessing, run by the fixture's generator (README.md there).
BSNET_REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "bsnet-keras"

# dcmtk command (program, options) -> transfer syntax it writes, and whether it is lossless.
TRANSCODINGS = {
    "implicit_le": (("dcmconv", "+ti"), "1.2.840.10008.1.2", True),
    "explicit_be": (("dcmconv", "+tb"), "1.2.840.10008.1.2.2", True),
    "deflate": (("dcmconv", "+td"), "1.2.840.10008.1.2.1.99", True),
    "rle": (("dcmcrle",), "1.2.840.10008.1.2.5", True),
    "jpeg_lossless": (("dcmcjpeg", "+el"), "1.2.840.10008.1.2.4.57", True),
    "jpeg_baseline": (("dcmcjpeg", "+eb"), "1.2.840.10008.1.2.4.50", False),
    "jpeg_extended": (("dcmcjpeg", "+ee"), "1.2.840.10008.1.2.4.51", False),
    "jpeg_ls_lossless": (("dcmcjpls",), "1.2.840.10008.1.2.4.80", True),
    "jpeg_ls_near": (("dcmcjpls", "+en"), "1.2.840.10008.1.2.4.81", False),
}

# Model-input boxes (rows, cols) of a PA chest: right lung field and mediastinum/spine.
LUNG_BOX = (slice(150, 350), slice(100, 200))
MEDIASTINUM_BOX = (slice(200, 312), slice(230, 282))


def transcode(source: Path, target: Path, command: tuple[str, ...]) -> Path:
    program = require_tool(command[0])
    subprocess.run([program, *command[1:], str(source), str(target)], check=True, capture_output=True)
    return target


@pytest.mark.parametrize("name", sorted(TRANSCODINGS))
def test_transfer_syntaxes_decode_to_the_same_model_input(name, fuji_cr, tmp_path):
    command, syntax, lossless = TRANSCODINGS[name]
    reference = prepare_dataset(pydicom.dcmread(fuji_cr)).model_input
    ds = pydicom.dcmread(transcode(fuji_cr, tmp_path / f"{name}.dcm", command))
    assert ds.file_meta.TransferSyntaxUID == syntax
    model_input = prepare_dataset(ds).model_input
    difference = np.abs(model_input - reference)
    if lossless:
        np.testing.assert_array_equal(model_input, reference)
    else:
        assert difference.mean() < 0.02


@pytest.mark.parametrize("name", sorted(CHEST_RADIOGRAPHS))
def test_real_radiographs_show_dark_lungs_and_bright_mediastinum(name):
    ds = pydicom.dcmread(require_path(DICOM_DATA / name))
    assert ds.PhotometricInterpretation == CHEST_RADIOGRAPHS[name]
    prepared = prepare_dataset(ds)
    model_input = prepared.model_input
    assert model_input.shape == (512, 512) and model_input.dtype == np.float32
    assert model_input.min() >= 0.0 and model_input.max() <= 1.0
    # histogram equalisation spreads values over the whole range (mean near 0.5)
    assert 0.4 < model_input.mean() < 0.6
    assert model_input[LUNG_BOX].mean() < 0.35
    assert model_input[MEDIASTINUM_BOX].mean() > 0.55
    assert prepared.mapping.source_shape == (ds.Rows, ds.Columns)
    assert max(display_copy(display_image_from_dataset(ds)).shape) <= 1024


def monochrome2_twin(ds: Dataset) -> Dataset:
    """The same image stored as MONOCHROME2: inverted values and the mirrored window
    (x' = M - x, c' = M - c + 1 gives exactly 1 - y for the linear window, PS3.3 C.11.2.1.2)."""
    twin = pydicom.dcmread(ds.filename)
    top = 2**twin.BitsStored - 1
    twin.PixelData = (top - twin.pixel_array).astype(np.uint16).tobytes()
    twin.PhotometricInterpretation = "MONOCHROME2"
    twin.WindowCenter = top - float(twin.WindowCenter) + 1
    return twin


def test_monochrome1_is_inverted_like_its_monochrome2_twin(fuji_cr):
    original = pydicom.dcmread(fuji_cr)
    twin = monochrome2_twin(original)
    display_1 = display_image_from_dataset(original)
    display_2 = display_image_from_dataset(twin)
    np.testing.assert_allclose(display_1, display_2, atol=1e-6)
    # and not merely equal: stored values of the two are inverted
    assert np.corrcoef(original.pixel_array.ravel(), twin.pixel_array.ravel())[0, 1] < -0.99
    input_1 = prepare_dataset(original).model_input
    assert input_1[LUNG_BOX].mean() < input_1[MEDIASTINUM_BOX].mean()


def test_signed_pixels_with_fewer_stored_bits_and_garbage_high_bits(fuji_cr):
    original = pydicom.dcmread(fuji_cr)
    signed = pydicom.dcmread(fuji_cr)
    values = original.pixel_array.astype(np.int32) - 512  # 10-bit values as signed 12-bit
    raw = (values & 0x0FFF) | 0xA000  # two's complement in 12 bits, garbage in bits 12-15
    signed.PixelData = raw.astype(np.uint16).tobytes()
    signed.BitsStored, signed.HighBit, signed.PixelRepresentation = 12, 11, 1
    signed.WindowCenter = float(original.WindowCenter) - 512
    np.testing.assert_array_equal(signed.pixel_array, values)
    np.testing.assert_allclose(
        display_image_from_dataset(signed), display_image_from_dataset(original), atol=1e-6
    )


def test_modality_lut_rescale_is_applied_before_the_window(fuji_cr):
    original = pydicom.dcmread(fuji_cr)
    rescaled = pydicom.dcmread(fuji_cr)
    rescaled.RescaleSlope, rescaled.RescaleIntercept = 2, -100
    # linear window maps c - 0.5 to the middle and spans w - 1 (PS3.3 C.11.2.1.2.1)
    rescaled.WindowCenter = (float(original.WindowCenter) - 0.5) * 2 - 100 + 0.5
    rescaled.WindowWidth = (float(original.WindowWidth) - 1) * 2 + 1
    np.testing.assert_allclose(
        display_image_from_dataset(rescaled), display_image_from_dataset(original), atol=1e-5
    )


def _image_dataset(rows: int, cols: int, **attributes) -> Dataset:
    ds = Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    for key, value in attributes.items():
        setattr(ds, key, value)
    samples = ds.SamplesPerPixel
    ds.PixelData = np.zeros((rows, cols, samples), dtype=np.uint8).tobytes()
    return ds


@pytest.mark.parametrize(
    "dataset, error",
    [
        (_image_dataset(256, 256, SamplesPerPixel=3, PhotometricInterpretation="RGB"), ColourImageError),
        (_image_dataset(256, 256, NumberOfFrames=2), MultiFrameError),
        (_image_dataset(64, 64), ImageTooSmallError),
    ],
    ids=["colour", "multi-frame", "tiny"],
)
def test_unsupported_images_raise_typed_errors(dataset, error):
    with pytest.raises(error):
        prepare_dataset(dataset)


def test_missing_pixel_data_raises_a_typed_error(fuji_cr):
    ds = pydicom.dcmread(fuji_cr)
    del ds.PixelData
    with pytest.raises(NoPixelDataError):
        prepare_dataset(ds)


def test_broken_codestream_raises_a_typed_error(fuji_cr, tmp_path):
    ds = pydicom.dcmread(transcode(fuji_cr, tmp_path / "j.dcm", ("dcmcjpeg", "+el")))
    fragments = pydicom.encaps.generate_fragments(ds.PixelData)
    first = next(fragments)
    broken = first[: len(first) // 3] + b"\x00" * 16
    ds.PixelData = pydicom.encaps.encapsulate([broken])
    with pytest.raises(PixelDecodeError):
        prepare_dataset(ds)


def test_mapping_sends_a_model_box_to_the_right_source_pixels():
    mapping = FrameMapping((1955, 1841), 512)
    assert mapping.box_to_source((128, 128, 256, 384)) == pytest.approx((488.75, 460.25, 977.5, 1380.75))
    np.testing.assert_allclose(mapping.to_model(mapping.to_source(np.array([[10.0, 20.0]]))), [[10, 20]])
    model_mask = np.zeros((512, 512), dtype=np.uint8)
    model_mask[128:256, 128:384] = 1
    rows, cols = np.nonzero(mapping.map_to_source(model_mask, labels=True))
    assert abs(rows.min() - 488.75) <= 2 and abs(rows.max() + 1 - 977.5) <= 2
    assert abs(cols.min() - 460.25) <= 2 and abs(cols.max() + 1 - 1380.75) <= 2


def test_a_dark_box_found_in_the_model_input_maps_back_to_where_it_was():
    rng = np.random.default_rng(0)
    source = rng.uniform(0.5, 1.0, size=(900, 700)).astype(np.float32)
    source[300:500, 140:420] = 0.0  # rows 300-500, cols 140-420
    prepared = prepare_display(source)
    # equalisation sends the lowest bin (the box) to exactly 0 and everything else above it
    rows, cols = np.nonzero(prepared.model_input == 0.0)
    box = (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
    y1, x1, y2, x2 = prepared.mapping.box_to_source(box)
    scale = max(prepared.mapping.scale)
    for found, expected in ((y1, 300), (x1, 140), (y2, 500), (x2, 420)):
        assert abs(found - expected) <= 2 * scale


def test_plain_image_files_are_read_as_greyscale(tmp_path):
    from PIL import Image

    rgb = np.zeros((300, 200, 3), dtype=np.uint8)
    rgb[:, 100:] = 200
    Image.fromarray(rgb).save(tmp_path / "x.png")
    prepared = prepare_file(tmp_path / "x.png")
    assert prepared.mapping.source_shape == (300, 200)
    assert prepared.model_input[:, :200].mean() < prepared.model_input[:, 312:].mean()


def test_dicom_files_are_accepted_by_the_file_reader(fuji_cr):
    np.testing.assert_array_equal(
        prepare_file(fuji_cr).model_input, prepare_dataset(pydicom.dcmread(fuji_cr)).model_input
    )


def _official(name: str) -> dict[str, np.ndarray]:
    with np.load(require_path(BSNET_REFERENCE / name)) as arrays:
        return dict(arrays)


@pytest.mark.parametrize("k", [0, 1, 2], ids=["jpeg", "png", "dicom"])
def test_the_authors_resize_and_equalisation_are_reproduced_bit_for_bit(k):
    cases = _official("preprocessing.npz")
    raw = cases[f"preprocess_raw_{k}"]
    display = raw / 255.0 if raw.dtype == np.uint8 else raw  # load_image: uint8 / 255 in float64
    resized, out = cases[f"preprocess_resized_{k}"][..., 0], cases[f"preprocess_out_{k}"][..., 0]
    np.testing.assert_array_equal(resize_bilinear(display, 512, 512), resized)  # cv2.resize
    np.testing.assert_array_equal(equalize(resized), out)
    model_input = model_input_from_display(display)
    assert model_input.dtype == np.float32
    np.testing.assert_array_equal(model_input, out.astype(np.float32))


@pytest.mark.parametrize("k", [0, 1], ids=["jpeg", "png"])
def test_image_files_give_the_reference_model_inputs(k):
    source = json.loads(require_path(BSNET_REFERENCE / "manifest.json").read_text())["sources"][k]
    prepared = prepare_file(require_path(SHARED_DATA / source))
    np.testing.assert_array_equal(prepared.model_input, _official("reference.npz")["input"][k, ..., 0])


def test_equalisation_without_a_step_keeps_levels_and_a_black_image_stays_black():
    two_levels = np.zeros((8, 8))
    two_levels[:, 4:] = 0.5  # 4095 * 0.5 -> level 2047; one used bin besides the last: step 0
    np.testing.assert_array_equal(equalize(two_levels), two_levels * 2.0)
    np.testing.assert_array_equal(equalize(np.zeros((8, 8))), np.zeros((8, 8)))
