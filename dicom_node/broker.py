"""The embedded default broker: start a local redis-server (append-only file in the spool)
when the configured broker is local and not running (issue 3, "Queue and work")."""

import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
START_TIMEOUT_S = 20.0


class BrokerError(RuntimeError):
    """The broker cannot be reached or started; the message says what to do."""


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def ensure_local_redis(broker_url: str, spool: Path) -> subprocess.Popen | None:
    """Start redis-server for a local ``redis://`` broker that is not listening yet.

    Returns the child process to stop at exit, or None when nothing had to be started.
    """
    url = urlparse(broker_url)
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    if url.scheme != "redis" or host not in LOCAL_HOSTS or _listening(host, port):
        return None
    program = shutil.which("redis-server")
    if program is None:
        raise BrokerError(
            f"no broker at {host}:{port} and redis-server is not installed: install it "
            "(sudo apt-get install redis-server, or bash deploy/install.sh) or give "
            "--broker-url for a running Redis"
        )
    folder = Path(spool) / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        program, "--bind", host, "--port", str(port), "--dir", str(folder.resolve()),
        "--appendonly", "yes", "--save", "", "--daemonize", "no",
        "--logfile", str((folder / "redis.log").resolve()),
    ]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _listening(host, port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise BrokerError(f"redis-server did not start on {host}:{port}; see {folder / 'redis.log'}")
        time.sleep(0.1)
    log.info("started redis-server on %s:%d (data in %s)", host, port, folder)
    return process
