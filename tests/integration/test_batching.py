"""An inference worker scores the prepared images waiting in its queue in one forward pass and
sends each result to its own receipt (issue 13). Three different radiographs are prepared while
no inference worker runs; the one started then takes all three as one batch. Each SR must put
the region outlines where the network, given that image alone, puts them: an untrained network
gives every image the same scores, but the outlines lie in each image's own pixel frame, and the
three radiographs are 440, 1841 and 1024 pixels wide."""

import re

import pydicom

from dicom_node.outputs import build_outputs
from inference import Predictor
from tests.conftest import DICOM_DATA
from tests.servers import LOOPBACK, c_store, listening, node_process, node_status, storescp_server, wait_until
from tests.sr_reading import outline_centroids, referenced_sop_instances

NODE_AET = "TEST_NODE"
TOLERANCE = 0.02  # of the image's width: a lung boundary pixel may differ between batch sizes
RADIOGRAPHS = ("cr_mono1_explicit_fuji_small.dcm", "cr_mono1_j2k_lossy_philips.dcm", "sc_cr_jpeg_baseline_siim.dcm")


def _log(path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def test_queued_images_are_scored_in_one_forward_pass_each_to_its_receipt(tmp_path, broker_url, node_port):
    files = [DICOM_DATA / name for name in RADIOGRAPHS]
    predictor = Predictor(allow_untrained=True, device="cpu")
    expected = {}  # SOP Instance UID -> (width, outline centroids) of the image scored alone
    for path in files:
        source = pydicom.dcmread(path)
        (sr,) = build_outputs(source, predictor.predict(source), ["sr"])
        expected[str(source.SOPInstanceUID)] = (int(source.Columns), outline_centroids(sr))
    spool = tmp_path / "spool"
    common = ["--spool", str(spool), "--broker-url", broker_url, "--untrained"]
    workers = tmp_path / "workers"
    with storescp_server(tmp_path / "received", "RESULTS") as destination_port:
        destination = f"RESULTS@{LOOPBACK}:{destination_port}"  # the node routes to it, its node worker sends there
        node_arguments = [
            "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port), "--no-worker",
            "--destination", destination, *common,
        ]
        with (
            node_process(tmp_path / "node", node_arguments),
            node_process(workers, ["--queues", "node", "--concurrency", "1", "--destination", destination, *common],
                         "worker", log_name="node"),
        ):
            wait_until(lambda: listening(node_port), 60, "the node to listen")
            for path in files:
                assert c_store(path, node_port, NODE_AET) == 0x0000
            wait_until(lambda: _log(workers / "node.log").count("succeeded") == len(files), 120, "every prepare")
            inference = ["--queues", "inference", "--batch-size", "4", "--batch-wait-ms", "3000", *common]
            with node_process(workers, inference, "worker", log_name="inference"):
                wait_until(
                    lambda: all(r["state"] in ("delivered", "failed") for r in node_status(spool)), 300,
                    "every receipt to end", interval=1.0,
                )
    assert [r["state"] for r in node_status(spool)] == ["delivered"] * len(files), node_status(spool)
    log = _log(workers / "inference.log")
    assert re.findall(r"infer: a batch of (\d+)", log) == [str(len(files))], log
    received = [pydicom.dcmread(p) for p in (tmp_path / "received").rglob("*") if p.is_file()]
    reports = [ds for ds in received if ds.Modality == "SR"]  # the node-queue worker builds every output
    assert len(reports) == len(files)
    for sr in reports:
        (source_uid,) = referenced_sop_instances(sr) & set(expected)
        width, centroids = expected[source_uid]
        found = outline_centroids(sr)
        assert len(found) == len(centroids) > 0
        for (column, row), (want_column, want_row) in zip(found, centroids, strict=True):
            assert abs(column - want_column) < TOLERANCE * width and abs(row - want_row) < TOLERANCE * width
