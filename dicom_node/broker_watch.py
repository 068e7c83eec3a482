"""Noticing that a shared Redis broker restarted (the production split's ``broker_url``).

A Redis that restarts keeps only what its persistence saved: none of its queued tasks without
it, all but the last second with an append-only file every second. The journal still holds every
receipt not yet delivered, so the node re-queues them, as it does when its embedded broker is
started again (:mod:`dicom_node.broker`). A restart shows as a new ``run_id`` (Redis ``INFO
server``), read every :data:`WATCH_INTERVAL_S` seconds; re-queued receipts get new chain tokens,
so tasks that survived the restart stop as superseded instead of running twice. A broker that
refuses ``INFO`` (an ACL user without it) is not watched, and the log says so once. Other brokers
are not watched.
"""

import logging
import threading
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

log = logging.getLogger(__name__)
WATCH_INTERVAL_S = 5.0
REDIS_SCHEMES = ("redis", "rediss")
# ssl_cert_reqs as Celery and kombu also take it in a rediss:// URL, and as redis-py takes it
CERT_REQS_FOR_REDIS_PY = {"CERT_NONE": "none", "CERT_OPTIONAL": "optional", "CERT_REQUIRED": "required"}


def _redis_py_url(url: str) -> str:
    """``url`` with its ``ssl_cert_reqs`` spelled as redis-py reads it (``CERT_REQUIRED`` ->
    ``required``), so that the watch reaches the broker the way Celery does."""
    parts = urlsplit(url)
    query = [
        (name, CERT_REQS_FOR_REDIS_PY.get(value, value) if name == "ssl_cert_reqs" else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


class BrokerWatch:
    """Calls ``on_restart`` each time the Redis at ``url`` comes back with a new ``run_id``."""

    def __init__(self, url: str, on_restart: Callable[[], object], interval: float = WATCH_INTERVAL_S) -> None:
        self._url = url
        self._where = f"{urlsplit(url).hostname}:{urlsplit(url).port}"  # never the password
        self.on_restart, self.interval = on_restart, interval
        self._client: redis.Redis | None = None
        self._warned = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="broker-watch", daemon=True)

    @staticmethod
    def applies_to(url: str) -> bool:
        return urlsplit(url).scheme in REDIS_SCHEMES

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=2 * self.interval)

    def _run_id(self) -> str | None:
        try:
            if self._client is None:
                self._client = redis.Redis.from_url(
                    _redis_py_url(self._url), socket_timeout=self.interval, socket_connect_timeout=self.interval
                )
            return str(self._client.info("server")["run_id"])
        except (redis.ConnectionError, redis.TimeoutError):
            return None  # down or restarting: the next look tells
        except (redis.RedisError, ValueError, KeyError) as error:  # refused INFO, a URL redis-py reads otherwise
            if not self._warned:
                password = urlsplit(self._url).password
                reason = str(error).replace(password, "***") if password else str(error)
                log.warning("cannot watch the broker at %s for restarts (%s): a restart that empties it "
                            "strands what it held until the node restarts", self._where, reason)
                self._warned = True
            return None

    def _watch(self) -> None:
        known = self._run_id()
        while not self._stopped.wait(self.interval):
            current = self._run_id()
            if current is None or current == known:
                continue
            if known is not None:
                log.warning("the broker at %s restarted: re-queueing every receipt not yet delivered", self._where)
                try:
                    self.on_restart()
                except Exception:  # the journal failed; the next restart, or the node's, re-queues
                    log.exception("re-queueing after the broker's restart failed")
                    continue
            known = current
