"""storescu sends several images on one association; the journal says which were scored and
which were skipped, and why; the configured outputs (here SR and overlay only) reach a dcmtk
storescp destination."""

import subprocess

import pydicom

from tests.conftest import DICOM_DATA, require_path, require_tool
from tests.servers import (
    LOOPBACK,
    listening,
    node_process,
    node_status,
    storescp_server,
    wait_until,
)

NODE_AET = "TEST_NODE"


def _variant(source, folder, name, **changes):
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    path = folder / f"{name}.dcm"
    ds.save_as(path)
    return path


def test_storescu_batch_is_triaged_scored_and_delivered(tmp_path, fuji_cr, broker_url, node_port):
    storescu = require_tool("storescu")
    images = tmp_path / "images"
    images.mkdir()
    files = {
        "chest": fuji_cr,
        "chest-second": _variant(fuji_cr, images, "chest-second"),
        "lateral": _variant(fuji_cr, images, "lateral", ViewPosition="LL"),
        "knee": _variant(fuji_cr, images, "knee", BodyPartExamined="KNEE"),
        "canine": require_path(DICOM_DATA / "dx_canine_lateral_negative.dcm"),
    }
    sop_of = {name: pydicom.dcmread(path).SOPInstanceUID for name, path in files.items()}
    received = tmp_path / "received"
    spool = tmp_path / "spool"
    arguments = [
        "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port), "--spool", str(spool),
        "--broker-url", broker_url, "--untrained", "--outputs", "sr", "--outputs", "overlay",
    ]
    with storescp_server(received, "RESULTS") as destination_port:
        arguments += ["--destination", f"RESULTS@{LOOPBACK}:{destination_port}"]
        with node_process(tmp_path / "node", arguments):
            wait_until(lambda: listening(node_port), 60, "the node to listen")
            subprocess.run(
                [storescu, "-aet", "MODALITY", "-aec", NODE_AET, LOOPBACK, str(node_port), *map(str, files.values())],
                check=True, capture_output=True, timeout=120,
            )

            def settled():
                rows = node_status(spool)
                done = [r for r in rows if r["state"] in ("delivered", "skipped", "failed")]
                return rows if len(rows) == len(files) and len(done) == len(files) else None

            rows = wait_until(settled, 300, "every image to be delivered or skipped", interval=1.0)
    by_uid = {row["sop_instance_uid"]: row for row in rows}
    for name in ("chest", "chest-second"):
        row = by_uid[sop_of[name]]
        assert row["state"] == "delivered", row
        assert sum(row["region_scores"].values()) == row["global_score"]
        assert len(row["outputs"]) == 2
        assert row["compute_ms"] > 0
    assert by_uid[sop_of["lateral"]]["state"] == "skipped"
    assert "view position LL" in by_uid[sop_of["lateral"]]["reason"]
    assert "body part KNEE" in by_uid[sop_of["knee"]]["reason"]
    assert by_uid[sop_of["canine"]]["state"] == "skipped"
    assert by_uid[sop_of["knee"]]["compute_ms"] is None
    assert all(row["calling_ae"] == "MODALITY" for row in rows)
    delivered = [pydicom.dcmread(p) for p in received.rglob("*") if p.is_file()]
    assert sorted(ds.Modality for ds in delivered) == ["OT", "OT", "SR", "SR"]
