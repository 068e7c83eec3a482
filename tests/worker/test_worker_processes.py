"""An inference worker of several processes sharing its device (``--concurrency N`` with
``--queues inference``; issue 13: on a GPU, one process's consumer and Python work hold one GIL,
so several feed the device better than one). Each process consumes and scores; SIGTERM to the
command stops them all; one that cannot start stops the command with its reason."""

import os
import re
import signal
import subprocess

import pydicom

from inference.preprocessing import prepare_dataset
from tests.servers import DICOM_NODE, REPO_ROOT, spawn, stop, wait_until
from worker.tasks import queue_for_scoring

READY = re.compile(r"(dicom-node-inference-\d+)@\S+ ready\.")
PIDS = re.compile(r"inference worker: 2 processes, pids (\d+), (\d+)")


def _log(path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_processes_each_consume_and_sigterm_stops_both(tmp_path, broker, fuji_cr):
    """Set in the configuration file, as a systemd unit gives it (``inference_processes``)."""
    config = tmp_path / "dicom-node.toml"
    config.write_text(
        f'spool = "{tmp_path / "spool"}"\nbroker_url = "{broker}"\nuntrained = true\ndevice = "cpu"\n'
        "inference_processes = 2\n"
    )
    log = tmp_path / "inference.log"
    process = spawn([*DICOM_NODE, "worker", "--queues", "inference", "--config", str(config)], log)
    try:
        wait_until(lambda: len(set(READY.findall(_log(log)))) == 2, 300, "two consumers ready")
        prepared = prepare_dataset(pydicom.dcmread(fuji_cr))
        for index in range(4):
            queue_for_scoring(f"receipt-{index}", "token", prepared, 0.0)
        wait_until(lambda: len(re.findall(r"infer: receipt (\S+) scored", _log(log))) == 4, 300, "4 images scored")
        children = [int(pid) for pid in PIDS.search(_log(log)).groups()]
        assert all(_alive(pid) for pid in children)
        process.send_signal(signal.SIGTERM)  # the command alone, not its process group
        assert process.wait(timeout=120) == 0, _log(log)
    finally:
        stop(process)
    assert sorted(re.findall(r"infer: receipt (\S+) scored", _log(log))) == [f"receipt-{i}" for i in range(4)]
    assert not any(_alive(pid) for pid in children)


def test_a_process_that_cannot_start_stops_the_command_with_its_reason(tmp_path, broker):
    weights = tmp_path / "bsnet.pt"
    weights.write_bytes(b"PK\x03\x04 not a weights file")
    run = subprocess.run(
        [*DICOM_NODE, "worker", "--queues", "inference", "--concurrency", "2", "--weights", str(weights),
         "--device", "cpu", "--broker-url", broker, "--spool", str(tmp_path / "spool")],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "cannot start" in run.stderr and str(weights) in run.stderr
    assert "ready." not in run.stdout + run.stderr
