"""BS-Net inference speed.

CPU (skipped with --no-cpu): ms/image at batch 1 and 8; reference = the ResNet-18 backbone alone.
CUDA: the network alone at batch 1/8/32/64/128, fp32 and bf16 autocast, channels_last, eager and
torch.compile (a fresh compile per shape, dynamic=False; the compile time is reported apart from
the steady-state speed), as images/s, TFLOP/s and the fraction of the GPU's dense peak, and as a
ratio to fp32 eager batch 1 in the same process. Every row is printed (and appended to --write)
as soon as it is measured; a configuration that would end after --gpu-budget-s seconds since the
start is reported "not measured: time budget" instead of run.
The inference worker fed from the broker, against this network alone: bench/broker_fed.py.

    .venv/bin/python bench/inference.py [--no-cpu] [--gpu-budget-s 420] [--write docs/benchmarks.md]

Needs only torch and numpy besides the repository's inference package (the network's modules do
not import pydicom, OpenCV or Pillow).
"""

import argparse
import datetime
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STARTED = time.monotonic()  # the time budget counts from here, torch's import included

# This file is named like the package it measures: drop its own folder from the import path so
# that "inference" means the package, whether run as a script or with "python -m bench.inference";
# put this checkout first, so that it runs without the package installed.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import torch  # noqa: E402

from inference.model_info import describe  # noqa: E402  (torch only: no pydicom, OpenCV or Pillow)
from inference.model_spec import BSNET_SPEC  # noqa: E402

# Dense (no sparsity) peak TFLOP/s by device name fragment: (fp32 without tensor cores, TF32 tensor
# core, bf16 tensor core). fp32 rows are judged against TF32 where cuDNN may use it for convolutions
# (torch.backends.cudnn.allow_tf32, on by default), since then they run on the tensor cores.
PEAK_TFLOPS = {
    "H200": (67.0, 494.7, 989.0),
    "H100 SXM": (67.0, 494.7, 989.0),
    "H100 80GB HBM3": (67.0, 494.7, 989.0),
    "H100 PCIe": (51.0, 378.0, 756.0),
    "H100": (67.0, 494.7, 989.0),
    "A100": (19.5, 156.0, 312.0),
    "L4": (30.3, 60.0, 121.0),
}
GPU_BATCHES = (1, 8, 32, 64, 128)
TARGET_FRACTION = 0.25  # of the bf16 dense peak, at the best setting
WARMUP = 2
FIRST_COMPILE_GUESS_S = 60.0  # before any compile has been timed in this process
PRECISION_LABELS = {torch.float32: "fp32", torch.bfloat16: "bf16 autocast"}


class Report:
    """Rows printed and appended to the markdown file as soon as they exist (a run cut short keeps them)."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def emit(self, *lines: str) -> None:
        text = "\n".join(lines)
        print(text, flush=True)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as stream:
                stream.write(text + "\n")


def elapsed() -> float:
    return time.monotonic() - STARTED


def timed(run: Callable[[], object], repeats: int, synchronise: Callable[[], None]) -> float:
    """Median seconds of ``run`` over ``repeats`` calls after ``WARMUP`` warm-up calls."""
    for _ in range(WARMUP):
        run()
    synchronise()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        synchronise()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def cpu_rows(repeats: int, build: Callable[[], torch.nn.Module]) -> list[str]:
    model = build().eval().to(memory_format=torch.channels_last)  # as the Predictor runs it
    rows = []
    with torch.inference_mode():
        for batch in (1, 8):
            images = torch.rand(batch, 1, 512, 512).contiguous(memory_format=torch.channels_last)
            full = timed(lambda x=images: model(x), repeats, lambda: None) / batch
            backbone = timed(lambda x=images: model.backbone(x), repeats, lambda: None) / batch
            rows.append(
                f"| CPU fp32 channels_last | {batch} | {full * 1e3:.0f} ms/image | {1 / full:.2f} images/s | "
                f"{full / backbone:.2f}x the ResNet-18 backbone alone ({backbone * 1e3:.0f} ms) |"
            )
    return rows


@dataclass(frozen=True)
class Config:
    """One measurement: precision, batch size and compile mode (None: eager)."""

    dtype: torch.dtype
    batch: int
    mode: str | None = None

    @property
    def precision(self) -> str:
        return PRECISION_LABELS[self.dtype]

    def label(self, compile_note: str = "") -> str:
        if self.mode is None:
            return f"{self.precision} channels_last eager"
        return f"{self.precision} channels_last compiled ({self.mode}, dynamic=False{compile_note})"


def gpu_plan(batches: tuple[int, ...], autotune_batches: tuple[int, ...], compile_mode: str) -> list[Config]:
    """Most wanted first, since the time budget may cut the end: the reference (fp32 eager batch
    1), the eager runs (seconds), bf16 compiled from the largest batch down, the bounded autotune
    runs, fp32 compiled."""
    fp32, bf16 = torch.float32, torch.bfloat16
    largest_first = sorted(batches, reverse=True)
    plan = [Config(fp32, 1)]
    plan += [Config(fp32, b) for b in batches] + [Config(bf16, b) for b in batches]
    plan += [Config(bf16, b, compile_mode) for b in largest_first]
    plan += [Config(bf16, b, "max-autotune-no-cudagraphs") for b in autotune_batches]
    plan += [Config(fp32, b, compile_mode) for b in largest_first]
    return list(dict.fromkeys(plan))


def forward(net: Callable, images: torch.Tensor, dtype: torch.dtype, device: torch.device) -> Callable[[], None]:
    """One inference call of ``net`` on ``images``, under bf16 autocast unless ``dtype`` is fp32."""

    def run() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            net(images)

    return run


def compile_counts() -> str:
    """Graphs and graph breaks Dynamo recorded since the last reset (private API: best effort)."""
    try:
        from torch._dynamo.utils import counters

        graphs = counters["stats"]["unique_graphs"]
        breaks = sum(counters["graph_break"].values())
        return f", {graphs} graph{'s' if graphs != 1 else ''}, {breaks} break{'s' if breaks != 1 else ''}"
    except Exception:
        return ""


def reset_compiler() -> None:
    torch._dynamo.reset()
    try:
        from torch._dynamo.utils import counters

        counters.clear()
    except Exception:
        pass


def cell(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".replace("|", "/").replace("\n", " ")
    return text[:200]


def gpu_rows(
    report: Report,
    build: Callable[[], torch.nn.Module],
    flops: int,
    repeats: int,
    budget_s: float,
    plan: list[Config],
    device: torch.device,
    size: int = 512,
) -> dict | None:
    """Measure ``plan`` on ``device`` and emit one row per configuration as it ends; return the
    best measured configuration (highest images/s) as a dict, or None."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type.upper()
    peaks = next((p for key, p in PEAK_TFLOPS.items() if key in name), None)
    tf32 = torch.backends.cudnn.allow_tf32
    synchronise = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model = build().eval().to(device).to(memory_format=torch.channels_last)
    reference, best = None, None
    eager_rates: dict[tuple[torch.dtype, int], float] = {}
    compile_seen: dict[str, float] = {}

    def expected_s(config: Config) -> float:
        rate = eager_rates.get((config.dtype, config.batch)) or eager_rates.get((torch.float32, 1)) or 20.0
        steady = (WARMUP + repeats + 1) * config.batch / rate + 1.0
        if config.mode is None:
            return steady
        if config.mode in compile_seen:
            guess = compile_seen[config.mode]
        elif compile_seen:  # a new mode: twice the slowest compile so far
            guess = 2.0 * max(compile_seen.values())
        else:
            guess = FIRST_COMPILE_GUESS_S
        return 1.25 * guess + steady

    for index, config in enumerate(plan):
        label = f"{name} {config.label()}"
        need = expected_s(config)
        if elapsed() + need > budget_s:
            report.emit(
                f"| {label} | {config.batch} | not measured: time budget ({elapsed():.0f} s used of "
                f"{budget_s:.0f} s, about {need:.0f} s needed) | | |"
            )
            continue
        images = torch.rand(config.batch, 1, size, size, device=device).contiguous(memory_format=torch.channels_last)
        net, compile_note = model, ""
        run = forward(model, images, config.dtype, device)
        try:
            if config.mode is not None:
                reset_compiler()
                net = torch.compile(model, mode=config.mode, dynamic=False)
                run = forward(net, images, config.dtype, device)
                start = time.perf_counter()
                run()  # compiles this shape
                synchronise()
                compile_s = time.perf_counter() - start
                compile_seen[config.mode] = max(compile_seen.get(config.mode, 0.0), compile_s)
                compile_note = f"; compile {compile_s:.1f} s{compile_counts()}"
            seconds = timed(run, repeats, synchronise)
            if config.mode is not None and compile_note != f"; compile {compile_s:.1f} s{compile_counts()}":
                compile_note += f"; recompiled while timed: now{compile_counts()}"
        except KeyboardInterrupt:
            for rest in plan[index:]:
                report.emit(f"| {name} {rest.label()} | {rest.batch} | not measured: interrupted | | |")
            break
        except Exception as error:  # out of memory, a compile failing on some stack: report, go on
            report.emit(f"| {name} {config.label(compile_note)} | {config.batch} | failed: {cell(error)} | | |")
            continue
        finally:
            del images, net, run
            if config.mode is not None:
                reset_compiler()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        rate = config.batch / seconds
        if config.mode is None:
            eager_rates[(config.dtype, config.batch)] = rate
        if config == Config(torch.float32, 1):
            reference = rate
        ratio = f"{rate / reference:.2f}x fp32 eager batch 1" if reference else "no reference (fp32 eager batch 1)"
        achieved = rate * flops / 1e12
        peak = (peaks[2] if config.dtype == torch.bfloat16 else peaks[1 if tf32 else 0]) if peaks else None
        fraction = f"{achieved / peak:.1%} of {peak:.0f}" if peak else "peak unknown"
        report.emit(
            f"| {name} {config.label(compile_note)} | {config.batch} | {rate:.1f} images/s "
            f"({seconds * 1e3:.1f} ms/batch) | {achieved:.1f} TFLOP/s ({fraction}) | "
            f"{ratio} |"
        )
        if best is None or rate > best["rate"]:
            best = {"config": config, "rate": rate, "achieved": achieved, "label": config.label(compile_note)}
    if best is not None:
        bf16_peak = peaks[2] if peaks else None
        if bf16_peak:
            share = best["achieved"] / bf16_peak
            verdict = "met" if share >= TARGET_FRACTION else "not met"
            summary = (
                f"{share:.1%} of the bf16 dense peak ({bf16_peak:.0f} TFLOP/s): target >= {TARGET_FRACTION:.0%} "
                f"{verdict}"
            )
        else:
            summary = "bf16 dense peak unknown for this device"
        best["summary"] = (
            f"Best setting: {best['label']}, batch {best['config'].batch}: {best['rate']:.1f} images/s, "
            f"{best['achieved']:.1f} TFLOP/s = {summary}."
        )
    return best


def parse_batches(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", help="append the results to this markdown file (row by row)")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU rows")
    parser.add_argument(
        "--gpu-budget-s",
        type=float,
        default=420.0,
        help="seconds since start after which no GPU configuration starts (default 420)",
    )
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode of the compiled sweep")
    parser.add_argument(
        "--autotune-batches",
        default="64,128",
        help="bf16 batches also compiled with mode max-autotune-no-cudagraphs, budget permitting ('' for none)",
    )
    parser.add_argument("--no-cudnn-benchmark", action="store_true", help="leave cudnn.benchmark off")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a SIGTERM ends the sweep as Ctrl-C does
    info = describe(BSNET_SPEC)
    cuda = torch.cuda.is_available()
    torch.backends.cudnn.benchmark = cuda and not args.no_cudnn_benchmark  # as inference.Predictor runs
    gpu = ""
    if cuda:
        gpu = (
            f" GPU {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}, cuDNN "
            f"{torch.backends.cudnn.version()} (TF32 convolutions {torch.backends.cudnn.allow_tf32}, matmul "
            f"{torch.backends.cuda.matmul.allow_tf32}; cudnn.benchmark {torch.backends.cudnn.benchmark})."
        )
    report = Report(args.write)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as stream:
            stream.write("\n")
    report.emit(
        f"### BS-Net inference, {datetime.date.today().isoformat()}",
        "",
        f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads); model "
        f"{info.name} {info.version}, {info.parameters:,} weights, {info.flops_per_image / 1e9:.1f} GFLOPs/image "
        f"at 512x512. Median of {args.repeats} runs after {WARMUP} warm-up runs, random weights (speed does not "
        f"depend on them); compiled: a fresh torch.compile per shape, its first call timed as the compile.{gpu} "
        f"Command: `bench/inference.py {' '.join(sys.argv[1:])}`.",
        "",
        "| run | batch | speed | throughput | ratio to the reference in the same process |",
        "|---|---|---|---|---|",
    )
    if args.no_cpu:
        report.emit("| CPU | - | not measured: --no-cpu | | |")
    else:
        report.emit(*cpu_rows(args.repeats, BSNET_SPEC.build))
    if not cuda:
        report.emit("| GPU | - | not measured: no CUDA device on this machine | | |")
        return
    plan = gpu_plan(GPU_BATCHES, parse_batches(args.autotune_batches), args.compile_mode)
    best = gpu_rows(
        report, BSNET_SPEC.build, info.flops_per_image, args.repeats, args.gpu_budget_s, plan, torch.device("cuda")
    )
    report.emit("", best["summary"] if best else "Best setting: nothing measured.", f"Total {elapsed():.0f} s.")


if __name__ == "__main__":
    main()
