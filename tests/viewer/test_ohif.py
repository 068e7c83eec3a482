"""The outputs as a radiologist sees them: the OHIF Viewer (3.13.2, deploy/ohif) in headless Chromium
(Debian's) against a real Orthanc with its DICOMweb plugin, driven by tests/viewer/ohif_check.mjs.

One real radiograph is scored (untrained model), its four outputs and the radiograph are stored in
Orthanc, deploy/ohif/serve.py serves OHIF and proxies /dicom-web to Orthanc (the set-up of
deploy/ohif/README.md), and each output is opened in its own page at
/viewer?StudyInstanceUIDs=...&initialSeriesInstanceUID=<its series>. Asserted:

(a) the overlay and the explainability captures render: the viewport's canvas shows colour pixels
    (the captures are RGB; the radiograph is grey) and the viewport names the capture's series;
(b) the SR: OHIF asks to track its measurements, Yes is answered, and the measurement panel lists
    the six regions (A-F), each once, each with its score as a number;
(c) the SEG: OHIF asks to open it, Yes is answered, the segmentation panel lists its seven segments
    by name (in order) and the viewport is not black;
(d) no page logs an error (console errors, uncaught exceptions), less BENIGN_CONSOLE_ERRORS.

Screenshots of each output (PNG) are kept in the test's temporary folder (printed, and named in
every failure); with DICOM_NODE_UPDATE_SCREENSHOTS=1 they are also copied to docs/images/ohif-*.png.
Skipped outside CI when Chromium, Node.js, the DICOMweb plugin or OHIF is not installed; a failure
in CI (deploy/install.sh installs them all).
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pydicom
import pytest

from dicom_node.outputs import OUTPUT_KINDS, build_outputs
from inference import Predictor
from tests.conftest import FUJI_CR, REPO_ROOT, require_installed, require_path, require_tool
from tests.servers import (
    dicomweb_options,
    free_port,
    listening,
    orthanc_server,
    spawn,
    stop,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.viewer]

OHIF_DIR = REPO_ROOT / "deploy" / "ohif"
OHIF_INDEX = OHIF_DIR / "node_modules" / "@ohif" / "app" / "dist" / "index.html"
PUPPETEER = OHIF_DIR / "node_modules" / "puppeteer-core" / "package.json"
SERVER = OHIF_DIR / "serve.py"
DRIVER = Path(__file__).with_name("ohif_check.mjs")
DOCS_IMAGES = REPO_ROOT / "docs" / "images"
UPDATE_SCREENSHOTS = "DICOM_NODE_UPDATE_SCREENSHOTS"
LONG_VALUE_WARNING = "The value length .* exceeds"  # as in tests/outputs/conftest.py

# Each wait of the driver is for a DOM condition; these are only its limits (ms).
WAIT_MS = 60_000  # the viewer, a prompt, a rendered canvas
ROWS_MS = 45_000  # the SR's measurement rows or the SEG's segment rows after Yes
REGION_LETTERS = "ABCDEF"
# Console errors known to be benign, as regular expression -> why. None so far: OHIF 3.13.2 logs
# no error for a study whose outputs it shows completely.
BENIGN_CONSOLE_ERRORS: dict[str, str] = {}
# A row names its region ("Brixia A ...", "Brixia region A", "Region A") and shows its score as a
# number after the word "score" ("score 1", "score: 1.00"); lines about probabilities are not it.
REGION = re.compile(r"\b(?i:brixia\s+region|brixia|region)\s+([A-F])\b")
SCORE = re.compile(r"\bscore\b[^\d{}\n]{0,12}(\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclasses.dataclass
class ViewerRun:
    """What the driver reported per output kind, and what each output should show."""

    folder: Path
    report: dict
    region_scores: dict[str, int]
    segment_labels: list[str]
    descriptions: dict[str, str]

    def context(self, kind: str) -> str:
        """The lines a failure about ``kind`` ends with: its screenshot and the driver's log."""
        output = self.report["outputs"].get(kind, {})
        return f"screenshot: {output.get('screenshot')}\ndriver log: {self.folder / 'driver.log'}"


@pytest.fixture(scope="module")
def viewer_run(tmp_path_factory: pytest.TempPathFactory) -> ViewerRun:
    chromium = require_tool("chromium")
    node = require_tool("node")
    require_installed(OHIF_INDEX, "OHIF (@ohif/app)")
    require_installed(PUPPETEER, "puppeteer-core")
    plugin = dicomweb_options()
    source_path = require_path(FUJI_CR)
    folder = tmp_path_factory.mktemp("ohif")

    source = pydicom.dcmread(source_path)
    result = Predictor(allow_untrained=True, device="cpu").predict(source)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", LONG_VALUE_WARNING, UserWarning)
        outputs = dict(zip(OUTPUT_KINDS, build_outputs(source, result, OUTPUT_KINDS), strict=True))
        files = {kind: folder / f"{kind}.dcm" for kind in outputs}
        for kind, dataset in outputs.items():
            pydicom.dcmwrite(files[kind], dataset, enforce_file_format=True)

    screenshots = folder / "screenshots"
    screenshots.mkdir()
    with orthanc_server(folder / "orthanc", {}, plugin) as orthanc:
        for path in [source_path, *files.values()]:
            stored = orthanc.request("POST", "/instances", path.read_bytes())
            assert stored["Status"] in ("Success", "AlreadyStored"), (path, stored)
        port = free_port()
        server = spawn(
            [sys.executable, str(SERVER), "--orthanc", orthanc.url, "--port", str(port), "--quiet"],
            folder / "serve.log",
        )
        try:
            wait_until(lambda: listening(port), 30, "deploy/ohif/serve.py")
            plan = {
                "chromium": chromium,
                "ohif_dir": str(OHIF_DIR),
                "base": f"http://127.0.0.1:{port}",
                "study": source.StudyInstanceUID,
                "outputs": [{"kind": kind, "series": outputs[kind].SeriesInstanceUID} for kind in OUTPUT_KINDS],
                "expect": {"measurements": len(REGION_LETTERS), "segments": len(outputs["seg"].SegmentSequence)},
                "out": str(screenshots),
                "timeout_ms": WAIT_MS,
                "settle_ms": ROWS_MS,
            }
            (folder / "plan.json").write_text(json.dumps(plan, indent=2))
            run = subprocess.run(
                [node, str(DRIVER), str(folder / "plan.json")],
                capture_output=True, text=True, timeout=900, cwd=REPO_ROOT, check=False,
            )
        finally:
            stop(server)
    (folder / "driver.log").write_text(run.stderr)
    assert run.returncode == 0 and run.stdout.strip(), (
        f"ohif_check.mjs failed (exit {run.returncode}):\n{run.stderr[-4000:]}"
    )
    report = json.loads(run.stdout.strip().splitlines()[-1])
    (folder / "report.json").write_text(json.dumps(report, indent=2))
    print(f"OHIF screenshots in {screenshots}; the driver's report in {folder / 'report.json'}")
    if os.environ.get(UPDATE_SCREENSHOTS) == "1":
        for png in sorted(screenshots.glob("ohif-*.png")):
            shutil.copyfile(png, DOCS_IMAGES / png.name)
        print(f"copied to {DOCS_IMAGES}")
    return ViewerRun(
        folder=folder,
        report=report,
        region_scores=dict(result.region_scores),
        segment_labels=[str(segment.SegmentLabel) for segment in outputs["seg"].SegmentSequence],
        descriptions={kind: str(dataset.get("SeriesDescription", "")) for kind, dataset in outputs.items()},
    )


@pytest.mark.parametrize("kind", ["overlay", "explainability"])
def test_captures_render(viewer_run: ViewerRun, kind: str) -> None:
    """(a) The capture is drawn: colour pixels in the viewport, under the capture's series name."""
    output = viewer_run.report["outputs"][kind]
    context = viewer_run.context(kind)
    assert output.get("viewer"), f"OHIF's viewer did not come up for the {kind}\n{context}"
    assert output.get("rendered"), f"the {kind} did not render (canvas {output.get('canvas')})\n{context}"
    assert output.get("description") == viewer_run.descriptions[kind], (
        f"the viewport shows {output.get('description')!r}, not the {kind}'s series "
        f"{viewer_run.descriptions[kind]!r}\n{context}"
    )


def _region_and_score(row: str) -> tuple[str | None, float | None]:
    """The region letter a measurement row names and the score it shows (None where absent)."""
    region = REGION.search(row)
    scores = (SCORE.search(line) for line in row.splitlines() if "probab" not in line.lower())
    score = next((found for found in scores if found), None)
    return (region.group(1) if region else None), (float(score.group(1)) if score else None)


def test_sr_measurements_tracked(viewer_run: ViewerRun) -> None:
    """(b) After Yes to tracking, the measurement panel lists the six regions with their scores."""
    output = viewer_run.report["outputs"]["sr"]
    context = viewer_run.context("sr")
    notes = "\n".join(dict.fromkeys(output.get("warnings", [])))
    assert output.get("answered_yes"), (
        f"OHIF did not ask to track the SR's measurements (prompt: {output.get('prompt')!r}, "
        f"viewer gone: {output.get('viewer_gone')})\nwarnings:\n{notes}\n{context}"
    )
    rows = output.get("rows", [])
    found: dict[str, list[float | None]] = {}
    problems = []
    for row in rows:
        region, score = _region_and_score(row)
        if region is None:
            problems.append(f"a row names no region A-F: {row!r}")
        else:
            found.setdefault(region, []).append(score)
    for letter in REGION_LETTERS:
        expected = viewer_run.region_scores[letter]
        shown = found.get(letter, [])
        if len(shown) != 1:
            problems.append(f"region {letter}: {len(shown)} rows instead of 1")
        elif shown[0] != expected:
            problems.append(f"region {letter}: score shown {shown[0]}, expected {expected}")
    assert not problems, (
        f"the measurement panel ({len(rows)} rows) does not show the six regions with their scores:\n"
        + "\n".join(problems)
        + f"\npanel:\n{output.get('panel')}\nwarnings:\n{notes}\n{context}"
    )


def test_seg_segments_listed(viewer_run: ViewerRun) -> None:
    """(c) After Yes to opening the SEG, the segmentation panel lists its seven segments by name."""
    output = viewer_run.report["outputs"]["seg"]
    context = viewer_run.context("seg")
    errors = "\n".join(entry["text"] for entry in output.get("console", []))
    assert output.get("answered_yes"), (
        f"OHIF did not offer to open the SEG (prompt: {output.get('prompt')!r}, viewer gone: "
        f"{output.get('viewer_gone')})\nerrors:\n{errors}\n{context}"
    )
    assert output.get("segments") == viewer_run.segment_labels, (
        f"the segmentation panel lists {output.get('segments')}, expected {viewer_run.segment_labels}"
        f"\nerrors:\n{errors}\n{context}"
    )
    canvas = output.get("canvas") or {}
    assert canvas.get("lit", 0) > 0.05, f"the SEG's viewport is black (canvas {canvas})\n{context}"


def test_no_errors_logged(viewer_run: ViewerRun) -> None:
    """(d) No page logs an error or throws, for any output (known-benign messages listed above)."""
    errors = []
    for kind, output in viewer_run.report["outputs"].items():
        messages = [entry["text"] for entry in output.get("console", [])]
        messages += output.get("page_errors", [])
        messages += [f"driver: {output['driver_error']}"] if output.get("driver_error") else []
        for message in messages:
            if not any(re.search(pattern, message) for pattern in BENIGN_CONSOLE_ERRORS):
                errors.append(f"{kind}: {message.splitlines()[0] if message else message}")
    assert not errors, "errors logged in OHIF:\n" + "\n".join(errors) + f"\nreport: {viewer_run.folder / 'report.json'}"
