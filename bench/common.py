"""Helpers shared by the node benchmarks (``bench/roundtrip.py``, ``bench/backlog.py``): test
images, sending them with dcmtk's storescu, the reference compute and the report's plumbing.
Import after putting the repository root on ``sys.path`` (the scripts do)."""

import io
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

from inference import Predictor
from tests.conftest import FUJI_CR, require_path
from tests.servers import LOOPBACK

REFERENCE_RUNS = 5


def radiograph_files(folder: Path, count: int, side: int | None = None) -> list[Path]:
    """``count`` copies of the Fuji chest CR (440 x 440, 10-bit, uncompressed), each with its own
    Study, Series and SOP Instance UIDs; upscaled to ``side`` x ``side`` when given."""
    ds = pydicom.dcmread(require_path(FUJI_CR))
    if side is not None:
        pixels = Image.fromarray(ds.pixel_array.astype(np.float32), mode="F").resize((side, side))
        ds.PixelData = np.clip(np.asarray(pixels), 0, 1023).astype(np.uint16).tobytes()
        ds.Rows = ds.Columns = side
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        ds.StudyInstanceUID = pydicom.uid.generate_uid()
        ds.SeriesInstanceUID = pydicom.uid.generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        path = folder / f"cr{index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def send_all(files: list[Path], port: int, called_ae: str) -> float:
    """Send ``files`` with dcmtk's storescu over one association; returns the seconds it took."""
    start = time.perf_counter()
    subprocess.run(
        ["storescu", "-aet", "BENCH", "-aec", called_ae, LOOPBACK, str(port), *map(str, files)],
        check=True, capture_output=True, timeout=600,
    )
    return time.perf_counter() - start


def model_compute(path: Path) -> float:
    """Reference: median seconds of Predictor.predict on ``path`` in this process (5 runs after 1)."""
    predictor = Predictor(allow_untrained=True)
    ds = pydicom.dcmread(io.BytesIO(path.read_bytes()))
    predictor.predict(ds)
    samples = []
    for _ in range(REFERENCE_RUNS):
        start = time.perf_counter()
        predictor.predict(ds)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def median_ms(values: Iterable[float]) -> str:
    return f"{statistics.median(values) * 1e3:.0f} ms"


def machine() -> str:
    """The machine as the reports name it: host name, architecture, CPU count."""
    return f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs"


def publish(text: str, write: str | None) -> None:
    """Print a report section and append it to the markdown file ``write`` when given."""
    print(text)
    if write:
        with open(write, "a", encoding="utf-8") as stream:
            stream.write("\n" + text)
