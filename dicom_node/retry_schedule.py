"""When to try a delivery again and when to give up (issue 11, "Delivery outlives outages").

After the n-th failed attempt the next one waits min(2^n, max_backoff) seconds: 2, 4, 8 ... then
every ``max_backoff`` seconds. A receipt is given up (``failed``) once the waits scheduled so far
add up to ``give_up_after`` seconds. Attempts are counted in the journal, so the schedule carries
on across node restarts. The defaults (300 s, 6 hours) carry results across a PACS outage of
hours with at most five minutes' delay once it is back.
"""

DEFAULT_MAX_BACKOFF_S = 300
DEFAULT_GIVE_UP_AFTER_S = 6 * 3600


def retry_delay(failed_attempts: int, max_backoff: int) -> int:
    """Seconds to wait after ``failed_attempts`` (>= 1) failed attempts."""
    return min(2 ** min(failed_attempts, 30), max_backoff)


def waited(failed_attempts: int, max_backoff: int) -> int:
    """Seconds of waiting scheduled before the attempt that made ``failed_attempts`` failures."""
    return sum(retry_delay(n, max_backoff) for n in range(1, failed_attempts))


def gives_up(failed_attempts: int, give_up_after: int, max_backoff: int) -> bool:
    """True when no further attempt is to be made after ``failed_attempts`` failures."""
    return waited(failed_attempts, max_backoff) >= give_up_after
