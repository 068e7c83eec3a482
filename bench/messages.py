"""What one image's messages cost an inference worker's CPU, per image (issue 13): the work that
bounds a GPU worker fed by the broker (docs/benchmarks.md, "Broker-fed inference worker").

For the Fuji chest CR prepared at 512 x 512 and its untrained result: taking a Prepared message
as the consumer does (the kombu envelope read from Redis, its body with kombu's default base64
encoding and as the text the node now keeps, then the body's JSON), ``decode_prepared``,
``encode_result`` and writing the Scored message's JSON; and on the node's side,
``encode_prepared``. Median of ``--repeats`` runs after warm-up (``bench.inference.timed``) in this
process; the reference is the base64 envelope.

    .venv/bin/python bench/messages.py [--repeats 50] [--write docs/benchmarks.md]
"""

import argparse
import base64
import datetime
import json
import platform
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import pydicom  # noqa: E402

from bench.common import machine, publish  # noqa: E402
from bench.inference import timed  # noqa: E402
from inference import Predictor  # noqa: E402
from inference.preprocessing import prepare_dataset  # noqa: E402
from tests.conftest import FUJI_CR, require_path  # noqa: E402
from worker.messages import Prepared, Scored  # noqa: E402
from worker.serialization import decode_prepared, encode_prepared, encode_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--write", help="append the results to this markdown file")
    args = parser.parse_args()
    prepared = prepare_dataset(pydicom.dcmread(require_path(FUJI_CR)))
    message = Prepared("receipt", "token", encode_prepared(prepared), 0.0).to_json()
    body = json.dumps([[message], {}, {}])  # Celery's task body: args, kwargs, embed
    as_base64 = json.dumps({"body": base64.b64encode(body.encode()).decode(), "properties": {}})
    as_text = json.dumps({"body": body, "properties": {}})
    result = Predictor(allow_untrained=True, device="cpu").predict(prepared)

    def per_image_ms(run: Callable[[], object]) -> float:
        return timed(run, args.repeats, lambda: None) * 1e3

    encoded = encode_result(result)
    reference = per_image_ms(lambda: json.loads(base64.b64decode(json.loads(as_base64)["body"])))
    rows = [
        ("take the message, body in base64 (kombu's default)", reference, len(as_base64)),
        ("take the message, body as text (the node's setting)",
         per_image_ms(lambda: json.loads(json.loads(as_text)["body"])), len(as_text)),
        ("decode_prepared", per_image_ms(lambda: decode_prepared(message["prepared"])), None),
        ("encode_result", per_image_ms(lambda: encode_result(result)), None),
        ("write the Scored message",
         per_image_ms(lambda: json.dumps(Scored("receipt", "token", encoded, 0.0).to_json())),
         len(json.dumps(Scored("receipt", "token", encoded, 0.0).to_json()))),
        ("the node's side: encode_prepared (in prepare)", per_image_ms(lambda: encode_prepared(prepared)), None),
    ]
    lines = [
        f"### One image's messages, {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}, Python {platform.python_version()}. Median of {args.repeats} runs. Command: "
        f"`{shlex.join(['.venv/bin/python', 'bench/messages.py', *sys.argv[1:]])}`.",
        "",
        "| step, per image | ms | ratio to the base64 envelope | bytes |",
        "|---|---|---|---|",
        *(f"| {name} | {ms:.2f} | {ms / reference:.2f} | {'' if size is None else size} |" for name, ms, size in rows),
        "",
    ]
    publish("\n".join(lines), args.write)


if __name__ == "__main__":
    main()
