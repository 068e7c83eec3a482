"""The three tasks of one image's journey (ARCHITECTURE.md): prepare (node) -> infer
(inference) -> deliver (node), and ``redeliver`` (node), which sends a receipt's stored outputs again
on the retry schedule (:mod:`dicom_node.retry_schedule`), after a node restart or on request
(``dicom-node retry``). Each task sends its message on to the next one itself; ``infer`` takes
the prepared images waiting in its queue as one batch (celery-batches) and scores them in one
forward pass. Tasks are thin: the work is in ``inference`` and ``dicom_node``."""

import logging
import time
from typing import Any, NoReturn

import pydicom
from celery.exceptions import Ignore
from celery_batches import SimpleRequest
from pydicom.dataset import Dataset

from dicom_node.config import Destination
from dicom_node.dispatch import DispatchError, send_instances
from dicom_node.failures import failure_reason
from dicom_node.journal import Receipt, State
from dicom_node.outputs import OutputSource, build_outputs
from dicom_node.retry_schedule import gives_up, retry_delay, waited
from inference.preprocessing import PreparedImage, prepare_dataset
from worker import runtime
from worker.app import PREPARING_PRIORITY, RESULTS_PRIORITY, SCORING_PRIORITY, app
from worker.batching import FillWhileScoring
from worker.broker_calls import TRANSIENT, until_the_broker_answers
from worker.messages import InferenceFailed, Prepared, Scored, inference_outcome
from worker.model_inputs import model_input_key
from worker.serialization import decode_prepared, decode_result, encode_prepared, encode_result

log = logging.getLogger(__name__)


def enqueue(receipt_id: str, token: str) -> None:
    """Queue the prepare -> infer -> deliver chain for one spooled receipt (``token``: the journal's
    :meth:`~dicom_node.journal.Journal.issue_token` for it)."""
    prepare.delay(receipt_id, token)


def enqueue_redelivery(receipt_id: str, token: str, countdown: int = 0) -> None:
    """Queue sending a scored receipt's stored outputs, ``countdown`` seconds from now."""
    redeliver.apply_async((receipt_id, token), countdown=countdown)


def _fail(receipt_id: str, reason: str) -> NoReturn:
    """End the receipt ``failed`` with ``reason`` and stop the chain."""
    runtime.journal().failed(receipt_id, reason)
    raise Ignore()


def _current_receipt(receipt_id: str, token: str, stage: str) -> Receipt:
    """The journal's receipt if ``token`` is its current chain's; otherwise the task stops: quietly
    for a chain superseded by a re-queue, loudly for a receipt this node never received (a broker
    shared with another node)."""
    receipt = runtime.journal().get(receipt_id)
    if receipt is None:
        log.error(
            "%s: receipt %s is not in this node's journal (%s): is the broker shared with another node?",
            stage, receipt_id, runtime.settings().journal_path,
        )
        raise Ignore()
    if receipt.task_token != token:
        log.info("%s: receipt %s was queued again since this task was: superseded", stage, receipt_id)
        raise Ignore()
    return receipt


@app.task(name="worker.tasks.prepare", priority=PREPARING_PRIORITY)
def prepare(receipt_id: str, token: str) -> None:
    """Decode the spooled instance, build the model input and queue it for ``infer`` (node queue)."""
    receipt = _current_receipt(receipt_id, token, "prepare")
    if receipt.state in (State.DELIVERED, State.FAILED, State.SKIPPED):
        raise Ignore()
    started = time.perf_counter()
    try:  # a file in the spool never changes: whatever fails here fails for good
        prepared = prepare_dataset(pydicom.dcmread(runtime.spool().instance_path(receipt)))
    except Exception as error:
        _fail(receipt_id, failure_reason("prepare", error))
    compute_s = time.perf_counter() - started
    until_the_broker_answers(
        f"prepare: receipt {receipt_id}", lambda: queue_for_scoring(receipt_id, token, prepared, compute_s)
    )


def queue_for_scoring(receipt_id: str, token: str, prepared: PreparedImage, compute_s: float) -> None:
    """Keep ``prepared``'s model input in the broker's Redis and queue its header for ``infer``
    (:mod:`worker.model_inputs`); ``compute_s``: the compute time so far."""
    header, codes = encode_prepared(prepared)
    runtime.model_inputs().put(model_input_key(receipt_id, token), codes)
    infer.delay(Prepared(receipt_id, token, header, compute_s).to_json())


def take_batches(size: int, wait_s: float, at_once: int = 1) -> None:
    """Have this worker's ``infer`` take up to ``size`` prepared images per forward pass, waiting at
    most ``wait_s`` for a batch to fill, and score up to ``at_once`` batches at the same time (the
    worker must prefetch enough tasks, and run ``at_once`` threads)."""
    infer.flush_every = size
    infer.flush_interval = max(wait_s, 0.001)
    infer.at_once = at_once


def _score(batch: list[tuple[Prepared, bytes]]) -> list[Scored | InferenceFailed]:
    """Score the prepared images (each message with its model input's codes) in one forward pass,
    each image's compute time its share of the decoding and the pass; the model inputs are decoded
    on :func:`worker.runtime.codec_threads`, the results (a few kilobytes each) encoded on this
    thread, where threads would cost more than the encoding.
    Should the batch fail, each image is scored alone, so that an image the network cannot take
    fails on its own (its reason names the stage and cause) and the others are scored."""
    predictor, threads = runtime.predictor(), runtime.codec_threads()
    try:
        started = time.perf_counter()
        images = list(threads.map(lambda item: decode_prepared(item[0].prepared, item[1]), batch))
        decoded = time.perf_counter()
        results = predictor.predict_batch(images)
        scored = time.perf_counter()
        encoded = [encode_result(result) for result in results]
        log.info(
            "infer: %d scored: decode %.0f ms, network %.0f ms, encode %.0f ms",
            len(batch), (decoded - started) * 1e3, (scored - decoded) * 1e3, (time.perf_counter() - scored) * 1e3,
        )
        share = (scored - started) / len(batch)
        return [
            Scored(message.receipt_id, message.token, result, message.compute_s + share)
            for (message, _), result in zip(batch, encoded, strict=True)
        ]
    except Exception as error:
        if len(batch) == 1:
            message = batch[0][0]
            log.warning("infer failed for receipt %s: %s", message.receipt_id, type(error).__name__)
            return [InferenceFailed(message.receipt_id, message.token, failure_reason("infer", error))]
        log.warning("infer failed for a batch of %d (%s): scoring each alone", len(batch), type(error).__name__)
        return [outcome for item in batch for outcome in _score([item])]


def _with_model_inputs(incoming: list[Prepared], keys: list[str]) -> list[tuple[Prepared, bytes]]:
    """Each message with its model input's codes (under ``keys``, one per message), read from the
    broker's Redis in one round trip; a receipt whose model input is gone (expired, evicted, or
    queued by an older node) is queued to be prepared again, under the same chain token."""
    found = []
    values = until_the_broker_answers(
        f"infer: the model inputs of {len(keys)} receipts", lambda: runtime.model_inputs().take(keys)
    )
    for message, codes in zip(incoming, values, strict=True):
        if codes is None:
            log.warning(
                "infer: the model input of receipt %s is no longer in the broker: preparing it again",
                message.receipt_id,
            )
            until_the_broker_answers(f"infer: receipt {message.receipt_id} to prepare again",
                                     lambda message=message: enqueue(message.receipt_id, message.token))
        else:
            found.append((message, codes))
    return found


@app.task(
    name="worker.tasks.infer", base=FillWhileScoring, priority=SCORING_PRIORITY, flush_every=1, flush_interval=0.02
)
def infer(requests: list[SimpleRequest]) -> None:
    """Run BS-Net on the prepared images waiting in the inference queue (up to the worker's batch
    size, or what came within its batch wait) in one forward pass, and queue each image's outcome
    for ``deliver`` (inference queue; no DICOM, no spool, no journal). The batch's model inputs
    are deleted from the broker once the outcomes are queued."""
    incoming = [Prepared.from_json(request.args[0]) for request in requests]
    log.info("infer: a batch of %d (receipts %s)", len(incoming), ", ".join(m.receipt_id for m in incoming))
    keys = [model_input_key(message.receipt_id, message.token) for message in incoming]
    batch = _with_model_inputs(incoming, keys)
    outcomes = _score(batch) if batch else []
    until_the_broker_answers(f"infer: the outcomes of {len(outcomes)} receipts", lambda: _queue_for_delivery(outcomes))
    try:
        runtime.model_inputs().discard(keys)
    except TRANSIENT as error:  # the outcomes are queued: the inputs only wait for their expiry
        log.warning("infer: the model inputs of %d receipts stay in the broker until they expire (%s: %s)",
                    len(keys), type(error).__name__, error)


def _queue_for_delivery(outcomes: list[Scored | InferenceFailed]) -> None:
    """Queue each outcome for ``deliver`` in one round trip to the broker (a kombu publish batch),
    each task's argument shown as its kind and receipt (Celery would otherwise write a repr of the
    whole result into the message's headers: most of a publish's time)."""
    with app.producer_or_acquire() as producer, producer.batch():
        for outcome in outcomes:
            shown = f"<{outcome.kind} {outcome.receipt_id}>"
            deliver.apply_async((outcome.to_json(),), producer=producer, argsrepr=shown, kwargsrepr="{}")
    for outcome in outcomes:
        log.info("infer: receipt %s %s", outcome.receipt_id, "scored" if isinstance(outcome, Scored) else "failed")


def _store_outputs(receipt_id: str, datasets: list[Dataset]) -> list[bytes]:
    """Store each output of ``receipt_id`` durably in the spool; returns their Part 10 bytes."""
    encoded = []
    for dataset in datasets:
        buffer = pydicom.filebase.DicomBytesIO()
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
        data = buffer.getvalue()
        runtime.spool().store_output(receipt_id, int(dataset.SeriesNumber), str(dataset.Modality), data)
        encoded.append(data)
    return encoded


def _delivery_failed(receipt: Receipt, destination: Destination, error: Exception) -> None:
    """Journal a failed attempt; schedule the next one (its own chain token), or end in ``failed``
    once the schedule is spent."""
    settings = runtime.settings()
    attempts = receipt.attempts + 1
    cap = settings.delivery_max_backoff
    if gives_up(attempts, settings.delivery_give_up_after, cap):
        reason = f"delivery to {destination} failed {attempts} times over {waited(attempts, cap)} s: {error}"
        runtime.journal().failed(receipt.id, reason, attempts=attempts)
        return
    delay = retry_delay(attempts, cap)
    reason = f"delivery attempt {attempts} failed: {error}; next attempt in {delay} s"
    runtime.journal().delivery_failed(receipt.id, attempts, reason)
    log.info("receipt %s: %s", receipt.id, reason)
    # the next attempt gets a token of its own: should Redis hand out this task again (its worker
    # died before acknowledging it), that copy is superseded instead of starting a second chain
    token = runtime.journal().issue_token(receipt.id)
    until_the_broker_answers(
        f"deliver: receipt {receipt.id}'s next attempt", lambda: enqueue_redelivery(receipt.id, token, countdown=delay)
    )


def _destination_of(receipt: Receipt) -> Destination | None:
    """Where the journal says ``receipt``'s results go, with the TLS settings configured for it;
    None where it names no destination, or one the configuration no longer has."""
    return runtime.settings().configured_destination(receipt.destination) if receipt.destination else None


def _kept_unsent(receipt: Receipt) -> None:
    """Journal why ``receipt``'s stored outputs go nowhere (:func:`_destination_of` is None)."""
    if receipt.destination:
        reason = f"destination {receipt.destination} is no longer configured: outputs kept in the spool, not sent"
    else:
        reason = "no destination configured: outputs kept in the spool"
    runtime.journal().undeliverable(receipt.id, reason)


def _delivered(receipt: Receipt) -> None:
    runtime.journal().delivered(receipt.id, receipt.attempts + 1)


@app.task(name="worker.tasks.deliver", priority=RESULTS_PRIORITY)
def deliver(message: dict[str, Any]) -> None:
    """Build the configured outputs, store them in the spool and C-STORE them (node queue).

    The SR is built, stored and sent on its own first, so that the scores reach the PACS while
    the images are still being drawn. The receipt is journaled ``scored`` with its outputs once
    every output is stored (fsync), before the images are sent: its outputs are kept even when
    delivery fails (a failed delivery continues with ``redeliver``), and a node that stops
    before then scores the receipt again, so no receipt is ever done with part of its outputs.
    """
    outcome = inference_outcome(message)
    receipt_id = outcome.receipt_id
    journal = runtime.journal()
    receipt = _current_receipt(receipt_id, outcome.token, "deliver")
    if receipt.state in (State.DELIVERED, State.FAILED, State.SKIPPED):
        return
    if isinstance(outcome, InferenceFailed):
        _fail(receipt_id, outcome.reason)
    settings = runtime.settings()
    started = time.perf_counter()
    try:
        source = OutputSource.of(pydicom.dcmread(runtime.spool().instance_path(receipt)))
        result = decode_result(outcome.result)
    except Exception as error:
        _fail(receipt_id, failure_reason("deliver", error))
    opened_ms = (time.perf_counter() - started) * 1e3
    log.info("deliver: receipt %s: source read and result decoded %.0f ms", receipt_id, opened_ms)
    destination = _destination_of(receipt)
    kinds = settings.outputs
    batches = [batch for batch in ([k for k in kinds if k == "sr"], [k for k in kinds if k != "sr"]) if batch]
    uids: list[str] = []
    failure: Exception | None = None
    for batch in batches:
        batch_started = time.perf_counter()
        try:
            datasets = build_outputs(source, result, batch)
            built = time.perf_counter()
            encoded = _store_outputs(receipt_id, datasets)
        except Exception as error:  # highdicom/pydicom refusing the source's attributes, or the disk
            _fail(receipt_id, failure_reason(f"deliver ({', '.join(batch)})", error))
        uids += [str(dataset.SOPInstanceUID) for dataset in datasets]
        if batch is batches[-1]:
            journal.scored(receipt_id, result.global_score, result.region_scores, uids, round(outcome.compute_s * 1000))
        stored = time.perf_counter()
        sending = "not sent"
        if destination is not None and failure is None:
            try:
                send_instances(encoded, destination, receipt.called_ae)
            except (DispatchError, OSError) as error:
                failure = error
            sending = f"sent {(time.perf_counter() - stored) * 1e3:.0f} ms"
        log.info(
            "deliver: receipt %s: %s built %.0f ms, encoded and stored %.0f ms, %s",
            receipt_id, "+".join(batch), (built - batch_started) * 1e3, (stored - built) * 1e3, sending,
        )
    if destination is None:
        _kept_unsent(receipt)
        return
    if failure is not None:
        _delivery_failed(receipt, destination, failure)
    else:
        _delivered(receipt)


@app.task(name="worker.tasks.redeliver", priority=RESULTS_PRIORITY)
def redeliver(receipt_id: str, token: str) -> None:
    """Send a scored receipt's stored outputs (node queue); nothing is computed again."""
    receipt = _current_receipt(receipt_id, token, "redeliver")
    if receipt.state != State.SCORED or not receipt.destination:
        return
    destination = _destination_of(receipt)
    if destination is None:
        _kept_unsent(receipt)
        return
    files = runtime.spool().stored_outputs(receipt_id)
    if not files:
        _fail(receipt_id, "redeliver: no stored outputs in the spool")
    try:
        send_instances([path.read_bytes() for path in files], destination, receipt.called_ae)
    except (DispatchError, OSError) as error:
        _delivery_failed(receipt, destination, error)
    else:
        _delivered(receipt)
