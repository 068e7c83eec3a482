"""Disk pressure is a state, not a crash (issue 11): on a small tmpfs spool filled past the
free-space floor the node answers 0xA700 and stays up; when space returns it accepts again."""

import subprocess
from pathlib import Path

import pytest

from tests.servers import LOOPBACK, c_store, listening, node_process, node_status, wait_until

NODE_AET = "TEST_NODE"
SIZE_MB, FLOOR_MB = 64, 16


@pytest.fixture
def small_disk(tmp_path) -> Path:
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN): {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_spool_disk_is_refused_politely_and_recovers(small_disk, tmp_path, fuji_cr, broker_url, node_port):
    spool = small_disk / "spool"
    arguments = [
        "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port), "--spool", str(spool),
        "--broker-url", broker_url, "--untrained", "--outputs", "sr",
    ]
    with node_process(tmp_path / "node", arguments, env={"DICOM_NODE_MIN_FREE_SPACE_MB": str(FLOOR_MB)}) as node:
        wait_until(lambda: listening(node_port), 60, "the node to listen")
        ballast = small_disk / "ballast"
        ballast.write_bytes(bytes((SIZE_MB - FLOOR_MB + 4) * 1024 * 1024))  # below the floor
        assert c_store(fuji_cr, node_port, NODE_AET) == 0xA700  # out of resources, nothing kept
        assert node.poll() is None and node_status(spool) == []
        ballast.unlink()  # space returns
        assert c_store(fuji_cr, node_port, NODE_AET) == 0x0000
        wait_until(lambda: [r["state"] for r in node_status(spool)] == ["scored"], 120, "the image to be scored")
        assert node.poll() is None
    log = (tmp_path / "node" / "serve.log").read_text()
    assert "below the floor" in log
