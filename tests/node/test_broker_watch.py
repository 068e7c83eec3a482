"""The watch on a shared Redis broker reads its URL as Celery and kombu do (dicom_node.broker_watch)."""

import logging

from dicom_node.broker_watch import BrokerWatch
from dicom_node.tcp import free_loopback_port


def test_a_tls_url_in_kombus_spelling_is_watched_not_given_up(caplog):
    """Celery and kombu take ``ssl_cert_reqs=CERT_REQUIRED`` in a rediss:// URL, redis-py only
    ``required``: read with redis-py's spelling alone, such a broker would never be watched for
    restarts. Nothing listens here, so the look finds the broker down (and looks again later)."""
    url = f"rediss://:secret@127.0.0.1:{free_loopback_port()}/0?ssl_cert_reqs=CERT_REQUIRED"
    watch = BrokerWatch(url, on_restart=lambda: None, interval=0.5)
    with caplog.at_level(logging.WARNING, logger="dicom_node.broker_watch"):
        assert watch._run_id() is None
    assert "cannot watch" not in caplog.text
