"""The delivery retry schedule: exponential, capped, and long enough for a PACS restart."""

from dicom_node.config import NodeSettings
from dicom_node.retry_schedule import gives_up, retry_delay, waited


def test_delays_double_up_to_the_cap():
    assert [retry_delay(n, 300) for n in range(1, 11)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert waited(1, 300) == 0 and waited(4, 300) == 2 + 4 + 8


def test_the_default_schedule_outlives_a_thirty_minute_outage():
    settings = NodeSettings()
    cap, limit = settings.delivery_max_backoff, settings.delivery_give_up_after
    assert cap <= 300  # results arrive at most five minutes after the PACS is back
    attempts = 1
    while waited(attempts, cap) < 30 * 60:  # still trying after 30 minutes of failures
        assert not gives_up(attempts, limit, cap)
        attempts += 1
    assert not gives_up(attempts, limit, cap)
    assert gives_up(10_000, limit, cap)  # but not for ever


def test_small_limits_give_the_attempt_counts_operators_expect():
    assert not gives_up(2, 5, 300) and gives_up(3, 5, 300)  # waits 2 + 4 >= 5: three attempts
    assert not gives_up(1, 1, 300) and gives_up(2, 1, 300)
