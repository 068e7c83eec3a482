"""The typed messages between a chain's tasks survive Celery's JSON and refuse the wrong kind."""

import json

import pytest

from worker.messages import InferenceFailed, Prepared, Scored, inference_outcome


def test_messages_round_trip_through_json():
    prepared = Prepared("r1", "t1", {"model_input_codes": {"data": "x"}}, 0.25)
    assert Prepared.from_json(json.loads(json.dumps(prepared.to_json()))) == prepared
    scored = Scored("r1", "t1", {"global_score": 3}, 1.5)
    failed = InferenceFailed("r1", "t1", "infer: RuntimeError: out of memory")
    assert inference_outcome(json.loads(json.dumps(scored.to_json()))) == scored
    assert inference_outcome(json.loads(json.dumps(failed.to_json()))) == failed


def test_a_message_of_another_kind_is_refused():
    with pytest.raises(ValueError, match="expected a 'prepared' message"):
        Prepared.from_json(Scored("r1", "t1", {}, 0.0).to_json())
    with pytest.raises(ValueError, match="not an inference outcome"):
        inference_outcome(Prepared("r1", "t1", {}, 0.0).to_json())
    with pytest.raises(ValueError, match="not an inference outcome"):
        inference_outcome({"receipt_id": "r1", "error": "the old untyped form"})
