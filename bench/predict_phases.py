"""Where ``Predictor.predict_batch`` spends a batch's time, phase by phase (issue 13: the broker-fed
GPU worker was bound by this, not by the forward pass).

Phases, each timed to a device synchronisation: the batch to the device, the forward pass, the
score probabilities, the lung mask and what the maps are made of (alignment and the heads'
contributions), each computed on the device and copied to the host; the whole ``predict_batch``
for comparison; then what the node does with one result on its CPU: drawing the region map and
the explainability maps (``BrixiaResult.region_map``, ``.explainability``).
Median of ``--repeats`` runs after warm-up; prepared images of the Fuji chest CR, untrained weights.

    .venv/bin/python bench/predict_phases.py [--device cuda] [--batch-size 32] [--precision bf16]
        [--compile] [--repeats 5] [--write docs/benchmarks.md]
"""

import argparse
import dataclasses
import datetime
import platform
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import pydicom  # noqa: E402
import torch  # noqa: E402

from bench.common import machine, publish  # noqa: E402
from bench.inference import WARMUP, timed  # noqa: E402
from inference import Predictor  # noqa: E402
from inference.explainability import lung_mask, severity_contributions  # noqa: E402
from inference.preprocessing import prepare_dataset  # noqa: E402
from tests.conftest import FUJI_CR, require_path  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", help="append the results to this markdown file")
    args = parser.parse_args()
    predictor = Predictor(
        allow_untrained=True, device=args.device, batch_size=args.batch_size, precision=args.precision,
        compiled=args.compile,
    )
    cuda = predictor.device.type == "cuda"
    synchronise = torch.cuda.synchronize if cuda else (lambda: None)
    prepared = [prepare_dataset(pydicom.dcmread(require_path(FUJI_CR)))] * args.batch_size
    inputs = predictor._inputs(prepared)
    bf16 = args.precision == "bf16"

    def forward() -> object:
        with torch.inference_mode(), torch.autocast(predictor.device.type, dtype=torch.bfloat16, enabled=bf16):
            return predictor.network(inputs)

    output = forward()
    result = predictor.predict(prepared[0])
    with torch.inference_mode():
        phases = {
            "batch to the device": lambda: predictor._inputs(prepared),
            "forward pass": forward,
            "score probabilities to the host": lambda: output.score_probabilities.float().cpu(),
            "lung mask, computed and to the host": lambda: lung_mask(output).cpu(),
            "alignment and contributions, computed and to the host": lambda: (
                output.theta.float().cpu(), severity_contributions(output).cpu()
            ),
            "predict_batch, whole": lambda: predictor.predict_batch(prepared),
            # a fresh copy each run: a result draws its maps once
            "node CPU, one result: region map drawn": lambda: dataclasses.replace(result).region_map,
            "node CPU, one result: explainability maps drawn": lambda: dataclasses.replace(result).explainability,
        }
        rows = [f"| {name} | {timed(run, args.repeats, synchronise) * 1e3:.1f} |" for name, run in phases.items()]
    device = torch.cuda.get_device_name(predictor.device) if cuda else "CPU"
    publish("\n".join([
        f"### Predictor.predict_batch phase by phase, {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}, Python {platform.python_version()}, torch {torch.__version__}; device {device}; "
        f"{predictor.options.describe()}; median of {args.repeats} runs after {WARMUP} warm-up runs. Command: "
        f"`.venv/bin/python bench/predict_phases.py {' '.join(sys.argv[1:])}`.",
        "",
        f"| phase (batch of {args.batch_size}, unless one result) | ms |",
        "|---|---|",
        *rows,
        "",
    ]), args.write)


if __name__ == "__main__":
    main()
