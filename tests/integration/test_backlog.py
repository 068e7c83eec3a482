"""A backlog does not hold results back (issue 13): images sent at once are scored one after
another, and the results of an image already scored are delivered while later images still wait
to be prepared, rather than after the whole backlog has been scored (order, not time)."""

import subprocess

import pydicom

from tests.conftest import require_tool
from tests.servers import LOOPBACK, listening, node_process, node_status, storescp_server, wait_until

NODE_AET = "TEST_NODE"
IMAGES = 8


def _lines(log: list[str], *words: str) -> list[int]:
    """Line numbers of the log lines holding every one of ``words``."""
    return [number for number, line in enumerate(log) if all(word in line for word in words)]


def test_results_flow_while_a_backlog_drains(tmp_path, fuji_cr, broker_url, node_port):
    storescu = require_tool("storescu")
    images = tmp_path / "images"
    images.mkdir()
    source = pydicom.dcmread(fuji_cr)
    for index in range(IMAGES):
        source.SOPInstanceUID = pydicom.uid.generate_uid()
        source.save_as(images / f"{index}.dcm")
    spool = tmp_path / "spool"
    with storescp_server(tmp_path / "received", "RESULTS") as destination_port:
        arguments = [
            "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port), "--spool", str(spool),
            "--broker-url", broker_url, "--untrained", "--outputs", "sr",
            "--destination", f"RESULTS@{LOOPBACK}:{destination_port}",
        ]
        with node_process(tmp_path / "node", arguments):
            wait_until(lambda: listening(node_port), 60, "the node to listen")
            subprocess.run(
                [storescu, "-aet", "MODALITY", "-aec", NODE_AET, LOOPBACK, str(node_port),
                 *sorted(map(str, images.iterdir()))],
                check=True, capture_output=True, timeout=120,
            )
            wait_until(
                lambda: len([r for r in node_status(spool) if r["state"] == "delivered"]) == IMAGES, 600,
                "every image to be delivered", interval=1.0,
            )
    log = (tmp_path / "node" / "serve.log").read_text().splitlines()
    scored, reported = _lines(log, "infer: receipt", "scored"), _lines(log, "worker.tasks.deliver[", "succeeded")
    assert len(scored) == len(reported) == IMAGES
    assert reported[0] < scored[-1], "the first result waited for the whole backlog to be scored"
