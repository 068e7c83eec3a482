"""A radiograph sent from Orthanc to the node comes back to Orthanc as an SR and an overlay in
the same study (real redis-server, Orthanc and ``dicom-node serve`` with its in-process worker)."""

import io

import pydicom

from dicom_node.outputs.overlay import OVERLAY_SERIES_NUMBER
from dicom_node.outputs.sr import SR_SERIES_NUMBER
from tests.conftest import FUJI_CR, require_path
from tests.servers import LOOPBACK, listening, node_process, orthanc_server, wait_until
from tests.sr_reading import brixia_scores, referenced_sop_instances

NODE_AET = "TEST_NODE"
SCORING_TIMEOUT_S = 240


def _download(orthanc, instance_id: str) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(orthanc.get(f"/instances/{instance_id}/file")))


def test_orthanc_push_returns_sr_and_overlay_in_the_same_study(tmp_path, broker_url, node_port):
    source_bytes = require_path(FUJI_CR).read_bytes()
    source = pydicom.dcmread(io.BytesIO(source_bytes))
    with orthanc_server(tmp_path / "orthanc", {"node": (NODE_AET, LOOPBACK, node_port)}) as orthanc:
        arguments = [
            "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port),
            "--spool", str(tmp_path / "spool"), "--broker-url", broker_url, "--untrained",
            "--destination", f"{orthanc.ae_title}@{LOOPBACK}:{orthanc.dicom_port}",
        ]
        with node_process(tmp_path / "node", arguments):
            wait_until(lambda: listening(node_port), 60, "the node to listen")
            uploaded = orthanc.request("POST", "/instances", source_bytes)
            study = uploaded["ParentStudy"]
            orthanc.request("POST", "/modalities/node/store", {"Resources": [uploaded["ID"]], "Synchronous": True})
            wait_until(
                lambda: len(orthanc.get(f"/studies/{study}/instances")) >= 5,
                SCORING_TIMEOUT_S, "the SR and overlay in Orthanc", interval=1.0,
            )
            series = orthanc.get(f"/studies/{study}/series")
            modalities = sorted(s["MainDicomTags"]["Modality"] for s in series)
            # default outputs: SR, overlay and explainability captures (OT), segmentation
            assert modalities == sorted([source.Modality, "SR", "OT", "OT", "SEG"])
            by_number = {int(s["MainDicomTags"].get("SeriesNumber", 0)): s["Instances"] for s in series}
            (sr_id,) = by_number[SR_SERIES_NUMBER]
            (overlay_id,) = by_number[OVERLAY_SERIES_NUMBER]
            sr = _download(orthanc, sr_id)
            overlay = _download(orthanc, overlay_id)
            preview = orthanc.get(f"/instances/{overlay_id}/preview")
    assert sr.StudyInstanceUID == overlay.StudyInstanceUID == source.StudyInstanceUID
    assert source.SOPInstanceUID in referenced_sop_instances(sr)
    regions, global_score = brixia_scores(sr)
    assert sorted(regions) == list("ABCDEF")
    assert all(score in (0, 1, 2, 3) for score in regions.values())
    assert sum(regions.values()) == global_score
    assert overlay.BurnedInAnnotation == "YES" and overlay.SamplesPerPixel == 3
    assert preview[:8] == b"\x89PNG\r\n\x1a\n"
