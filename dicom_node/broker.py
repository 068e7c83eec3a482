"""The embedded default broker (issue 11): a private redis-server for one spool, supervised.

Without ``broker_url`` the node starts its own redis-server on a free loopback port, so two nodes
on one host never share queues by accident. It wants a password (random, made at each start,
given to redis-server on its standard input, never on a command line): its port is open to every
local user, and whoever can use the broker can forge results. It counts as started only once the
redis-server it started holds the listening socket itself: a local user listening on the port
first would otherwise be handed the password and every task. It keeps nothing on disk (no RDB,
no append-only file): the journal is the source of truth and re-queues whatever is pending, so a
full spool disk cannot stop the broker. Its URL, password included, is written to
``spool/redis/broker.url`` (readable by the spool's owner only) for the processes that share the
spool (``dicom-node worker --queues node``, ``dicom-node retry``). It is supervised: if it dies
it is started again on the same port and ``on_restart`` re-queues the pending receipts; after
``MAX_RESTARTS`` failed restarts in a row the broker is given up (``failed``) and ``on_failure``
is called. It dies with the node (Linux parent-death signal), and an orphan left by a node that
was killed is stopped when the next node starts on the same spool.
"""

import contextlib
import ctypes
import logging
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dicom_node.tcp import LOOPBACK, free_loopback_port, listening, process_listens

log = logging.getLogger(__name__)
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
MAX_RESTARTS = 5
PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    """The broker cannot be reached or started; the message says what to do."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _is_redis(pid: int) -> bool:
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _stop_pid(pid: int) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            if not _is_redis(pid):
                return
            time.sleep(0.05)


def _running_pid(folder: Path) -> int | None:
    """The pid recorded in ``folder/redis.pid`` if that process is a redis-server, else None."""
    try:
        pid = int((folder / "redis.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if _is_redis(pid) else None


def spool_broker_url(spool: Path) -> str | None:
    """The URL of the embedded broker of the node running on ``spool``, if it is running."""
    folder = Path(spool) / "redis"
    if _running_pid(folder) is None:
        return None
    try:
        return (folder / "broker.url").read_text().strip()
    except OSError:
        return None


class EmbeddedBroker:
    """A supervised, private redis-server for the node on ``spool`` (see the module docstring)."""

    def __init__(
        self,
        spool: Path,
        on_restart: Callable[[], None] = lambda: None,
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        self.folder = Path(spool).resolve() / "redis"
        self.on_restart, self.on_failure = on_restart, on_failure
        self.port = 0
        self.password = secrets.token_urlsafe(32)
        self.failed = False
        self._process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="broker-supervisor", daemon=True)

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{LOOPBACK}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> str:
        """Stop an orphan of an earlier node, start redis-server, start supervising; returns the URL."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._stop_orphan()
        self.port = free_loopback_port()
        self._launch()
        url_file = os.open(self.folder / "broker.url", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(url_file, "w") as stream:
            os.fchmod(stream.fileno(), 0o600)  # an older node's file may have been readable by all
            stream.write(self.url + "\n")
        self._supervisor.start()
        log.info(
            "embedded broker on %s:%d (private to %s, password in %s, nothing kept on disk)",
            LOOPBACK, self.port, self.folder.parent, self.folder / "broker.url",
        )
        return self.url

    def stop(self) -> None:
        """Stop supervising and stop redis-server (bounded: SIGTERM, then SIGKILL)."""
        self._stopping.set()
        if self._process is not None:
            _stop_pid(self._process.pid)
            self._process.wait(timeout=STOP_TIMEOUT_S)
        for name in ("redis.pid", "broker.url"):
            with contextlib.suppress(OSError):
                (self.folder / name).unlink(missing_ok=True)

    def _stop_orphan(self) -> None:
        pid = _running_pid(self.folder)
        if pid is not None:
            log.warning("stopping redis-server %d left by a node that did not stop cleanly", pid)
            _stop_pid(pid)

    def _launch(self) -> None:
        program = shutil.which("redis-server")
        if program is None:
            raise BrokerError(
                "redis-server is not installed: install it (sudo apt-get install redis-server, or "
                "bash deploy/install.sh) or give --broker-url for a running Redis"
            )
        command = [  # "-": the rest of the configuration (the password) comes on standard input
            program, "-", "--bind", LOOPBACK, "--port", str(self.port), "--dir", str(self.folder),
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
        ]
        try:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, preexec_fn=_die_with_parent)
            with process.stdin:  # redis-server reads its standard input to the end, then serves
                process.stdin.write(f"requirepass {self.password}\n".encode())
        except OSError as error:
            raise BrokerError(f"cannot run redis-server: {error}") from error
        deadline = time.monotonic() + START_TIMEOUT_S
        while not process_listens(process.pid, self.port):  # not just anyone listening there
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                taken = " (another process listens there)" if listening(self.port) else ""
                raise BrokerError(f"redis-server did not start on {LOOPBACK}:{self.port}{taken}")
            time.sleep(0.05)
        self._process = process
        try:
            (self.folder / "redis.pid").write_text(f"{process.pid}\n")
        except OSError as error:
            _stop_pid(process.pid)
            process.wait()
            raise BrokerError(f"cannot record the broker in {self.folder}: {error}") from error

    def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            code = self._process.wait()
            if self._stopping.is_set():
                return
            log.error("embedded broker (redis-server) exited with status %s: starting it again", code)
            try:
                self._launch()
            except BrokerError as error:
                failures += 1
                log.error("restarting the embedded broker failed (%d/%d): %s", failures, MAX_RESTARTS, error)
                if failures >= MAX_RESTARTS:
                    self.failed = True
                    self.on_failure()
                    return
                time.sleep(min(2**failures, 30))
                continue
            failures = 0
            try:
                self.on_restart()
            except Exception:  # the journal's re-queue failed: a broker with nothing queued is no broker
                log.exception("re-queueing the journal after the broker's restart failed: stopping the node")
                self.failed = True
                self.on_failure()
                return
