"""What one image's messages cost an inference worker's CPU, per image (issue 13): the work that
bounds a GPU worker fed by the broker (docs/benchmarks.md, "Broker-fed inference worker").

For the Fuji chest CR prepared at 512 x 512 and its untrained result: what the consumer does with
a Prepared message (reads the kombu envelope's JSON and the body's, and writes the envelope's
JSON again for kombu's store of unacknowledged messages), for the message as it is (its model
input beside it, worker.model_inputs) and, as the reference, for the message with the model
input inside it as base64 (the node's format until 2026-11-26); ``decode_prepared``,
``encode_result`` and writing the Scored message's JSON; reading a batch of 32 model inputs from
a private redis-server in one MGET (``ModelInputStore.take``), with redis-py's Python reply
parser and with hiredis; and on the node's side, ``encode_prepared``. Median of ``--repeats``
runs after warm-up (``bench.inference.timed``) in this process.

    .venv/bin/python bench/messages.py [--repeats 50] [--write docs/benchmarks.md]
"""

import argparse
import datetime
import json
import platform
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
import redis  # noqa: E402
from redis._parsers import _HiredisParser, _RESP2Parser  # noqa: E402

from bench.common import machine, publish  # noqa: E402
from bench.inference import timed  # noqa: E402
from inference import Predictor  # noqa: E402
from inference.preprocessing import prepare_dataset  # noqa: E402
from tests.conftest import FUJI_CR, require_path  # noqa: E402
from tests.servers import redis_server  # noqa: E402
from worker.messages import Prepared, Scored  # noqa: E402
from worker.model_inputs import ModelInputStore, model_input_key  # noqa: E402
from worker.serialization import decode_prepared, encode_array, encode_prepared, encode_result  # noqa: E402

BATCH = 32  # model inputs read at once, as an inference worker on a GPU does


def batch_read_ms(codes: bytes, per_image_ms: Callable[[Callable[[], object]], float]) -> list[tuple[str, float]]:
    """Per image: ``ModelInputStore.take`` of a batch, with each of redis-py's reply parsers."""
    keys = [model_input_key(f"receipt-{index}", "token") for index in range(BATCH)]
    with tempfile.TemporaryDirectory(prefix="dicom-node-messages-") as folder, redis_server(Path(folder)) as url:
        writer = ModelInputStore(redis.Redis.from_url(url))
        for key in keys:
            writer.put(key, codes)
        rows = []
        for name, parser in (("redis-py's Python parser", _RESP2Parser), ("hiredis", _HiredisParser)):
            store = ModelInputStore(redis.Redis.from_url(url, parser_class=parser))
            label = f"the inference worker reads a batch's {BATCH} model inputs (one MGET), {name}"
            rows.append((label, per_image_ms(lambda store=store: store.take(keys)) / BATCH))
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--write", help="append the results to this markdown file")
    args = parser.parse_args()
    prepared = prepare_dataset(pydicom.dcmread(require_path(FUJI_CR)))
    header, codes = encode_prepared(prepared)
    layout = header["model_input_codes"]
    array = np.frombuffer(codes, dtype=np.dtype(layout["dtype"])).reshape(layout["shape"])
    inside = {**header, "model_input_codes": encode_array(array, compress=False)}  # the format before
    result = Predictor(allow_untrained=True, device="cpu").predict(prepared)

    def envelope(prepared_message: dict) -> str:
        message = Prepared("receipt", "token", prepared_message, 0.0).to_json()
        body = json.dumps([[message], {}, {}])  # Celery's task body: args, kwargs, embed
        return json.dumps({"body": body, "properties": {"body_encoding": "utf-8"}})

    def consumed(text: str) -> object:
        taken = json.loads(text)
        json.dumps(taken)  # kombu keeps the message for redelivery until it is acknowledged
        return json.loads(taken["body"])

    def per_image_ms(run: Callable[[], object]) -> float:
        return timed(run, args.repeats, lambda: None) * 1e3

    encoded = encode_result(result)
    before, now = envelope(inside), envelope(header)
    reference = per_image_ms(lambda: consumed(before))
    rows = [
        ("the consumer takes the message, model input inside (before)", reference, len(before)),
        ("the consumer takes the message, model input beside it (now)", per_image_ms(lambda: consumed(now)), len(now)),
        *((name, ms, len(codes)) for name, ms in batch_read_ms(codes, per_image_ms)),
        ("decode_prepared", per_image_ms(lambda: decode_prepared(header, codes)), len(codes)),
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
        "| step, per image | ms | ratio to the message with the model input inside | bytes |",
        "|---|---|---|---|",
        *(f"| {name} | {ms:.2f} | {ms / reference:.2f} | {'' if size is None else size} |" for name, ms, size in rows),
        "",
    ]
    publish("\n".join(lines), args.write)


if __name__ == "__main__":
    main()
