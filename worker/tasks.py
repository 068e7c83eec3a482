"""The three tasks of one image's journey (ARCHITECTURE.md): prepare (node) -> infer
(inference) -> report (node). Tasks are thin: the work is in ``inference`` and ``dicom_node``."""

import logging
from pathlib import Path
from typing import Any

import pydicom
from celery import chain
from celery.exceptions import Ignore

from dicom_node.config import Destination
from dicom_node.dispatch import DispatchError, send_files
from dicom_node.journal import State
from dicom_node.outputs import build_outputs
from dicom_node.spool import write_durably
from inference.errors import InferenceError
from inference.preprocessing import prepare_dataset
from worker import runtime
from worker.app import app
from worker.serialization import decode_prepared, decode_result, encode_prepared, encode_result

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 300


def enqueue(receipt_id: str) -> None:
    """Queue the prepare -> infer -> report chain for one spooled receipt."""
    chain(prepare.s(receipt_id), infer.s(), report.s()).apply_async()


def _fail(receipt_id: str, reason: str) -> None:
    runtime.journal().update(receipt_id, state=State.FAILED, reason=reason)
    log.warning("receipt %s failed: %s", receipt_id, reason)
    raise Ignore()


@app.task(name="worker.tasks.prepare")
def prepare(receipt_id: str) -> dict[str, Any]:
    """Decode the spooled instance and build the model input (node queue)."""
    journal = runtime.journal()
    receipt = journal.get(receipt_id)
    if receipt is None or receipt.state == State.DELIVERED:
        raise Ignore()
    ds = pydicom.dcmread(runtime.settings().spool / receipt.path)
    try:
        prepared = prepare_dataset(ds)
    except InferenceError as error:
        _fail(receipt_id, str(error))
    return {"receipt_id": receipt_id, "prepared": encode_prepared(prepared)}


@app.task(name="worker.tasks.infer")
def infer(message: dict[str, Any]) -> dict[str, Any]:
    """Run BS-Net on the prepared arrays (inference queue; no DICOM, no spool)."""
    try:
        result = runtime.predictor().predict(decode_prepared(message["prepared"]))
    except InferenceError as error:
        return {"receipt_id": message["receipt_id"], "error": str(error)}
    return {"receipt_id": message["receipt_id"], "result": encode_result(result)}


def _write_outputs(receipt_id: str, source_path: Path, message: dict[str, Any]) -> tuple[list[Path], list[str]]:
    source = pydicom.dcmread(source_path)
    outputs = build_outputs(source, decode_result(message["result"]), runtime.settings().outputs)
    folder = runtime.settings().spool / "outputs" / receipt_id
    paths = []
    for index, dataset in enumerate(outputs):
        path = folder / f"{index}-{dataset.Modality.lower()}.dcm"
        buffer = pydicom.filebase.DicomBytesIO()
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
        write_durably(path, buffer.getvalue())
        paths.append(path)
    return paths, [str(dataset.SOPInstanceUID) for dataset in outputs]


@app.task(name="worker.tasks.report", bind=True, max_retries=None)
def report(self, message: dict[str, Any]) -> None:
    """Build the SR and overlay, store them in the spool and C-STORE them (node queue)."""
    receipt_id = message["receipt_id"]
    journal = runtime.journal()
    receipt = journal.get(receipt_id)
    if receipt is None or receipt.state in (State.DELIVERED, State.FAILED):
        return
    if "error" in message:
        _fail(receipt_id, message["error"])
    settings = runtime.settings()
    paths, uids = _write_outputs(receipt_id, settings.spool / receipt.path, message)
    result = message["result"]
    journal.update(
        receipt_id,
        state=State.SCORED,
        global_score=result["global_score"],
        region_scores=result["region_scores"],
        outputs=uids,
    )
    if receipt.destination is None:
        journal.update(receipt_id, reason="no destination configured: outputs kept in the spool")
        return
    destination = Destination.parse(receipt.destination)
    try:
        send_files(paths, destination, receipt.called_ae)
    except (DispatchError, OSError) as error:
        attempts = receipt.attempts + 1
        if attempts > settings.delivery_retries:
            journal.update(
                receipt_id, state=State.FAILED, attempts=attempts,
                reason=f"delivery to {destination} failed {attempts} times: {error}",
            )
            return
        journal.update(receipt_id, attempts=attempts, reason=f"delivery attempt {attempts} failed: {error}")
        raise self.retry(countdown=min(2**attempts, MAX_BACKOFF_S), exc=error) from error
    journal.update(receipt_id, state=State.DELIVERED, reason=None, attempts=receipt.attempts + 1)
