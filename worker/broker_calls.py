"""A task's calls to the broker (queueing the next step of an image's chain, storing or reading
model inputs) repeated until the broker answers them.

Before, a task whose call the broker refused while Redis stayed up (over its memory limit, an ACL
changed, a replica made read-only, a network fault longer than kombu's own retries) failed, was
acknowledged and so ended its chain: the receipt stayed ``queued`` until the node restarted, and
held one of its ``max_in_flight`` places all that time. Now the task waits and tries again, its
own message unacknowledged meanwhile (late acknowledgement), so that a worker stopped while it
waits loses nothing either: Redis delivers that message again after ``visibility_timeout``.
Only what a broker can recover from is waited out (:data:`TRANSIENT`); an error of the call itself
(a message that cannot be encoded, a wrong type) is raised at once, never retried without end."""

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from kombu.exceptions import BatchPublishError, OperationalError
from redis import exceptions as redis_errors

log = logging.getLogger(__name__)
# kombu's connection errors (after its own retries), Redis unreachable, loading, over its memory
# limit, read-only, refusing a key by ACL, or asking to try again; sockets
TRANSIENT = (
    OperationalError, redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.OutOfMemoryError,
    redis_errors.ReadOnlyError, redis_errors.NoPermissionError, redis_errors.TryAgainError, OSError,
)
RETRY_DELAYS_S = (1, 2, 5, 10, 30)  # then every 30 s, as long as the broker refuses
T = TypeVar("T")


def until_the_broker_answers(what: str, call: Callable[[], T]) -> T:
    """``call()`` (a call to the broker, repeatable), repeated until the broker answers it; ``what``
    names it in the log, never a patient."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as error:
            if not is_transient(error):
                raise
            delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
            log.warning(
                "%s: the broker refused (%s: %s); trying again in %d s", what, type(error).__name__, error, delay
            )
            time.sleep(delay)
            attempt += 1


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is the broker's, worth waiting out (:data:`TRANSIENT`); a kombu publish
    batch that failed is judged by its cause."""
    if isinstance(error, BatchPublishError) and error.__cause__ is not None:
        error = error.__cause__
    return isinstance(error, TRANSIENT)
