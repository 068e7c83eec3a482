"""BS-Net inference speed: CPU ms/image at batch 1 and 8; on CUDA, images/s at batch
1/8/32/64 in fp32 and bf16 (channels_last, torch.compile tried) and the fraction of the GPU's
dense peak FLOP rate. Every figure is also given as a ratio to a reference run in the same
process: the ResNet-18 backbone alone on CPU, fp32 eager batch 1 on GPU.

    .venv/bin/python bench/inference.py [--write docs/benchmarks.md]
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# This file is named like the package it measures: drop its own folder from the import path so
# that "inference" means the package, whether run as a script or with "python -m bench.inference".
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from inference.model_info import describe  # noqa: E402
from inference.model_spec import BSNET_SPEC  # noqa: E402
from inference.predictor import build_untrained  # noqa: E402

# Dense (no sparsity) peak TFLOP/s by device name fragment: (fp32 non-tensor, bf16 tensor core).
PEAK_TFLOPS = {
    "H200": (67.0, 989.0),
    "H100 SXM": (67.0, 989.0),
    "H100 80GB HBM3": (67.0, 989.0),
    "H100 PCIe": (51.0, 756.0),
    "H100": (67.0, 989.0),
    "A100": (19.5, 312.0),
    "L4": (30.3, 121.0),
}


def timed(run: Callable[[], object], repeats: int, synchronise: Callable[[], None]) -> float:
    """Median seconds of ``run`` over ``repeats`` calls after two warm-up calls."""
    for _ in range(2):
        run()
    synchronise()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        synchronise()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def cpu_rows(repeats: int) -> list[str]:
    model = build_untrained(BSNET_SPEC).eval().to(memory_format=torch.channels_last)  # as the Predictor runs it
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


def gpu_rows(repeats: int, flops: int) -> list[str]:
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peaks = next((p for key, p in PEAK_TFLOPS.items() if key in name), None)
    base_model = build_untrained(BSNET_SPEC).eval().to(device)
    sync = torch.cuda.synchronize
    rows, reference = [], None
    for compiled in (False, True):
        model = base_model.to(memory_format=torch.channels_last)
        runner = torch.compile(model, mode="max-autotune-no-cudagraphs") if compiled else model
        for dtype in (torch.float32, torch.bfloat16):
            for batch in (1, 8, 32, 64):
                images = torch.rand(batch, 1, 512, 512, device=device).to(memory_format=torch.channels_last)

                def run(net=runner, x=images, precision=dtype) -> None:
                    autocast = torch.autocast("cuda", dtype=precision, enabled=precision != torch.float32)
                    with torch.inference_mode(), autocast:
                        net(x)

                try:
                    seconds = timed(run, repeats, sync)
                except Exception as error:  # compile may fail on some stacks: report, go on
                    failure = type(error).__name__
                    rows.append(f"| {name} | {batch} | {dtype} compile={compiled} | failed: {failure} | | |")
                    continue
                rate = batch / seconds
                reference = reference or rate
                achieved = rate * flops / 1e12
                peak = (peaks[1] if dtype == torch.bfloat16 else peaks[0]) if peaks else None
                fraction = f"{achieved / peak:.1%} of {peak:.0f}" if peak else "peak unknown"
                precision = "bf16" if dtype == torch.bfloat16 else "fp32"
                label = f"{precision} channels_last{' compiled' if compiled else ''}"
                rows.append(
                    f"| {name} {label} | {batch} | {rate:.1f} images/s | {achieved:.1f} TFLOP/s ({fraction}) | "
                    f"{rate / reference:.2f}x fp32 eager batch 1 |"
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", help="append the results to this markdown file")
    args = parser.parse_args()
    info = describe(BSNET_SPEC)
    header = [
        f"### BS-Net inference, {datetime.date.today().isoformat()}",
        "",
        f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); model {info.name} {info.version}, "
        f"{info.parameters:,} weights, {info.flops_per_image / 1e9:.1f} GFLOPs/image at 512x512. "
        f"Median of {args.repeats} runs after 2 warm-up runs, random weights (speed does not depend on them).",
        "",
        "| run | batch | speed | throughput | ratio to the reference in the same process |",
        "|---|---|---|---|---|",
    ]
    rows = cpu_rows(args.repeats)
    if torch.cuda.is_available():
        rows += gpu_rows(args.repeats, info.flops_per_image)
    else:
        rows.append("| GPU | - | not measured: no CUDA device on this machine | | |")
    text = "\n".join(header + rows) + "\n"
    print(text)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as stream:
            stream.write("\n" + text)


if __name__ == "__main__":
    main()
