"""Tasks stop loudly for receipts this node never received, quietly for superseded chains, and
end a receipt whose file cannot be read as failed with the stage and cause (issue 11)."""

import logging

import pytest
from celery.exceptions import Ignore

from dicom_node.config import NodeSettings
from dicom_node.journal import Journal, State
from dicom_node.spool import Spool
from worker import runtime
from worker.app import SETTINGS_KEY, app
from worker.tasks import prepare


@pytest.fixture
def spool(tmp_path, monkeypatch):
    settings = NodeSettings(spool=tmp_path / "spool", untrained=True)
    monkeypatch.setitem(app.conf, SETTINGS_KEY, settings)  # as worker.app.configure hands them
    journal = Journal(settings.journal_path)
    yield Spool(settings.spool, journal)
    journal.close()


def test_a_task_for_a_receipt_this_node_never_received_is_reported_loudly(spool, caplog):
    with caplog.at_level(logging.ERROR, logger="worker.tasks"), pytest.raises(Ignore):
        prepare.run("not-ours", "token")
    assert "is not in this node's journal" in caplog.text and "shared with another node" in caplog.text


def test_a_superseded_chain_stops_without_work(spool):
    receipt = spool.store(b"not even DICOM", "MODALITY", "NODE", "1.2.840.10008.5.1.4.1.1.1", "1.2.3", None)
    current = spool.journal.issue_token(receipt)
    with pytest.raises(Ignore):
        prepare.run(receipt, "an older token")
    assert spool.journal.get(receipt).state == State.RECEIVED  # untouched
    with pytest.raises(Ignore):
        prepare.run(receipt, current)  # the current chain reads the file, which is no DICOM
    failed = runtime.journal().get(receipt)
    assert failed.state == State.FAILED and failed.reason.startswith("prepare: InvalidDicomError")
