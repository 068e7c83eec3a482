"""Regenerate docs/images: each output for the sample radiograph, rendered by dcmtk.

    .venv/bin/python docs/render_outputs.py

Scores ../shared/data/dicom/cr_mono1_explicit_fuji_small.dcm with the untrained model (random
weights, so the scores, maps and lung mask mean nothing), builds every output, writes them to a
temporary folder and renders them with dcmtk, never with this project's code: dcmj2pnm for the
images (PNG, at most 512 pixels wide; the SEG one PNG per segment frame, 1 white on 0 black) and
dsr2html for the SR (HTML, short items expanded inline).
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import pydicom

from dicom_node.outputs import OUTPUT_KINDS, build_outputs
from inference import Predictor

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "dicom" / "cr_mono1_explicit_fuji_small.dcm"
IMAGES = REPO / "docs" / "images"
MAX_WIDTH = 512
SEGMENT_WIDTH = 160


def _png(dataset: Path, output: Path, width: int, *options: str) -> None:
    """dcmj2pnm: non-interlaced PNG, scaled down to ``width`` pixels where wider."""
    columns = pydicom.dcmread(dataset, stop_before_pixels=True).Columns
    scale = ["+Sxv", str(width)] if columns > width else []
    subprocess.run(["dcmj2pnm", "+on", "-il", *scale, *options, dataset, output], check=True)


def main() -> None:
    source = pydicom.dcmread(SAMPLE)
    result = Predictor(allow_untrained=True, device="cpu").predict(source)
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        files = {kind: Path(folder) / f"{kind}.dcm" for kind in OUTPUT_KINDS}
        for kind, output in zip(OUTPUT_KINDS, build_outputs(source, result), strict=True):
            pydicom.dcmwrite(files[kind], output, enforce_file_format=True)
        _png(files["overlay"], IMAGES / "overlay.png", MAX_WIDTH)
        _png(files["explainability"], IMAGES / "explainability.png", MAX_WIDTH)
        # Every frame: seg.0.png (lungs) to seg.6.png (region F); window 0.5/1: 0 black, 1 white.
        _png(files["seg"], IMAGES / "seg", SEGMENT_WIDTH, "+Fa", "+Ww", "0.5", "1")
        html = subprocess.run(
            ["dsr2html", "+Ra", files["sr"]], check=True, capture_output=True, text=True
        ).stdout
        (IMAGES / "sr.html").write_text(html)
    print(f"rendered {SAMPLE.name} into {IMAGES}", file=sys.stderr)


if __name__ == "__main__":
    main()
