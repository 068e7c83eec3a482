"""Every output stored in a real Orthanc (Debian's 1.10) and rendered by its /preview."""

import io
import struct
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from dicom_node.outputs import OUTPUT_KINDS
from inference.regions import REGIONS
from tests.outputs.conftest import NAMES
from tests.servers import Orthanc, orthanc_server

pytestmark = pytest.mark.integration
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UNSUPPORTED_MEDIA_TYPE = 415


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    with orthanc_server(tmp_path_factory.mktemp("orthanc"), {}) as server:
        yield server


def _png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from the PNG signature and IHDR chunk."""
    assert png[:8] == PNG_SIGNATURE and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def _previewable(output: pydicom.Dataset) -> bool:
    """Whether Orthanc 1.10 renders ``output``: not an SR (no pixel data), and not a BINARY SEG
    whose rows do not fill whole bytes ("Bad number of columns for a black-and-white image": its
    1-bit decoder needs Columns to be a multiple of 8). Orthanc answers 415 for the others."""
    return output.Modality != "SR" and not (output.Modality == "SEG" and output.Columns % 8)


def _refused(orthanc: Orthanc, path: str) -> int:
    with pytest.raises(urllib.error.HTTPError) as refused:
        orthanc.get(path)
    return refused.value.code


def _store(orthanc: Orthanc, path: Path) -> str:
    stored = orthanc.request("POST", "/instances", path.read_bytes())
    assert stored["Status"] in ("Success", "AlreadyStored")
    return stored["ID"]


@pytest.mark.parametrize("name", NAMES)
def test_orthanc_previews_every_image_output(name: str, built, orthanc: Orthanc) -> None:
    data = built(name)
    for kind in OUTPUT_KINDS:
        instance = _store(orthanc, data.files[kind])
        output = pydicom.dcmread(data.files[kind], stop_before_pixels=True)
        stored = orthanc.get(f"/instances/{instance}/simplified-tags")
        assert stored["SOPInstanceUID"] == output.SOPInstanceUID
        preview = f"/instances/{instance}/preview"
        if not _previewable(output):
            assert _refused(orthanc, preview) == UNSUPPORTED_MEDIA_TYPE, kind
            continue
        assert _png_size(orthanc.get(preview)) == (output.Columns, output.Rows), kind


@pytest.mark.parametrize("name", NAMES)
def test_orthanc_previews_each_segment_frame(name: str, built, orthanc: Orthanc) -> None:
    """SEG frame i (0-based; frame 0 is the lungs) is region i's mask: Orthanc shows it white on
    black, in source pixels."""
    data = built(name)
    instance = _store(orthanc, data.files["seg"])
    labels = data.result.to_source(data.result.region_map, labels=True)
    for index, region in enumerate(REGIONS, start=1):
        preview = f"/instances/{instance}/frames/{index}/preview"
        if labels.shape[1] % 8:
            assert _refused(orthanc, preview) == UNSUPPORTED_MEDIA_TYPE
            continue
        shown = np.asarray(Image.open(io.BytesIO(orthanc.get(preview))).convert("L")) > 127
        assert np.array_equal(shown, labels == index), region.name
