"""An inference worker loads its weights and runs the network once when it starts (issue 13): a
corrupt weights file stops it at start with a clear error and a non-zero status, before it takes
any task, rather than failing the first image it is given."""

import subprocess

from tests.servers import DICOM_NODE, REPO_ROOT


def test_an_inference_worker_with_corrupt_weights_stops_at_start(tmp_path, broker_url):
    weights = tmp_path / "bsnet.pt"
    weights.write_bytes(b"PK\x03\x04 not a weights file")
    run = subprocess.run(
        [*DICOM_NODE, "worker", "--queues", "inference", "--weights", str(weights), "--broker-url", broker_url,
         "--spool", str(tmp_path / "no-spool")],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    assert run.returncode != 0
    assert "cannot start" in run.stderr and str(weights) in run.stderr
    assert "ready" not in run.stdout + run.stderr  # never consumed from the broker


def lines_until_ready(arguments: list[str]) -> list[str]:
    """The lines ``dicom-node worker ARGUMENTS`` writes until Celery's "ready." (it then consumes);
    stopped by SIGTERM then."""
    process = subprocess.Popen(
        [*DICOM_NODE, "worker", *arguments], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT
    )
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "ready." in line:
                break
    finally:
        process.terminate()
        process.wait(timeout=60)
    return lines


def test_an_inference_worker_warms_its_model_before_taking_tasks(tmp_path, broker_url):
    """With --untrained the worker logs that the model is loaded and warmed, then serves."""
    lines = lines_until_ready(
        ["--queues", "inference", "--untrained", "--broker-url", broker_url, "--spool", str(tmp_path / "no-spool")]
    )
    warmed = [index for index, line in enumerate(lines) if "model warmed" in line]
    ready = [index for index, line in enumerate(lines) if "ready." in line]
    assert warmed and ready and warmed[0] < ready[0], "".join(lines)


def test_a_node_worker_without_a_destination_says_so_at_start(tmp_path, broker_url):
    """The node worker sends results only where its own configuration names (the journal's
    destination must be one of them): started without any, it warns that every result stays in the
    spool; given the node's destination, it does not."""
    common = ["--queues", "node", "--concurrency", "1", "--broker-url", broker_url, "--spool", str(tmp_path / "spool")]
    warning = "no destination configured"
    unconfigured = "".join(lines_until_ready(common))
    assert warning in unconfigured and "kept in the spool" in unconfigured, unconfigured
    assert warning not in "".join(lines_until_ready([*common, "--destination", "PACS@127.0.0.1:11112"]))


def test_an_inference_worker_asked_for_cuda_graphs_on_the_cpu_stops_at_start(tmp_path, broker_url):
    """CUDA graphs need a GPU: asked for where the network runs on the CPU, the worker says so and
    stops before it takes any task."""
    run = subprocess.run(
        [*DICOM_NODE, "worker", "--queues", "inference", "--untrained", "--device", "cpu", "--cuda-graphs",
         "--broker-url", broker_url, "--spool", str(tmp_path / "no-spool")],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    assert run.returncode == 2
    assert "cannot start" in run.stderr and "CUDA graphs were asked for" in run.stderr
    assert "ready" not in run.stdout + run.stderr
