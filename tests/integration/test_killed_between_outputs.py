"""A node killed after it sent the SR but before it stored the images delivers every output once
it is back (issue 13's SR-first delivery must not let a receipt count as done with the SR alone):
the journal only calls a receipt scored once all its outputs are stored."""

import os
import signal

import numpy as np
import pydicom

from tests.servers import LOOPBACK, c_store, listening, node_process, node_status, storage_scp, wait_until

NODE_AET = "TEST_NODE"
OUTPUT_KINDS = ("sr", "overlay", "explainability", "seg")


def _large_radiograph(source, target):
    """The Fuji CR at four times its size: drawing its images takes long enough to kill the node
    between the SR and them."""
    ds = pydicom.dcmread(source)
    ds.PixelData = np.kron(ds.pixel_array, np.ones((4, 4), dtype=ds.pixel_array.dtype)).tobytes()
    ds.Rows, ds.Columns = ds.Rows * 4, ds.Columns * 4
    ds.save_as(target, enforce_file_format=True)
    return target


def test_a_node_killed_between_the_sr_and_the_images_delivers_them_all(tmp_path, fuji_cr, broker_url, node_port):
    radiograph = _large_radiograph(fuji_cr, tmp_path / "large.dcm")
    spool = tmp_path / "spool"
    with storage_scp() as (destination, received):
        arguments = [
            "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port), "--spool", str(spool),
            "--broker-url", broker_url, "--untrained", "--destination", str(destination),
        ]
        for kind in OUTPUT_KINDS:
            arguments += ["--outputs", kind]
        log = tmp_path / "first" / "serve.log"
        with node_process(tmp_path / "first", arguments) as first:
            wait_until(lambda: listening(node_port), 60, "the node to listen")
            assert c_store(radiograph, node_port, NODE_AET) == 0x0000
            wait_until(lambda: log.exists() and ": sr built" in log.read_text(), 300, "the SR to be sent", 0.01)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
        assert len(received) == 1  # the SR, and none of the images: the node died between them
        with node_process(tmp_path / "second", arguments):
            wait_until(lambda: node_status(spool)[0]["state"] == "delivered", 300, "delivery after the restart")
        (receipt,) = node_status(spool)
        assert len(receipt["outputs"]) == len(OUTPUT_KINDS)
        assert {uid for uid, _, _ in received} == set(receipt["outputs"])
