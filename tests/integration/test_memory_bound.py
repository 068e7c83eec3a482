"""A decompression bomb costs the node nothing (issue 12): a 1 KB JPEG 2000 codestream of
12000 x 12000 pixels (about 20 bytes per pixel, some 3 GB, if it were decoded and prepared)
ends `failed` naming `max_pixels`, and the node's peak memory (VmHWM of the process running the
SCP and its embedded worker) does not grow beyond what scoring an ordinary radiograph took."""

import numpy as np
import openjpeg
import pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, generate_uid

from tests.servers import LOOPBACK, c_store, listening, node_process, node_status, wait_until

NODE_AET = "TEST_NODE"
BOMB_SIDE = 12000
MARGIN_MB = 150  # generous: decoding the bomb alone would take about 144 MB, preparing it about 3 GB


def _peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set size so far (Linux /proc)."""
    for line in open(f"/proc/{pid}/status", encoding="ascii"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def _bomb(source: pydicom.Dataset, path) -> None:
    """``source``'s header around a real JPEG 2000 codestream of BOMB_SIDE x BOMB_SIDE pixels."""
    codestream = openjpeg.encode(np.zeros((BOMB_SIDE, BOMB_SIDE), dtype=np.uint8), compression_ratios=[1000])
    ds = source.copy()
    ds.SOPInstanceUID = generate_uid()
    ds.Rows = ds.Columns = BOMB_SIDE
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([codestream])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)


def test_an_image_over_the_pixel_limit_fails_without_raising_the_node_s_memory(
    tmp_path, fuji_cr, broker_url, node_port
):
    bomb = tmp_path / "bomb.dcm"
    _bomb(pydicom.dcmread(fuji_cr), bomb)
    assert bomb.stat().st_size < 500_000
    spool = tmp_path / "spool"
    arguments = [
        "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port), "--spool", str(spool),
        "--broker-url", broker_url, "--untrained", "--outputs", "sr",
    ]
    with node_process(tmp_path / "node", arguments) as node:
        wait_until(lambda: listening(node_port), 60, "the node to listen")

        def settled(count: int):
            rows = node_status(spool)
            done = [row for row in rows if row["state"] == "failed" or row["global_score"] is not None]
            return rows if len(done) == count else None

        assert c_store(fuji_cr, node_port, NODE_AET) == 0x0000
        wait_until(lambda: settled(1), 300, "the radiograph to be scored", interval=1.0)
        after_scoring = _peak_rss_mb(node.pid)
        assert c_store(bomb, node_port, NODE_AET) == 0x0000
        rows = wait_until(lambda: settled(2), 300, "the bomb to be failed", interval=1.0)
        after_bomb = _peak_rss_mb(node.pid)
    failed = [row for row in rows if row["state"] == "failed"]
    assert len(failed) == 1 and "max_pixels" in failed[0]["reason"], rows
    assert "12000 x 12000" in failed[0]["reason"]
    assert after_bomb <= after_scoring + MARGIN_MB, (after_scoring, after_bomb)
