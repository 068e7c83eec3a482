"""The ``dicom-node`` command line (typer). Every serve/worker option is also a
``DICOM_NODE_<NAME>`` environment variable and a key of the TOML file given by --config."""

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dicom_node import __version__
from dicom_node.config import ConfigError, NodeSettings, load_settings

app = typer.Typer(help="DICOM node scoring chest radiographs with BS-Net (research use only).")
console = Console()
error_console = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML settings file (or $DICOM_NODE_CONFIG)")]
SpoolOption = Annotated[Path | None, typer.Option(help="spool folder: instances, outputs, journal")]
BrokerOption = Annotated[
    str | None, typer.Option(help="Celery broker, e.g. redis://broker:6379/0 (default: the node's own private one)")
]
WeightsOption = Annotated[Path | None, typer.Option(help="BS-Net weights file")]
UntrainedOption = Annotated[
    bool | None, typer.Option("--untrained", help="score with an untrained network (demonstration only)")
]


def _settings(config: Path | None, **overrides: object) -> NodeSettings:
    try:
        return load_settings(config, **overrides)
    except ConfigError as error:
        error_console.print(f"[red]configuration error:[/red] {error}")
        raise typer.Exit(2) from error


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("highdicom").setLevel(logging.WARNING)  # per-module copy notes
    # each pixel decoder's traceback for an undecodable image: the receipt's reason names them all
    logging.getLogger("pydicom.pixels.decoders.base").setLevel(logging.CRITICAL)


@app.callback()
def main() -> None:
    """dicom-node: research use only, not for diagnosis."""


@app.command()
def serve(
    config: ConfigOption = None,
    ae_title: Annotated[str | None, typer.Option(help="our AE title")] = None,
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="DICOM port to listen on")] = None,
    spool: SpoolOption = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(help="known sender AET@ADDRESS or AET@NETWORK/PREFIX (repeat); default: anyone (warned)"),
    ] = None,
    destination: Annotated[str | None, typer.Option(help="where results go: AET@HOST:PORT")] = None,
    tls_certificate: Annotated[Path | None, typer.Option(help="DICOM TLS: the node's certificate (PEM)")] = None,
    tls_private_key: Annotated[Path | None, typer.Option(help="DICOM TLS: the node's private key (PEM)")] = None,
    tls_ca: Annotated[
        Path | None, typer.Option(help="DICOM TLS: accept only senders with a certificate signed by this CA (PEM)")
    ] = None,
    weights: WeightsOption = None,
    untrained: UntrainedOption = None,
    outputs: Annotated[
        list[str] | None, typer.Option(help="outputs to build (repeat): sr, overlay, explainability, seg")
    ] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="do not run a worker in this process")] = False,
    broker_url: BrokerOption = None,
) -> None:
    """Receive images (C-STORE), score frontal chest radiographs and send the results back."""
    # This module composes the node (dicom_node) and the worker (worker); nothing else imports
    # both. Imported here rather than at the top: `status` and `model-info` need no Celery or torch.
    from dicom_node.broker import BrokerError
    from dicom_node.serve import Work
    from dicom_node.serve import serve as run
    from inference.errors import InferenceError
    from worker.app import QUEUES, configure
    from worker.process import run_worker, settings_for_queues
    from worker.tasks import enqueue, enqueue_redelivery

    settings = _settings(
        config, ae_title=ae_title, host=host, port=port, spool=spool, allow=allow,
        destination=destination, tls_certificate=tls_certificate, tls_private_key=tls_private_key, tls_ca=tls_ca,
        weights=weights, untrained=untrained, outputs=outputs,
        worker=False if no_worker else None, broker_url=broker_url,
    )
    if settings.worker:
        settings = settings_for_queues(settings, QUEUES)
    work = Work(
        connect=lambda url: configure(settings, url),
        enqueue=enqueue,
        enqueue_redelivery=enqueue_redelivery,
        run_worker=(lambda _url: run_worker(settings, QUEUES)) if settings.worker else None,
    )
    _logging()
    try:
        settings.require_model()
        run(settings, work)
    except (ConfigError, BrokerError, InferenceError) as error:
        error_console.print(f"[red]cannot start:[/red] {error}")
        raise typer.Exit(2) from error


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="comma-separated queues: node, inference")] = "node,inference",
    concurrency: Annotated[
        int | None, typer.Option(help="node queue only: worker processes (default: one per CPU core)")
    ] = None,
    config: ConfigOption = None,
    spool: SpoolOption = None,
    weights: WeightsOption = None,
    untrained: UntrainedOption = None,
    broker_url: BrokerOption = None,
    device: Annotated[str | None, typer.Option(help="e.g. cuda:1 (default: the first GPU, else the CPU)")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="images per forward pass (default: 1 on the CPU, 32 on a GPU)")
    ] = None,
    batch_wait_ms: Annotated[int | None, typer.Option(help="longest wait for a batch to fill (ms)")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32 (default) or bf16 (autocast)")] = None,
    channels_last: Annotated[bool | None, typer.Option(help="channels-last memory format (default: on)")] = None,
    compile_network: Annotated[
        bool | None, typer.Option("--compile/--no-compile", help="torch.compile the network at start")
    ] = None,
) -> None:
    """Run a Celery worker: "node" beside the node (spool + PACS), "inference" anywhere (GPU)."""
    from inference.errors import InferenceError
    from worker.app import INFERENCE_QUEUE, QUEUES, configure
    from worker.process import run_worker, settings_for_queues

    names = tuple(q.strip() for q in queues.split(",") if q.strip())
    unknown = set(names) - set(QUEUES)
    if not names or unknown:
        error_console.print(f"[red]unknown queue(s):[/red] {', '.join(sorted(unknown)) or 'none given'}")
        raise typer.Exit(2)
    if INFERENCE_QUEUE in names and concurrency not in (None, 1):
        error_console.print(
            "[red]--concurrency is for the node queue:[/red] an inference worker is one process per device "
            "(start one per GPU with --device; --batch-size sets how many images it scores at once)"
        )
        raise typer.Exit(2)
    settings = settings_for_queues(
        _settings(
            config, spool=spool, weights=weights, untrained=untrained, broker_url=broker_url,
            node_concurrency=concurrency, device=device, batch_size=batch_size, batch_wait_ms=batch_wait_ms,
            precision=precision, channels_last=channels_last, compile_network=compile_network,
        ),
        names,
    )
    try:
        if INFERENCE_QUEUE in names:
            settings.require_model()
        configure(settings, settings.worker_broker_url())
    except ConfigError as error:
        error_console.print(f"[red]cannot start:[/red] {error}")
        raise typer.Exit(2) from error
    _logging()
    try:
        status = run_worker(settings, names)
    except InferenceError as error:  # weights, device or run options
        error_console.print(f"[red]cannot start:[/red] {error}")
        raise typer.Exit(2) from error
    if status:
        raise typer.Exit(status)


@app.command()
def status(
    config: ConfigOption = None,
    spool: SpoolOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    limit: Annotated[int, typer.Option(help="how many receipts")] = 50,
) -> None:
    """List recent images with their state (received, queued, scored, delivered, skipped, failed)."""
    from dicom_node.journal import Journal
    from dicom_node.status import status_table

    settings = _settings(config, spool=spool)
    if not settings.journal_path.is_file():
        error_console.print(f"no journal at {settings.journal_path}: nothing received yet")
        raise typer.Exit(1)
    receipts = Journal(settings.journal_path).recent(limit)
    if as_json:
        print(json.dumps([r.as_dict() for r in receipts], indent=2))
    else:
        console.print(status_table(receipts))


@app.command()
def retry(
    receipts: Annotated[list[str] | None, typer.Argument(help="receipt ids (see dicom-node status)")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="every receipt in state failed")] = False,
    config: ConfigOption = None,
    spool: SpoolOption = None,
    broker_url: BrokerOption = None,
) -> None:
    """Send results again: stored outputs are re-sent, receipts that failed before scoring are scored again."""
    from dicom_node.journal import Journal
    from dicom_node.resend import resend
    from worker.app import configure
    from worker.tasks import enqueue, enqueue_redelivery

    if not receipts and not failed:
        error_console.print("name receipts, or --failed for every failed one")
        raise typer.Exit(2)
    settings = _settings(config, spool=spool, broker_url=broker_url)
    if not settings.journal_path.is_file():
        error_console.print(f"no journal at {settings.journal_path}: nothing received yet")
        raise typer.Exit(1)
    try:
        configure(settings, settings.worker_broker_url())
    except ConfigError as error:
        error_console.print(f"[red]cannot queue:[/red] {error}")
        raise typer.Exit(2) from error
    journal = Journal(settings.journal_path)
    try:
        done = resend(journal, receipts or [], failed, enqueue, enqueue_redelivery)
    except Exception as error:  # the broker (kombu/redis) raises many types when it is down
        error_console.print(f"[red]cannot queue:[/red] {error} (is the node or its broker running?)")
        raise typer.Exit(2) from error
    finally:
        journal.close()
    for item in done:
        console.print(f"{item.receipt_id}  {item.action}  {item.detail}")
    if not done:
        console.print("nothing to retry")


@app.command("model-info")
def model_info() -> None:
    """Print the model's name, version, parameter count and FLOPs at its input size."""
    from inference.model_info import describe
    from inference.model_spec import BSNET_SPEC

    info = describe(BSNET_SPEC)
    table = Table(title=f"dicom-node {__version__}", show_header=False)
    table.add_row("model", info.name)
    table.add_row("version", info.version)
    table.add_row("weights (incl. BatchNorm statistics)", f"{info.parameters:,}")
    channels, height, width = info.input_shape
    table.add_row("input", f"{channels} x {height} x {width}")
    table.add_row(f"FLOPs at {height}x{width}", f"{info.flops_per_image / 1e9:.2f} GFLOPs per image")
    console.print(table)


@app.command("import-weights")
def import_weights(
    keras_h5: Annotated[Path, typer.Argument(help="the authors' Keras weight file, e.g. bscore-model.h5")],
    out: Annotated[Path, typer.Option(help="weights file to write (our format, for serve --weights)")],
) -> None:
    """Convert the authors' published BS-Net weights (Keras .h5) into a weights file for this node."""
    from inference.errors import WeightsError
    from inference.keras_import import import_keras_weights

    try:
        checksum = import_keras_weights(keras_h5, out)
    except WeightsError as error:
        error_console.print(f"[red]cannot import:[/red] {error}")
        raise typer.Exit(2) from error
    print(json.dumps({"weights": str(out), "sha256": checksum, "source": "authors' release"}, indent=2))


def _stage_epochs(epochs: int, stage_epochs: str | None) -> tuple[int, int, int]:
    """``--stage-epochs 10,10,30`` (segmentation, alignment, scoring), else ``--epochs`` for each."""
    if stage_epochs is None:
        return (epochs, epochs, epochs)
    try:
        counts = tuple(int(part) for part in stage_epochs.split(","))
    except ValueError as error:
        raise typer.BadParameter("three integers: segmentation,alignment,scoring") from error
    if len(counts) != 3:
        raise typer.BadParameter("three integers: segmentation,alignment,scoring")
    return counts


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="folder: images/, annotations.csv, optional lung-masks/")],
    out: Annotated[Path, typer.Option(help="weights file to write (checkpoint beside it: OUT.checkpoint)")],
    epochs: Annotated[int, typer.Option(help="epochs of each of the three stages")] = 10,
    stage_epochs: Annotated[
        str | None, typer.Option(help="epochs per stage: segmentation,alignment,scoring (overrides --epochs)")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="images per batch")] = 8,
    input_size: Annotated[int, typer.Option(help="model input side (multiple of 128; the paper uses 512)")] = 512,
    folds: Annotated[int, typer.Option(help="k-fold cross-validation of the scoring stage (0: hold-out split)")] = 0,
    val_fraction: Annotated[float, typer.Option(help="hold-out fraction when --folds is 0")] = 0.2,
    label: Annotated[str, typer.Option(help="which radiologist's scores to learn: senior or junior")] = "senior",
    device: Annotated[str | None, typer.Option(help="torch device, e.g. cpu or cuda (default: CUDA if any)")] = None,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same device: same weights)")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="continue from OUT.checkpoint")] = False,
    init: Annotated[
        Path | None,
        typer.Option(help="start from this weights file (e.g. the authors' weights from import-weights) to fine-tune"),
    ] = None,
) -> None:
    """Train BS-Net "from the part to the whole" and write a weights file (research use only)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from inference.datasets import load_folder
    from inference.device import select_device
    from inference.errors import InferenceError
    from inference.training import BatchDone, EpochLog, PhaseStarted, TrainingConfig, TrainingEvent
    from inference.training import train as run_training

    try:
        config = TrainingConfig(
            input_size=input_size, stage_epochs=_stage_epochs(epochs, stage_epochs), batch_size=batch_size,
            seed=seed, folds=folds, val_fraction=val_fraction, label=label,
        )
        tensors = load_folder(data, input_size)
    except ValueError as error:  # includes DatasetError
        error_console.print(f"[red]cannot train:[/red] {error}")
        raise typer.Exit(2) from error
    masked = int(tensors.has_mask.sum())
    description = f"{data.resolve().name}: {len(tensors)} annotated images ({label} scores), {masked} lung masks"
    error_console.print(description)

    def print_epoch(entry: EpochLog) -> None:
        val = "" if entry.val_mae is None else f" val MAE {entry.val_mae:.3f}"
        fold = "" if entry.fold is None else f" fold {entry.fold + 1}"
        error_console.print(f"{entry.stage}{fold} epoch {entry.epoch}: loss {entry.loss:.4f}{val}")

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  val MAE {task.fields[val_mae]}"),
        TimeElapsedColumn(),
        console=error_console,
        disable=not error_console.is_terminal,
    )

    def show(event: TrainingEvent) -> None:
        """One bar per phase with the running loss (each batch's, then the epoch's mean) and validation MAE."""
        if isinstance(event, PhaseStarted):
            phase = event.phase
            fold = "all images" if phase.fold is None else f"fold {phase.fold + 1}"
            name = phase.stage if phase.stage != "scoring" else f"scoring ({fold})"
            progress.add_task(name, total=event.total, completed=event.done, loss="-", val_mae="-")
            return
        fields = {"loss": f"{event.loss:.3f}"}
        if isinstance(event, EpochLog) and event.val_mae is not None:
            fields["val_mae"] = f"{event.val_mae:.3f}"
        progress.update(progress.task_ids[-1], advance=1 if isinstance(event, BatchDone) else 0, **fields)

    try:
        with progress:
            result = run_training(
                tensors, out, config, select_device(device), resume=resume, training_data=description,
                on_epoch=print_epoch, on_progress=show, init=init,
            )
    except (ValueError, FileNotFoundError, RuntimeError, InferenceError) as error:
        error_console.print(f"[red]cannot train:[/red] {error}")
        raise typer.Exit(2) from error
    summary = {key: result.metrics[key] for key in ("validation", "region_mae", "region_accuracy", "global_mae")}
    summary["baselines"] = {name: b["region_mae"] for name, b in result.metrics["baselines"].items()}
    print(json.dumps({"weights": str(out), **summary}, indent=2))


@app.command()
def evaluate(
    data: Annotated[
        Path,
        typer.Option(
            help="folder in our layout (images/, annotations.csv) or the BrixIA COVID-19 Dataset's "
            "(metadata_global_v2.csv, dicom_clean/)"
        ),
    ],
    weights: Annotated[Path, typer.Option(help="BS-Net weights file")],
    label: Annotated[str, typer.Option(help="reference radiologist: senior or junior")] = "senior",
    report: Annotated[Path | None, typer.Option(help="folder for a markdown report with PNG plots")] = None,
    device: Annotated[str | None, typer.Option(help="torch device (default: CUDA if any)")] = None,
    batch_size: Annotated[int, typer.Option(help="images per batch")] = 8,
    consensus_only: Annotated[
        bool, typer.Option("--consensus-only", help="BrixIA layout: only the rows marked ConsensusTestset")
    ] = False,
) -> None:
    """Score an annotated folder and print agreement figures with human and constant baselines (JSON)."""
    from inference.errors import InferenceError
    from inference.evaluate import evaluate_folder, write_report

    try:
        evaluation = evaluate_folder(
            data, weights, label=label, device=device, batch_size=batch_size, consensus_only=consensus_only
        )
    except (ValueError, InferenceError, RuntimeError) as error:  # ValueError includes DatasetError
        error_console.print(f"[red]cannot evaluate:[/red] {error}")
        raise typer.Exit(2) from error
    if report is not None:
        error_console.print(f"report: {write_report(evaluation, report)}")
    print(json.dumps(evaluation.report, indent=2))
