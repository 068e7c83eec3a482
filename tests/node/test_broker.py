"""The embedded broker: private to its spool, nothing on disk, supervised, never orphaned."""

import contextlib
import os
import signal
import socket
import threading
from pathlib import Path

import pytest
import redis

from dicom_node.broker import BrokerError, EmbeddedBroker, spool_broker_url
from tests.conftest import require_tool
from tests.servers import wait_until


@pytest.fixture
def broker(tmp_path):
    require_tool("redis-server")
    restarted = threading.Event()
    embedded = EmbeddedBroker(tmp_path / "spool", on_restart=restarted.set)
    embedded.start()
    embedded.restarted = restarted
    yield embedded
    embedded.stop()


def test_a_private_broker_keeps_nothing_on_disk_and_tells_the_spool(broker, tmp_path):
    client = redis.Redis.from_url(broker.url)
    client.set("probe", "1")
    assert client.config_get("appendonly") == {"appendonly": "no"}
    assert client.config_get("save") == {"save": ""}
    assert spool_broker_url(tmp_path / "spool") == broker.url
    other = EmbeddedBroker(tmp_path / "other-spool")
    try:
        assert other.start() != broker.url  # two nodes on one host never share a broker
    finally:
        other.stop()
    assert spool_broker_url(tmp_path / "other-spool") is None


def test_only_those_who_can_read_the_spool_can_use_the_broker(broker, tmp_path):
    """Whoever reaches the broker can forge results (a Scored message for a pending receipt): the
    port is open to every local user, so the broker wants a password, which only the spool's
    owner can read (broker.url, mode 0600) and which no command line shows."""
    password = redis.Redis.from_url(broker.url).connection_pool.connection_kwargs.get("password")
    assert password
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=broker.port).ping()
    assert redis.Redis.from_url(spool_broker_url(tmp_path / "spool")).ping()
    assert (broker.folder / "broker.url").stat().st_mode & 0o077 == 0
    assert password not in (Path("/proc") / str(broker.pid) / "cmdline").read_text()


def test_a_broker_that_dies_is_started_again_on_its_port(broker):
    first, url = broker.pid, broker.url
    os.kill(first, signal.SIGKILL)
    assert broker.restarted.wait(30)
    assert broker.pid != first and broker.url == url
    assert redis.Redis.from_url(url).ping()


def test_a_restart_whose_requeue_fails_is_a_broker_failure_not_silence(tmp_path):
    """The node re-queues the journal after a broker restart; should that fail (the journal
    unreadable), the node must hear of it and stop, not go on accepting images with no broker."""
    require_tool("redis-server")
    failed = threading.Event()

    def requeue_fails() -> None:
        raise OSError("the journal cannot be read")

    embedded = EmbeddedBroker(tmp_path / "spool", on_restart=requeue_fails, on_failure=failed.set)
    embedded.start()
    try:
        os.kill(embedded.pid, signal.SIGKILL)
        assert failed.wait(30)
        assert embedded.failed
    finally:
        embedded.stop()


def test_an_orphan_of_a_killed_node_is_stopped_by_the_next_node(tmp_path):
    require_tool("redis-server")
    spool = tmp_path / "spool"
    crashed = EmbeddedBroker(spool)
    crashed.start()
    orphan = crashed.pid
    crashed._stopping.set()  # the node is gone without stopping its broker: it stays behind
    successor = EmbeddedBroker(spool)
    try:
        successor.start()
        wait_until(lambda: not os.path.exists(f"/proc/{orphan}") or _zombie(orphan), 10, "the orphan to stop")
    finally:
        successor.stop()
    assert spool_broker_url(spool) is None


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] == "Z"
    except OSError:
        return True


def test_missing_redis_server_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match="apt-get install redis-server"):
        EmbeddedBroker(tmp_path / "spool").start()


def test_a_port_another_process_listens_on_first_is_never_taken_for_the_broker(tmp_path, monkeypatch):
    """Between choosing a free port and redis-server listening on it, a local user may listen on it
    first. That listener must not pass for the broker: the node would hand it the password and
    every task. The start fails instead, and nothing is sent to the listener."""
    require_tool("redis-server")
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    monkeypatch.setattr("dicom_node.broker.free_loopback_port", lambda: squatter.getsockname()[1])
    embedded = EmbeddedBroker(tmp_path / "spool")
    try:
        with pytest.raises(BrokerError, match="did not start"):
            embedded.start()
    finally:
        embedded.stop()
    squatter.settimeout(0.5)
    received = b""
    with contextlib.suppress(TimeoutError):
        while True:
            connection, _ = squatter.accept()
            connection.settimeout(0.5)
            with connection, contextlib.suppress(TimeoutError):
                received += connection.recv(4096)
    squatter.close()
    assert embedded.password.encode() not in received
    assert not (tmp_path / "spool" / "redis" / "broker.url").exists()
