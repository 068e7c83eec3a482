"""A task's writes to the broker (queueing the next step of an image's chain, its model input)
done until the broker takes them.

Before, a task whose write was refused while Redis stayed up (over its memory limit, an ACL
changed, a replica made read-only, a network fault longer than kombu's own retries) failed, was
acknowledged and so ended its chain: the receipt stayed ``queued`` until the node restarted, and
held one of its ``max_in_flight`` places all that time. Now the task waits and tries again, its
own message unacknowledged meanwhile (late acknowledgement), so that a worker stopped while it
waits loses nothing either: Redis delivers that message again after ``visibility_timeout``."""

import itertools
import logging
import time
from collections.abc import Callable

from kombu.exceptions import KombuError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
BROKER_ERRORS = (KombuError, RedisError, OSError)
RETRY_DELAYS_S = (1, 2, 5, 10, 30)  # then every 30 s, as long as the broker refuses


def until_queued(what: str, write: Callable[[], None]) -> None:
    """Run ``write`` (a write to the broker, repeatable) until the broker takes it; ``what`` names
    it in the log, never a patient."""
    for attempt in itertools.count():
        try:
            write()
            return
        except BROKER_ERRORS as error:
            delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
            log.warning(
                "%s could not be queued (%s: %s); trying again in %d s", what, type(error).__name__, error, delay
            )
            time.sleep(delay)
