"""While the inference worker scores a batch, the images that arrive wait and go to the device as
the next batch, instead of each being queued as a batch of its own (issue 13; worker.batching).

The worker scores on one thread beside its consumer, which keeps taking messages. One image is
queued and the worker starts scoring it; three more arrive one by one, each after the batch wait
has passed, while that first image is still being scored. They must be scored as one batch of 3."""

import re
import time

import pydicom

from inference.preprocessing import prepare_dataset
from tests.servers import node_process, wait_until
from worker.tasks import queue_for_scoring

BATCH_WAIT_MS = 20
GAP_S = 0.1  # between the later images: five times the batch wait


def _log(path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def test_images_arriving_while_a_batch_is_scored_make_the_next_batch(tmp_path, broker, fuji_cr):
    prepared = prepare_dataset(pydicom.dcmread(fuji_cr))

    def queue(index: int) -> None:
        queue_for_scoring(f"receipt-{index}", "token", prepared, 0.0)

    log = tmp_path / "worker" / "inference.log"
    arguments = [
        "--queues", "inference", "--untrained", "--broker-url", broker, "--spool", str(tmp_path / "spool"),
        "--batch-size", "4", "--batch-wait-ms", str(BATCH_WAIT_MS),
    ]
    queue(0)
    with node_process(tmp_path / "worker", arguments, "worker", log_name="inference"):
        wait_until(lambda: "infer: a batch of 1" in _log(log), 300, "the first image's batch")
        for index in (1, 2, 3):
            time.sleep(GAP_S)
            queue(index)
        assert "infer: 1 scored" not in _log(log), "inconclusive: the first image was scored before the rest came"
        wait_until(lambda: _log(log).count("infer: receipt") == 4, 300, "every image scored")
    assert re.findall(r"infer: a batch of (\d+)", _log(log)) == ["1", "3"], _log(log)


def test_with_two_scoring_threads_a_second_batch_is_scored_while_the_first_is(tmp_path, broker, fuji_cr):
    """``--scoring-threads 2``: four images queued at batch size 2 are two batches scored at once
    (on a GPU, one batch's decoding and results overlap the other's forward pass)."""
    prepared = prepare_dataset(pydicom.dcmread(fuji_cr))
    for index in range(4):
        queue_for_scoring(f"receipt-{index}", "token", prepared, 0.0)
    log = tmp_path / "worker" / "inference.log"
    arguments = [
        "--queues", "inference", "--untrained", "--broker-url", broker, "--spool", str(tmp_path / "spool"),
        "--batch-size", "2", "--batch-wait-ms", str(BATCH_WAIT_MS), "--scoring-threads", "2",
    ]
    with node_process(tmp_path / "worker", arguments, "worker", log_name="inference"):
        wait_until(lambda: _log(log).count("infer: receipt") == 4, 300, "every image scored")
    events = re.findall(r"infer: (a batch of \d+|\d+ scored)", _log(log))
    assert events[:2] == ["a batch of 2", "a batch of 2"], _log(log)
