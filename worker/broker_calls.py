"""A task's calls to the broker (queueing the next step of an image's chain, storing or reading
model inputs) repeated until the broker answers them.

Before, a task whose call the broker refused while Redis stayed up (over its memory limit, an ACL
changed, a replica made read-only, a network fault longer than kombu's own retries) failed, was
acknowledged and so ended its chain: the receipt stayed ``queued`` until the node restarted, and
held one of its ``max_in_flight`` places all that time. Now the task waits and tries again, its
own message unacknowledged meanwhile (late acknowledgement), so that a worker stopped while it
waits loses nothing either: Redis delivers that message again after ``visibility_timeout``."""

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from kombu.exceptions import KombuError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
BROKER_ERRORS = (KombuError, RedisError, OSError)
RETRY_DELAYS_S = (1, 2, 5, 10, 30)  # then every 30 s, as long as the broker refuses
T = TypeVar("T")


def until_the_broker_answers(what: str, call: Callable[[], T]) -> T:
    """``call()`` (a call to the broker, repeatable), repeated until the broker answers it; ``what``
    names it in the log, never a patient."""
    attempt = 0
    while True:
        try:
            return call()
        except BROKER_ERRORS as error:
            delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
            log.warning(
                "%s: the broker refused (%s: %s); trying again in %d s", what, type(error).__name__, error, delay
            )
            time.sleep(delay)
            attempt += 1
