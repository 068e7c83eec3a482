"""Broker-fed inference worker against the network alone (issue 13), same machine, same run.

1. Network alone: ``inference.Predictor`` in this process (untrained: speed does not depend on the
   weights) at the worker's batch size B, timing ``predict_batch`` on B prepared images (the Fuji
   chest CR prepared at 512 x 512 by ``inference.preprocessing``, repeated): the full per-batch
   path the worker runs (forward pass; lung masks, alignments and contributions to the host),
   median of ``--repeats`` runs after warm-up.
   The predictor is freed before step 2.
2. Broker-fed: a private redis-server on a free loopback port; ``--images`` N copies of that
   image queued for the inference worker as ``prepare`` queues them
   (``worker.tasks.queue_for_scoring``: each model input in Redis beside a small ``Prepared``
   message), held aside (their Redis lists renamed) while one ``dicom-node worker --queues
   inference --untrained --concurrency W`` (``--workers`` W, default 1: that many processes) starts
   at batch size B on the same device, and released (renamed back) once every process consumes;
   nothing consumes the "node" queue, where their report messages pile up (every priority list of
   it is counted).
   Throughput = (N - the reports already there) / (the time from the first report message to the
   N-th), so that the workers' start (model load, warm-up, compile) and the first batch's wait are
   left out; the start is reported apart.

Ratio = broker-fed / network alone (goal >= 0.8 on a GPU at the configured batch size); also the
batch sizes the workers logged ("infer: a batch of N") and their time per batch.

    .venv/bin/python bench/broker_fed.py [--device cuda] [--batch-size B] [--batch-wait-ms 20]
        [--precision fp32|bf16] [--compile] [--images N] [--repeats 5] [--workers 1[,2...]]
        [--scoring-threads 1[,2...]] [--cuda-graphs off|on|off,on] [--write docs/benchmarks.md]
"""

import argparse
import collections
import datetime
import gc
import json
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import pydicom  # noqa: E402
import redis  # noqa: E402
import torch  # noqa: E402
from kombu import pools  # noqa: E402
from kombu.transport.redis import PRIORITY_STEPS, Channel  # noqa: E402

from bench.common import machine, publish  # noqa: E402
from bench.inference import WARMUP, timed  # noqa: E402
from dicom_node.config import NodeSettings  # noqa: E402
from inference import Predictor  # noqa: E402
from inference.device import DEFAULT_BATCH, select_device  # noqa: E402
from inference.preprocessing import PreparedImage, prepare_dataset  # noqa: E402
from tests.conftest import FUJI_CR, require_path  # noqa: E402
from tests.servers import DICOM_NODE, redis_server, spawn, stop  # noqa: E402
from worker.app import INFERENCE_QUEUE, NODE_QUEUE, configure  # noqa: E402
from worker.messages import Prepared  # noqa: E402
from worker.serialization import encode_prepared  # noqa: E402
from worker.tasks import queue_for_scoring  # noqa: E402

BATCH_WAIT_MS = 20
IMAGES_PER_BATCH = 20  # default --images: this many batches
REPEATS = 5
GOAL = 0.8  # broker-fed / network alone, on a GPU at the configured batch size
START_S = 900.0  # worker start to its first report: model load, warm-up and a compile at most
SECONDS_PER_BATCH = 120.0  # then at most this per batch
POLL_S = 0.002  # how often the report lists are counted
BATCH_LOGGED = re.compile(r"infer: a batch of (\d+)")
SCORED_LOGGED = re.compile(r"infer: receipt \S+ scored")
READY_LOGGED = re.compile(r"(\S+)@\S+ ready\.")  # Celery's "<worker name> ready." once it consumes
PHASES_LOGGED = re.compile(r"infer: \d+ scored: decode (\d+) ms, network (\d+) ms, encode (\d+) ms")


@dataclass(frozen=True)
class Setup:
    """How both measurements run the network, and how many images the worker gets."""

    device: torch.device
    batch: int
    wait_ms: int
    precision: str
    compiled: bool
    images: int
    repeats: int
    workers: int
    scoring_threads: int  # batches each worker scores at once
    cuda_graphs: bool  # the network replayed as CUDA graphs (inference.cuda_graphs), in both measurements


@dataclass(frozen=True)
class Fed:
    """What the broker-fed workers did. Throughput is counted from the window's start: the first
    report message in Redis once every worker is consuming (its model loaded, warmed, compiled)."""

    images: int  # report messages waited for (N)
    start_s: float  # workers started to the window's start
    counted_from: int  # report messages in Redis at the window's start
    span_s: float  # the window's start to the last report message
    batches: list[int]  # batch sizes in the workers' logs, each worker's in order
    scored: int  # receipts the workers logged as scored
    message_bytes: int  # one Prepared message's JSON
    phases: list[tuple[int, int, int]]  # per batch but each worker's first, as logged: decode, network, encode (ms)

    @property
    def rate(self) -> float:
        """Images/s in the window: (N - the reports at its start) / its span."""
        return (self.images - self.counted_from) / self.span_s


def parse_arguments() -> tuple[list[Setup], str | None]:
    """The run's setups (one per --workers and --scoring-threads value) and the --write file, if any."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", help="e.g. cuda, cuda:1, cpu (default: the first GPU, else the CPU)")
    parser.add_argument("--batch-size", type=int, help=f"default: the device's ({DEFAULT_BATCH})")
    parser.add_argument("--batch-wait-ms", type=int, default=BATCH_WAIT_MS, help=f"default {BATCH_WAIT_MS}")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network (both measurements)")
    parser.add_argument("--images", type=int, help=f"messages published (default {IMAGES_PER_BATCH} x batch size)")
    parser.add_argument("--repeats", type=int, default=REPEATS, help=f"network-alone runs (default {REPEATS})")
    parser.add_argument("--workers", default="1",
                        help="inference worker processes on the device (the worker's --concurrency); a "
                             "comma-separated list measures each in turn (default 1)")
    parser.add_argument("--scoring-threads", default="1",
                        help="batches a worker scores at once; a comma-separated list measures each in turn "
                             "(default 1). Every setting of both lists is measured against the one "
                             "network-alone measurement")
    parser.add_argument("--cuda-graphs", default="off",
                        help="off, on, or off,on: the network replayed as CUDA graphs (both measurements; "
                             "each value measured in turn, against its own network-alone measurement)")
    parser.add_argument("--write", help="append the results to this markdown file")
    args = parser.parse_args()
    device = select_device(args.device)
    batch = args.batch_size if args.batch_size is not None else DEFAULT_BATCH.get(device.type, 1)
    workers = [int(value) for value in args.workers.split(",") if value.strip()]
    threads = [int(value) for value in args.scoring_threads.split(",") if value.strip()]
    graph_values = [value.strip() for value in args.cuda_graphs.split(",")]
    if not set(graph_values) <= {"off", "on"}:
        parser.error("--cuda-graphs takes off, on or off,on")
    graphs = [value == "on" for value in graph_values]
    if (batch < 1 or (args.images is not None and args.images < 2 * batch) or args.repeats < 1
            or args.batch_wait_ms < 0 or not workers or min(workers) < 1 or not threads or min(threads) < 1):
        parser.error(f"need --batch-size >= 1, --images >= 2 x batch size ({2 * batch}), --repeats >= 1, "
                     "--batch-wait-ms >= 0, --workers >= 1 and --scoring-threads >= 1")
    setups = [
        Setup(device, batch, args.batch_wait_ms, args.precision, args.compile,
              args.images or IMAGES_PER_BATCH * batch * count, args.repeats, count, at_once, graphed)
        for graphed in graphs for count in workers for at_once in threads
    ]
    return setups, args.write


def prepared_image() -> PreparedImage:
    """The Fuji chest CR (440 x 440, 10-bit) prepared for the model as the node's prepare task does."""
    return prepare_dataset(pydicom.dcmread(require_path(FUJI_CR)))


def median_batch_s(predictor: Predictor, images: list[PreparedImage], repeats: int) -> float:
    synchronise = torch.cuda.synchronize if predictor.device.type == "cuda" else (lambda: None)
    return timed(lambda: predictor.predict_batch(images), repeats, synchronise)


def network_alone(setup: Setup, image: PreparedImage) -> float:
    """Median seconds of Predictor.predict_batch on ``setup.batch`` prepared images in this
    process; the predictor is freed before returning."""
    predictor = Predictor(
        allow_untrained=True, device=setup.device, batch_size=setup.batch, precision=setup.precision,
        compiled=setup.compiled, cuda_graphs=int(setup.cuda_graphs),
    )
    try:
        return median_batch_s(predictor, [image] * setup.batch, setup.repeats)
    finally:
        del predictor
        gc.collect()
        if setup.device.type == "cuda":
            torch.cuda.empty_cache()


def queue_keys(queue: str) -> list[str]:
    """The Redis lists of ``queue``, one per kombu priority step (priority 0: the queue's name)."""
    return [queue if step == 0 else f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS]


def move_lists(client: redis.Redis, sources: list[str], targets: list[str]) -> None:
    """Rename each existing list of ``sources`` to its ``targets`` name at once (MULTI/EXEC); a
    consumer blocked on a target is woken."""
    with client.pipeline(transaction=True) as pipeline:
        for source, target in zip(sources, targets, strict=True):
            if client.exists(source):
                pipeline.rename(source, target)
        pipeline.execute()


def count_reports(client: redis.Redis, keys: list[str]) -> int:
    pipeline = client.pipeline(transaction=False)
    for key in keys:
        pipeline.llen(key)
    return sum(pipeline.execute())


def publish_prepared(image: PreparedImage, count: int) -> int:
    """Queue ``count`` images for ``infer`` as ``prepare`` does (``queue_for_scoring``: each
    model input in the broker's Redis, its header in the message); returns one message's JSON bytes."""
    for index in range(count):
        queue_for_scoring(f"bench-{index:05d}", "bench", image, 0.0)
    return len(json.dumps(Prepared("bench-00000", "bench", encode_prepared(image)[0], 0.0).to_json()))


def worker_command(setup: Setup, broker_url: str, spool: Path) -> list[str]:
    command = [
        *DICOM_NODE, "worker", "--queues", "inference", "--untrained", "--broker-url", broker_url,
        "--spool", str(spool), "--device", str(setup.device), "--batch-size", str(setup.batch),
        "--batch-wait-ms", str(setup.wait_ms), "--precision", setup.precision,
        "--scoring-threads", str(setup.scoring_threads), "--concurrency", str(setup.workers),
    ]
    return [*command, "--compile" if setup.compiled else "--no-compile",
            "--cuda-graphs" if setup.cuda_graphs else "--no-cuda-graphs"]


def log_tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


def read_log(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def wait_for(done: Callable[[], bool], worker: subprocess.Popen, log: Path, what: str, timeout: float) -> float:
    """Poll ``done`` until it holds; returns perf_counter() then. Fails if the worker command exits
    or ``timeout`` seconds pass first."""
    deadline = time.perf_counter() + timeout
    while True:
        if done():
            return time.perf_counter()
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with status {worker.returncode}; its log ends:\n{log_tail(log)}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"not {what} after {timeout:.0f} s; the worker's log ends:\n{log_tail(log)}")
        time.sleep(POLL_S)


def broker_fed(setup: Setup, image: PreparedImage, work: Path, broker_url: str) -> Fed:
    """One run of the workers of ``setup``, fed from the empty redis-server at ``broker_url`` (emptied
    again after)."""
    client = redis.Redis.from_url(broker_url)
    try:
        message_bytes = publish_prepared(image, setup.images)
        keys = queue_keys(NODE_QUEUE)
        queued, held = queue_keys(INFERENCE_QUEUE), queue_keys("bench-held")
        move_lists(client, queued, held)
        work.mkdir(parents=True, exist_ok=True)
        log = work / "worker.log"
        started = time.perf_counter()
        worker = spawn(worker_command(setup, broker_url, work / "spool"), log)
        try:
            wait_for(lambda: len(set(READY_LOGGED.findall(read_log(log)))) == setup.workers, worker, log,
                     "every worker process consuming", START_S)
            move_lists(client, held, queued)
            wait_for(lambda: count_reports(client, keys) >= 1, worker, log, "a first report", START_S)
            window = time.perf_counter()
            counted_from = count_reports(client, keys)
            if counted_from >= setup.images:
                raise RuntimeError(f"every image was scored before all {setup.workers} workers consumed: queue more "
                                   "(--images)")
            batches = -(-setup.images // setup.batch)
            last = wait_for(lambda: count_reports(client, keys) >= setup.images, worker, log,
                            f"{setup.images} reports", SECONDS_PER_BATCH * batches)
        finally:
            stop(worker)
    finally:
        client.flushall()
        client.close()
    text = read_log(log)
    batches_logged = [int(size) for size in BATCH_LOGGED.findall(text)]
    scored = len(SCORED_LOGGED.findall(text))
    # each process's first batch left out (the processes' lines are interleaved: the first W)
    phases = [(int(d), int(n), int(e)) for d, n, e in PHASES_LOGGED.findall(text)[setup.workers:]]
    return Fed(setup.images, window - started, counted_from, last - window, batches_logged, scored, message_bytes,
               phases)


def phase_summary(setup: Setup, fed: Fed) -> str:
    """Median decode, network and encode ms per batch as the workers logged them (each worker's
    first batch left out), and, where each worker scores one batch at a time, the rest of a
    batch's share of the window (taking messages, Celery, queueing results)."""
    if not fed.phases:
        return "not logged"
    decode, network, encode = (statistics.median(column) for column in zip(*fed.phases, strict=True))
    logged = (f"decode {decode:.0f} ms, network {network:.0f} ms, encode {encode:.0f} ms (medians of "
              f"{len(fed.phases)} batches)")
    if setup.scoring_threads > 1:
        return f"{logged}; a worker's batches overlap, so these times include waiting for each other"
    per_batch_ms = fed.span_s * 1e3 * setup.workers / len(fed.phases)
    rest = per_batch_ms - decode - network - encode
    return (f"{logged}; window x workers / batches {per_batch_ms:.0f} ms, so about {rest:.0f} ms per batch "
            "elsewhere (taking messages, Celery, queueing results)")


def batch_summary(batches: list[int]) -> str:
    """e.g. "32 x 19, 12 x 1 (in order: 32, 32, ...)" for a few batches, counts alone for many."""
    counts = ", ".join(f"{size} x {times}" for size, times in collections.Counter(batches).most_common())
    order = f" (in order: {', '.join(map(str, batches))})" if len(batches) <= 40 else ""
    return f"{len(batches)} batches: {counts}{order}"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads here)"


def verdict(setup: Setup, ratio: float) -> str:
    if setup.device.type != "cuda":
        return f"the goal (>= {GOAL:g}) is for a GPU: not judged on the CPU"
    return f"goal >= {GOAL:g}: {'met' if ratio >= GOAL else 'not met'}"


def report(setup: Setup, alone_s: float, fed: Fed, command: str) -> str:
    alone_rate = setup.batch / alone_s
    ratio = fed.rate / alone_rate
    options = (f"batch {setup.batch}, {setup.precision}, channels_last{', compiled' if setup.compiled else ''}"
               f"{', CUDA graphs' if setup.cuda_graphs else ''}, "
               f"{setup.scoring_threads} scoring thread{'s' if setup.scoring_threads > 1 else ''} a worker")
    workers = f"`dicom-node worker --queues inference --concurrency {setup.workers}`"
    return "\n".join([
        f"### Broker-fed inference worker, {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}, Python {platform.python_version()}, torch {torch.__version__}; device "
        f"{device_name(setup.device)}; {options}, batch wait {setup.wait_ms} ms. Command: `{command}`. Images: the "
        f"Fuji chest CR prepared at 512 x 512, repeated; untrained network (speed does not depend on the weights).",
        "",
        f"- Network alone (Predictor.predict_batch of {setup.batch} prepared images in the benchmark process: "
        f"forward pass; lung masks, alignments, contributions; median of {setup.repeats} runs after {WARMUP} "
        f"warm-up runs): "
        f"{alone_s * 1e3:.1f} ms/batch = {alone_rate:.2f} images/s",
        f"- Broker-fed ({workers}, {setup.images} Prepared messages of {fed.message_bytes} bytes of JSON each, "
        f"their model inputs beside them, queued in a private redis-server before they started and held aside "
        "until every process consumed): "
        f"{fed.rate:.2f} images/s = (N - the "
        f"{fed.counted_from} reports already there) / {fed.span_s:.2f} s from the first report message once every "
        f"worker consumed to the last of {setup.images}; start to then {fed.start_s:.1f} s (model load, "
        f"warm-up{', compile' if setup.compiled else ''}, first batch); {fed.scored} of {setup.images} logged as "
        "scored",
        f"- Batches logged: {batch_summary(fed.batches)}",
        f"- A worker's time per batch: {phase_summary(setup, fed)}",
        f"- **Broker-fed / network alone = {ratio:.2f}** ({verdict(setup, ratio)})",
        "- Not measured: the prepare and report stages (no DICOM decoding, no outputs, no journal, no PACS: "
        "the report messages are only counted in Redis, never consumed), a broker on another machine, images "
        "arriving while the workers run (all were queued before they started), and different images (one image "
        "repeated).",
        "",
    ])


def main() -> None:
    setups, write = parse_arguments()
    image = prepared_image()
    alone_s: dict[bool, float] = {}  # seconds per batch, CUDA graphs or not
    for graphed in dict.fromkeys(setup.cuda_graphs for setup in setups):
        try:
            alone_s[graphed] = network_alone(next(s for s in setups if s.cuda_graphs == graphed), image)
        except Exception as error:  # CUDA graphs that cannot be captured here: the other settings still run
            publish(f"### Network alone, CUDA graphs {'on' if graphed else 'off'}: failed\n\n```\n{error!r}\n```\n",
                    write)
            continue
        print(f"network alone{' (CUDA graphs)' if graphed else ''}: {alone_s[graphed] * 1e3:.1f} ms per batch of "
              f"{setups[0].batch}", flush=True)
    setups = [setup for setup in setups if setup.cuda_graphs in alone_s]
    command = shlex.join([".venv/bin/python", "bench/broker_fed.py", *sys.argv[1:]])
    with (
        tempfile.TemporaryDirectory(prefix="dicom-node-broker-fed-") as temporary,
        redis_server(Path(temporary) / "redis") as broker_url,
    ):
        configure(NodeSettings(untrained=True), broker_url)
        for index, setup in enumerate(setups):
            try:
                fed = broker_fed(setup, image, Path(temporary) / f"run-{index}", broker_url)
            except (RuntimeError, TimeoutError) as error:  # a worker that exits or stalls: the next setting runs
                publish(f"### Broker-fed inference worker: {setup} failed\n\n```\n{error}\n```\n", write)
                continue
            if sum(fed.batches) != setup.images:
                print(f"note: the worker logged {sum(fed.batches)} images in batches, {setup.images} were queued")
            publish(report(setup, alone_s[setup.cuda_graphs], fed, command), write)
        pools.reset()  # close the app's connections before the redis-server stops


if __name__ == "__main__":
    main()
