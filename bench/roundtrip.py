"""Node round-trip benchmark (issue 3).

(a) Receive throughput: the same 40 radiograph-sized files (2048 x 2048, 16-bit, uncompressed,
    8 MiB each) sent by dcmtk's storescu over one association to dcmtk's storescp and to our node
    (fsync on, journal, intake to Redis; no worker so scoring does not compete for the CPU).
    Reported as our throughput / storescp's, median of alternating rounds.
(b) Latency: Orthanc C-STOREs an image to the node (``/modalities/node/store``) -> the SR is in
    Orthanc, p50/p95 over 20 images sent one at a time; once with SR + overlay (issue 3) and once
    with the default four outputs. Overhead beyond model compute is taken per image against the
    compute the node's workers timed for that image (journal ``compute_ms``: preprocessing and
    BS-Net), and split at the moment the instance is safe in the spool (journal ``received_at``)
    and into the report task's steps as the node logged them for the image (``deliver: receipt
    ...`` lines): reading the source, building the SR, encoding and storing it, sending it; from
    the SR's send to Orthanc listing it (the polling); the rest is intake and the queue hops.
    The same image through Predictor.predict in this process is the reference for the ratios.

    .venv/bin/python bench/roundtrip.py [--write docs/benchmarks.md]
"""

import argparse
import datetime
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import machine, median_ms, model_compute, publish, radiograph_files, send_all  # noqa: E402
from tests.servers import (  # noqa: E402
    LOOPBACK,
    free_port,
    listening,
    node_process,
    node_status,
    orthanc_server,
    redis_server,
    storescp_server,
    wait_until,
)

FILES = 40
LATENCY_IMAGES = 20
OUTPUT_SETS = (("sr", "overlay"), ("sr", "overlay", "explainability", "seg"))  # issue 3's pair, default
ROUNDS = 3
SIDE = 2048
NODE_AET = "BENCH_NODE"


def receive_ratio(work: Path, files: list[Path]) -> tuple[float, float, float]:
    """(median storescp seconds, median node seconds, ratio of node throughput to storescp's)."""
    reference, ours = [], []
    with redis_server(work / "redis") as broker:
        for round_index in range(ROUNDS):
            with storescp_server(work / f"storescp-{round_index}", "STORESCP") as port:
                reference.append(send_all(files, port, "STORESCP"))
            node_port = free_port()
            arguments = [
                "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port),
                "--spool", str(work / f"spool-{round_index}"), "--broker-url", broker,
                "--untrained", "--no-worker",
            ]
            with node_process(work / f"node-{round_index}", arguments):
                wait_until(lambda p=node_port: listening(p), 60, "node")
                ours.append(send_all(files, node_port, NODE_AET))
    storescp_s, node_s = statistics.median(reference), statistics.median(ours)
    return storescp_s, node_s, storescp_s / node_s


def series_with_sr(orthanc, study: str) -> list[str] | None:
    """Modalities of the study's series once one of them is an SR, else None."""
    modalities = [one["MainDicomTags"].get("Modality") for one in orthanc.get(f"/studies/{study}/series")]
    return modalities if "SR" in modalities else None


@dataclass
class Push:
    """One image pushed by Orthanc to the node: seconds from the push request."""

    to_sr: float  # until the SR is in Orthanc
    to_all: float  # until every output is in Orthanc
    to_receipt: float  # until the node has the instance safe in its spool and journal
    compute: float  # the node's model compute for the image (preprocessing + BS-Net)
    report: "ReportSteps"  # the SR's path through the report task, as the node logged it


@dataclass
class ReportSteps:
    """The report task's steps up to the SR's C-STORE answer for one receipt (seconds), and when
    that answer came (seconds from the push)."""

    opened: float  # source read and result decoded
    built: float  # SR built (with the region map it is traced on)
    stored: float  # SR encoded and stored (fsync); journaled too where it is the only output
    sent: float  # association, C-STORE, Orthanc's answer, release
    sent_at: float


_DELIVER_LINE = r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO worker\.tasks: deliver: receipt (?P<id>\w+): "
_OPENED = re.compile(_DELIVER_LINE + r"source read and result decoded (?P<ms>\d+) ms$")
_SR_STEPS = re.compile(
    _DELIVER_LINE + r"sr built (?P<built>\d+) ms, encoded and stored (?P<stored>\d+) ms, sent (?P<sent>\d+) ms$"
)


def report_steps(log: Path) -> dict[str, tuple[re.Match, re.Match]]:
    """Receipt id -> its "source read" and "sr built ..." lines in the node's log."""
    lines = log.read_text().splitlines()
    opened = {m["id"]: m for m in map(_OPENED.match, lines) if m}
    return {m["id"]: (opened[m["id"]], m) for m in map(_SR_STEPS.match, lines) if m}


def _report(logged: tuple[re.Match, re.Match], pushed_at: datetime.datetime) -> ReportSteps:
    """One receipt's steps from its log lines (the node's local times, milliseconds)."""
    opened, steps = logged
    logged_at = datetime.datetime.strptime(steps["at"], "%Y-%m-%d %H:%M:%S,%f").astimezone(datetime.UTC)
    return ReportSteps(
        int(opened["ms"]) / 1e3, int(steps["built"]) / 1e3, int(steps["stored"]) / 1e3, int(steps["sent"]) / 1e3,
        (logged_at - pushed_at).total_seconds(),
    )


def push_latencies(work: Path, files: list[Path], outputs: tuple[str, ...], reference: float) -> list[Push]:
    """Push each file from Orthanc to the node building ``outputs``; the first warms up and is dropped.

    Orthanc is polled every 20 ms for the SR, but only from half the ``reference`` compute after
    the push: no SR can be there sooner, and polling during the compute would slow the compute
    it competes with for the CPU (about 100 ms per image on 2 cores)."""
    node_port = free_port()
    timings = {}
    name = "-".join(outputs)
    spool = work / f"spool-{name}"
    with redis_server(work / f"redis-{name}") as broker, orthanc_server(
        work / f"orthanc-{name}", {"node": (NODE_AET, LOOPBACK, node_port)}
    ) as orthanc:
        arguments = [
            "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port), "--spool", str(spool),
            "--broker-url", broker, "--untrained", "--destination", f"ORTHANC@{LOOPBACK}:{orthanc.dicom_port}",
        ]
        for kind in outputs:
            arguments += ["--outputs", kind]
        with node_process(work / f"node-{name}", arguments):
            wait_until(lambda: listening(node_port), 60, "node")
            for path in files:
                uploaded = orthanc.request("POST", "/instances", path.read_bytes())
                study = uploaded["ParentStudy"]
                pushed_at = datetime.datetime.now(datetime.UTC)
                start = time.perf_counter()
                orthanc.request("POST", "/modalities/node/store", {"Resources": [uploaded["ID"]], "Synchronous": False})
                time.sleep(reference / 2)
                modalities = wait_until(lambda s=study: series_with_sr(orthanc, s), 300, "the SR", interval=0.02)
                to_sr = time.perf_counter() - start
                if len(modalities) < 1 + len(outputs):
                    wait_until(lambda s=study: len(series_with_sr(orthanc, s) or []) >= 1 + len(outputs),
                               300, "every output", interval=0.02)
                timings[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = (
                    pushed_at, to_sr, time.perf_counter() - start
                )
        rows = {row["sop_instance_uid"]: row for row in node_status(spool)}
    logged = report_steps(work / f"node-{name}" / "serve.log")
    pushes = []
    for uid, (pushed_at, to_sr, to_all) in timings.items():
        received_at = datetime.datetime.fromisoformat(rows[uid]["received_at"])
        to_receipt = (received_at - pushed_at).total_seconds()
        report = _report(logged[rows[uid]["id"]], pushed_at)
        pushes.append(Push(to_sr, to_all, to_receipt, rows[uid]["compute_ms"] / 1000, report))
    return pushes[1:]


def overhead_parts(pushes: list[Push]) -> str:
    """The p50 of each part of the overhead beyond compute, in the order an image meets them."""
    parts = {
        "push to safe in the spool": [push.to_receipt for push in pushes],
        "report task: source read": [push.report.opened for push in pushes],
        "SR built": [push.report.built for push in pushes],
        "SR encoded and stored": [push.report.stored for push in pushes],
        "SR sent (association, C-STORE, Orthanc's answer)": [push.report.sent for push in pushes],
        "SR answered to SR listed by Orthanc (20 ms polling)": [push.to_sr - push.report.sent_at for push in pushes],
    }
    known = [sum(values) for values in zip(*parts.values(), strict=True)]
    parts["the rest: intake, the three queue hops, task dispatch"] = [
        push.to_sr - push.compute - part for push, part in zip(pushes, known, strict=True)
    ]
    return "; ".join(f"{name} {median_ms(values)}" for name, values in parts.items())


def latency_line(outputs: tuple[str, ...], pushes: list[Push], reference: float) -> str:
    to_sr = [push.to_sr for push in pushes]
    p95 = float(np.percentile(to_sr, 95))
    overhead = [push.to_sr - push.compute for push in pushes]
    after_receipt = [push.to_sr - push.to_receipt - push.compute for push in pushes]
    return (
        f"  - outputs {', '.join(outputs)}: SR in Orthanc p50 {median_ms(to_sr)}, p95 {p95 * 1e3:.0f} ms "
        f"(latency/reference compute {statistics.median(to_sr) / reference:.2f}); node's model compute p50 "
        f"{median_ms([push.compute for push in pushes])}; **overhead beyond compute at p50 = "
        f"{median_ms(overhead)}** (p95 {np.percentile(overhead, 95) * 1e3:.0f} ms; p50 latency minus the reference "
        f"compute: {(statistics.median(to_sr) - reference) * 1e3:.0f} ms), of which push to safe in "
        f"the node's spool {median_ms([push.to_receipt for push in pushes])} and safe receipt to SR in Orthanc "
        f"{median_ms(after_receipt)}; every output in Orthanc p50 {median_ms([push.to_all for push in pushes])}\n"
        f"    - the overhead's parts, p50 of each: {overhead_parts(pushes)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", help="append the results to this markdown file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dicom-node-bench-") as temporary:
        work = Path(temporary)
        files = radiograph_files(work / "files", FILES, SIDE)
        os.sync()  # each phase starts with no dirty pages left by the one before
        storescp_s, node_s, ratio = receive_ratio(work, files)
        os.sync()
        compute = model_compute(files[0])
        latencies = {
            outputs: push_latencies(work, files[: LATENCY_IMAGES + 1], outputs, compute) for outputs in OUTPUT_SETS
        }
    megabytes = FILES * SIDE * SIDE * 2 / 2**20
    text = "\n".join([
        f"### Round trip, {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}. Command: "
        "`.venv/bin/python bench/roundtrip.py`.",
        "",
        f"- Receive, {FILES} files of {SIDE}x{SIDE} 16-bit ({megabytes:.0f} MiB), one storescu association, "
        f"median of {ROUNDS} rounds: storescp {storescp_s:.2f} s, dicom-node (fsync + journal) {node_s:.2f} s; "
        f"**throughput ratio node/storescp = {ratio:.2f}** (target >= 1.0).",
        f"- Orthanc push -> SR in Orthanc, {LATENCY_IMAGES} images sent one at a time after one warm-up; "
        f"reference compute (Predictor.predict on the same image in this process: preprocessing, network "
        f"and what the maps are made of) {compute * 1e3:.0f} ms. Target: overhead beyond compute < 300 ms.",
        *[latency_line(outputs, values, compute) for outputs, values in latencies.items()],
        "",
    ])
    publish(text, args.write)


if __name__ == "__main__":
    main()
