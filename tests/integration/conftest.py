"""Integration fixtures: every server is real and started here on free loopback ports."""

import pytest

from tests.servers import free_port, redis_server


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def broker_url(tmp_path):
    with redis_server(tmp_path / "redis") as url:
        yield url


@pytest.fixture
def node_port() -> int:
    return free_port()
