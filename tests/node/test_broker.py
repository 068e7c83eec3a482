"""The embedded broker: a local redis-server started on demand, with a clear error without it."""

import redis

from dicom_node.broker import BrokerError, ensure_local_redis
from tests.conftest import require_tool
from tests.servers import free_port


def test_starts_redis_with_append_only_file_in_the_spool(tmp_path):
    require_tool("redis-server")
    url = f"redis://127.0.0.1:{free_port()}/0"
    process = ensure_local_redis(url, tmp_path)
    try:
        assert process is not None
        client = redis.Redis.from_url(url)
        client.set("probe", "1")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert (tmp_path / "redis").is_dir()
        assert ensure_local_redis(url, tmp_path) is None  # already running: nothing started
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_remote_broker_is_left_alone(tmp_path):
    assert ensure_local_redis("redis://broker.example:6379/0", tmp_path) is None


def test_missing_redis_server_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    try:
        ensure_local_redis(f"redis://127.0.0.1:{free_port()}/0", tmp_path)
    except BrokerError as error:
        assert "apt-get install redis-server" in str(error)
    else:
        raise AssertionError("expected BrokerError")
