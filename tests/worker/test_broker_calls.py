"""Which broker errors a task waits out (worker/broker_calls.py): what the broker can recover from
is retried; an error of the call itself is raised at once, so that one bad message never holds a
worker in a retry loop without end."""

import pytest
from kombu.exceptions import BatchPublishError, EncodeError, OperationalError
from redis import exceptions as redis_errors

from worker.broker_calls import is_transient, until_the_broker_answers


def failed_batch(cause: Exception) -> BatchPublishError:
    try:
        raise BatchPublishError("Redis publish batch failed; delivery is uncertain") from cause
    except BatchPublishError as error:
        return error


@pytest.mark.parametrize("error", [
    OperationalError("connection lost"), redis_errors.ConnectionError("refused"), redis_errors.BusyLoadingError(),
    redis_errors.OutOfMemoryError("OOM"), redis_errors.ReadOnlyError("READONLY"), redis_errors.NoPermissionError(),
    ConnectionResetError(), failed_batch(redis_errors.OutOfMemoryError("OOM")),
])
def test_what_the_broker_can_recover_from_is_waited_out(error):
    assert is_transient(error)


@pytest.mark.parametrize("error", [
    EncodeError("not JSON"), redis_errors.DataError("bad argument"), redis_errors.ResponseError("WRONGTYPE"),
    failed_batch(redis_errors.ResponseError("WRONGTYPE")), TypeError("a bug"),
])
def test_an_error_of_the_call_itself_is_not(error):
    assert not is_transient(error)


def test_a_call_is_repeated_until_answered_and_an_error_of_its_own_raised_at_once():
    answers = iter([redis_errors.ConnectionError("refused"), "answered"])

    def call() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert until_the_broker_answers("test", call) == "answered"
    calls = []

    def encode() -> None:
        calls.append(1)
        raise EncodeError("not JSON")

    with pytest.raises(EncodeError):
        until_the_broker_answers("test", encode)
    assert calls == [1]
