"""Messages between node and inference workers carry arrays, and survive JSON."""

import json

import numpy as np
import pydicom
import pytest

from inference import Predictor
from inference.preprocessing import prepare_dataset
from worker.serialization import decode_prepared, decode_result, encode_prepared, encode_result


def test_prepared_and_result_round_trip_through_json(fuji_cr):
    prepared = prepare_dataset(pydicom.dcmread(fuji_cr))
    message = json.loads(json.dumps(encode_prepared(prepared)))
    decoded = decode_prepared(message)
    np.testing.assert_array_equal(decoded.model_input, prepared.model_input)
    assert decoded.model_input.dtype == prepared.model_input.dtype
    assert decoded.mapping == prepared.mapping
    result = Predictor(allow_untrained=True, device="cpu").predict(decoded)
    back = decode_result(json.loads(json.dumps(encode_result(result))))
    assert back.region_scores == result.region_scores and back.global_score == result.global_score
    assert back.probabilities == result.probabilities
    np.testing.assert_array_equal(back.lung_mask, result.lung_mask)
    np.testing.assert_array_equal(back.region_map, result.region_map)
    np.testing.assert_allclose(back.explainability, result.explainability, atol=1 / 255)
    assert (back.weights_sha256, back.untrained, back.mapping) == (result.weights_sha256, True, result.mapping)


def test_a_model_input_that_is_not_8_bit_codes_is_refused(fuji_cr):
    prepared = prepare_dataset(pydicom.dcmread(fuji_cr))
    prepared.model_input[0, 0] += 0.001
    with pytest.raises(ValueError, match="8-bit"):
        encode_prepared(prepared)
