"""Fixtures of the worker tests: the tasks' settings, and a real redis-server that the Celery app
sends to."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import pools

from dicom_node.config import NodeSettings
from tests.servers import redis_server
from worker.app import SETTINGS_KEY, app, configure

CONFIGURED = ("broker_url", "broker_transport_options")  # by worker.app.configure


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NodeSettings:
    """The tasks' runtime settings (a spool in tmp_path, an untrained network), as
    worker.app.configure hands them; a module may define its own."""
    settings = NodeSettings(spool=tmp_path / "spool", untrained=True)
    monkeypatch.setitem(app.conf, SETTINGS_KEY, settings)
    return settings


@pytest.fixture
def broker(settings: NodeSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A redis-server that the app sends to (worker.app.configure), with connection pools made for
    it; the app's configuration and pools as they were, after."""
    for key in CONFIGURED:
        monkeypatch.setitem(app.conf, key, app.conf[key])
    monkeypatch.setattr(app, "_pool", None)  # made on first use, for the broker of that time
    monkeypatch.setattr(app.amqp, "_producer_pool", None)
    with redis_server(tmp_path / "redis") as url:
        configure(settings, url)
        yield url
        pools.reset()  # close this broker's connections before it stops
