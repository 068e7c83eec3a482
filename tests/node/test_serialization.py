"""Messages between node and inference workers carry arrays, and survive JSON."""

import base64
import json
import zlib

import numpy as np
import pydicom
import pytest

from inference import Predictor
from inference.authors_input import EQUALISATION_BINS
from inference.geometry import FrameMapping
from inference.preprocessing import PreparedImage, prepare_dataset
from worker.serialization import decode_array, decode_prepared, decode_result, encode_prepared, encode_result


def test_prepared_and_result_round_trip_through_json(fuji_cr):
    prepared = prepare_dataset(pydicom.dcmread(fuji_cr))
    header, codes = encode_prepared(prepared)
    decoded = decode_prepared(json.loads(json.dumps(header)), codes)
    np.testing.assert_array_equal(decoded.model_input, prepared.model_input)
    assert decoded.model_input.dtype == prepared.model_input.dtype
    assert decoded.mapping == prepared.mapping
    result = Predictor(allow_untrained=True, device="cpu").predict(decoded)
    back = decode_result(json.loads(json.dumps(encode_result(result))))
    assert back.region_scores == result.region_scores and back.global_score == result.global_score
    assert back.probabilities == result.probabilities
    np.testing.assert_array_equal(back.lung_mask, result.lung_mask)
    np.testing.assert_array_equal(back.region_map, result.region_map)
    np.testing.assert_array_equal(back.explainability, result.explainability)
    assert (back.model.weights_sha256, back.model.untrained, back.mapping) == (
        result.model.weights_sha256, True, result.mapping
    )


def _arrays(message: object) -> list[dict]:
    """Every encoded array (a dict with "dtype" and "shape") inside ``message``."""
    if isinstance(message, dict):
        found = [message] if {"dtype", "shape", "data"} <= set(message) else []
        return found + [array for value in message.values() for array in _arrays(value)]
    return []


def test_a_scored_message_carries_what_the_maps_are_made_of_not_the_maps(fuji_cr):
    """The region map and the six explainability maps are S x S each; the result travels as the
    lung mask (one bit a pixel), the alignment and the region heads' contributions, from which the
    node draws the maps: a GPU worker neither copies nor encodes full-size maps."""
    result = Predictor(allow_untrained=True, device="cpu").predict(prepare_dataset(pydicom.dcmread(fuji_cr)))
    size = result.lung_mask.shape[0]
    arrays = _arrays(json.loads(json.dumps(encode_result(result))))
    assert arrays and all(np.prod(array["shape"]) <= size * size // 8 for array in arrays), [
        array["shape"] for array in arrays
    ]


def test_the_model_input_travels_as_exact_equalisation_codes(fuji_cr):
    prepared = prepare_dataset(pydicom.dcmread(fuji_cr))
    header, codes = encode_prepared(prepared)
    assert header["model_input_codes"]["dtype"] == "<u2"
    assert 1 <= header["model_input_divisor"] <= EQUALISATION_BINS
    decoded = decode_prepared(json.loads(json.dumps(header)), codes).model_input
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded.view(np.uint32), prepared.model_input.view(np.uint32))


def test_the_model_input_codes_travel_uncompressed(fuji_cr):
    """zlib gains about 30 % on equalised codes and costs 18 ms to compress and 3 ms to inflate per
    image (docs/benchmarks.md): the codes travel as they are; the lung mask's bits, mostly runs,
    stay compressed."""
    prepared = prepare_dataset(pydicom.dcmread(fuji_cr))
    _, codes = encode_prepared(prepared)
    assert len(codes) == 2 * prepared.model_input.size
    result = Predictor(allow_untrained=True, device="cpu").predict(prepared)
    assert encode_result(result)["lung_mask"]["bits"]["compression"] == "zlib"


def test_a_result_queued_by_an_older_build_is_refused_with_what_to_do():
    """Before the maps were drawn where they are used, a result carried them instead of the alignment."""
    older = {"region_scores": {}, "lung_mask": {}, "region_map": {}, "explainability": {}}
    with pytest.raises(ValueError, match=r"older dicom-node.*dicom-node retry --failed"):
        decode_result(older)


def test_an_array_queued_by_an_older_node_decodes():
    """Messages queued before an upgrade carry zlib-compressed arrays with no "compression" key."""
    array = np.arange(12, dtype=np.uint16).reshape(3, 4)
    older = {"dtype": "<u2", "shape": [3, 4], "data": base64.b64encode(zlib.compress(array.tobytes(), 3)).decode()}
    np.testing.assert_array_equal(decode_array(older), array)


def test_a_black_model_input_travels_too():
    black = PreparedImage(np.zeros((512, 512), dtype=np.float32), FrameMapping((600, 500), 512))
    header, codes = encode_prepared(black)
    decoded = decode_prepared(json.loads(json.dumps(header)), codes)
    np.testing.assert_array_equal(decoded.model_input, black.model_input)


@pytest.mark.parametrize(
    "spoil",
    [lambda v: np.nextafter(v, np.float32(2)), lambda v: np.float32(1.5), lambda v: np.float32(np.nan)],
    ids=["one-float32-step", "out-of-range", "nan"],
)
def test_a_model_input_that_is_not_equalisation_codes_is_refused(fuji_cr, spoil):
    prepared = prepare_dataset(pydicom.dcmread(fuji_cr))
    prepared.model_input[100, 100] = spoil(prepared.model_input[100, 100])
    with pytest.raises(ValueError, match="equalisation codes"):
        encode_prepared(prepared)


def test_a_float64_model_input_is_refused():
    prepared = PreparedImage(np.zeros((512, 512)), FrameMapping((600, 500), 512))
    with pytest.raises(ValueError, match="equalisation codes"):
        encode_prepared(prepared)
