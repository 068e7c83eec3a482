"""Backlog benchmark (issue 13): a burst of images sent at once to one node.

The node runs as ``dicom-node serve`` does by default: its own private redis-server and one worker
in its process (``--untrained``: no weights needed; speed does not depend on them), on free
loopback ports, sending its results to dcmtk's storescp, also started here on a free port (with
TCP_NODELAY=1, as docs/operations.md advises for Debian's DCMTK). The
images are copies of the Fuji chest CR at its own size (440 x 440, 10-bit), each with new Study,
Series and SOP Instance UIDs. In order:

1. reference: Predictor.predict on the same image in this process, before the node starts;
2. idle: one warm-up image, then IDLE_IMAGES images sent one at a time, each waited for;
3. burst: ``--images`` images (default 200) sent at once by storescu over one association.

A result is the image's SR stored by the destination (``--all-outputs``: the node's default four
outputs, a result then being all four stored). Times come from the node's journal: ``received_at``
(the instance safe in the spool) and the ``delivered`` transition (``updated_at``: every output
stored by the destination), on the system clock in UTC like the send start, which is stamped here
just before storescu starts. Reported: time to the first result, p50/p95 latency per image from the
send start and from its own receipt, drain time and rate, and the ratios first result / idle
latency (goal <= 3) and drain rate / (1 / per-image compute) (goal >= 0.9 with one worker process),
where per-image compute is the node's own (journal ``compute_ms``: preprocessing + BS-Net), p50
over the burst's images.

    .venv/bin/python bench/backlog.py [--images 200] [--all-outputs] [--write docs/benchmarks.md]
"""

import argparse
import datetime
import os
import shlex
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import machine, median_ms, model_compute, publish, radiograph_files, send_all  # noqa: E402
from dicom_node.config import NodeSettings  # noqa: E402
from dicom_node.journal import Journal, Receipt, State  # noqa: E402
from tests.servers import LOOPBACK, free_port, listening, node_process, storescp_server, wait_until  # noqa: E402

IMAGES = 200
IDLE_IMAGES = 3
NODE_AET = "BENCH_NODE"
DESTINATION_AET = "RESULTS"
SR_ONLY = ("sr",)
FIRST_RESULT_GOAL = 3.0  # first result / idle latency, at most
DRAIN_GOAL = 0.9  # drain rate / (1 / per-image compute), at least
START_S = 180.0  # for the first result of a send (the worker may still be loading its model) ...
SECONDS_PER_IMAGE = 30.0  # ... and this much more per image sent
POLL_S = 0.5  # the journal's timestamps time the results: polling only notices them


@dataclass(frozen=True)
class Result:
    """One image's journal times, in seconds from the start of the send that carried it."""

    received: float  # safe in the node's spool and journal
    delivered: float  # every output stored by the destination
    compute: float  # the node's model compute: preprocessing + BS-Net

    @property
    def after_receipt(self) -> float:
        return self.delivered - self.received


@dataclass(frozen=True)
class Measurement:
    reference: float  # Predictor.predict on the same image in this process, seconds
    idle: list[Result]  # images sent one at a time to the idle node
    burst: list[Result]  # images sent at once
    sending: float  # seconds storescu took to send the burst


def sop_instance_uids(files: list[Path]) -> set[str]:
    return {str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in files}


def finished(journal: Journal, uids: set[str]) -> list[Receipt] | None:
    """The receipts of ``uids`` once every one is delivered, else None; an error as soon as one
    ended otherwise (skipped or failed)."""
    ended = [
        receipt for receipt in journal.in_states((State.DELIVERED, State.SKIPPED, State.FAILED))
        if receipt.sop_instance_uid in uids
    ]
    lost = [receipt for receipt in ended if receipt.state != State.DELIVERED]
    if lost:
        raise RuntimeError(f"{len(lost)} image(s) not delivered; first: {lost[0].state}: {lost[0].reason}")
    return ended if len(ended) == len(uids) else None


def seconds_from(start: datetime.datetime, stamp: str) -> float:
    return (datetime.datetime.fromisoformat(stamp) - start).total_seconds()


def send_and_wait(files: list[Path], port: int, journal: Journal) -> tuple[list[Result], float]:
    """Send ``files`` at once (one storescu association) and wait until every result is delivered;
    their times and the seconds storescu took."""
    uids = sop_instance_uids(files)
    started = datetime.datetime.now(datetime.UTC)
    sending = send_all(files, port, NODE_AET)
    receipts = wait_until(
        lambda: finished(journal, uids), START_S + SECONDS_PER_IMAGE * len(files), "every result", interval=POLL_S
    )
    results = [
        Result(seconds_from(started, r.received_at), seconds_from(started, r.updated_at), r.compute_ms / 1000)
        for r in receipts
    ]
    return results, sending


def node_arguments(spool: Path, port: int, destination_port: int, outputs: tuple[str, ...]) -> list[str]:
    """``dicom-node serve`` with its embedded broker and worker; no ``outputs``: its default set."""
    arguments = [
        "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(port), "--spool", str(spool), "--untrained",
        "--destination", f"{DESTINATION_AET}@{LOOPBACK}:{destination_port}",
    ]
    for kind in outputs:
        arguments += ["--outputs", kind]
    return arguments


def measure(work: Path, images: int, outputs: tuple[str, ...]) -> Measurement:
    files = radiograph_files(work / "files", 1 + IDLE_IMAGES + images)
    os.sync()  # no dirty pages left to slow the node's fsyncs
    reference = model_compute(files[0])  # before the node starts: nothing else competes for the CPU
    spool, node_port = work / "spool", free_port()
    with storescp_server(work / "destination", DESTINATION_AET) as destination_port, node_process(
        work / "node", node_arguments(spool, node_port, destination_port, outputs)
    ):
        wait_until(lambda: listening(node_port), 60, "the node to listen")
        journal = Journal(NodeSettings(spool=spool).journal_path)
        try:
            send_and_wait(files[:1], node_port, journal)  # warm-up, dropped
            idle = [send_and_wait([path], node_port, journal)[0][0] for path in files[1 : 1 + IDLE_IMAGES]]
            burst, sending = send_and_wait(files[1 + IDLE_IMAGES :], node_port, journal)
        finally:
            journal.close()
    return Measurement(reference, idle, burst, sending)


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def p50_p95(values: list[float]) -> str:
    return f"p50 {seconds(statistics.median(values))}, p95 {seconds(float(np.percentile(values, 95)))}"


def report(measurement: Measurement, outputs: tuple[str, ...], command: str) -> str:
    idle, burst = measurement.idle, measurement.burst
    idle_latency = statistics.median(result.delivered for result in idle)
    first = min(result.delivered for result in burst)
    drain = max(result.delivered for result in burst)
    rate = len(burst) / drain
    compute = statistics.median(result.compute for result in burst)
    result_is = "its SR" if outputs == SR_ONLY else "all four outputs"
    return "\n".join([
        f"### Backlog, {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}. Command: `{command}`. Node: `dicom-node serve --untrained` with its own "
        f"redis-server and one worker in its process, outputs {', '.join(outputs) or 'default (all four)'}; "
        f"destination dcmtk's storescp (TCP_NODELAY=1). A result: {result_is} stored by the destination. "
        "Clock: the system clock (UTC, ms); send start stamped by the benchmark just before storescu starts, "
        "receipt (safe in the spool) and result (`delivered`) by the node's journal.",
        "",
        f"- Single image, idle node (median of {len(idle)} sent one at a time after a warm-up): result "
        f"{median_ms(result.delivered for result in idle)} after the send start; the node's compute (journal "
        f"`compute_ms`: preprocessing + BS-Net) {median_ms(result.compute for result in idle)}; reference "
        f"Predictor.predict on the same image in this process {measurement.reference * 1e3:.0f} ms.",
        f"- Burst: {len(burst)} images sent at once over one storescu association in {seconds(measurement.sending)}; "
        f"the last safe in the spool {seconds(max(result.received for result in burst))} after the send start.",
        f"  - first result after {seconds(first)}: **first result / idle latency = {first / idle_latency:.2f}** "
        f"(goal <= {FIRST_RESULT_GOAL:g})",
        f"  - latency per image: from the send start {p50_p95([result.delivered for result in burst])}; from its "
        f"receipt safe in the spool to its result {p50_p95([result.after_receipt for result in burst])}",
        f"  - drain: the last result {seconds(drain)} after the send start = {rate:.3f} images/s; the node's "
        f"compute p50 {compute * 1e3:.0f} ms over the burst ({1 / compute:.3f} images/s); **drain rate / "
        f"(1 / compute) = {rate * compute:.2f}** (goal >= {DRAIN_GOAL:g}, one worker process; against the "
        f"reference compute: {rate * measurement.reference:.2f})",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=IMAGES, help=f"images in the burst (default {IMAGES})")
    parser.add_argument(
        "--all-outputs", action="store_true", help="the node's default four outputs instead of the SR alone"
    )
    parser.add_argument("--write", help="append the results to this markdown file")
    args = parser.parse_args()
    if args.images < 1:
        parser.error("--images must be at least 1")
    outputs = () if args.all_outputs else SR_ONLY
    with tempfile.TemporaryDirectory(prefix="dicom-node-bench-") as temporary:
        measurement = measure(Path(temporary), args.images, outputs)
    command = shlex.join([".venv/bin/python", "bench/backlog.py", *sys.argv[1:]])
    publish(report(measurement, outputs, command), args.write)


if __name__ == "__main__":
    main()
