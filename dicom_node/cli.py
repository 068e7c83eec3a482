"""The ``dicom-node`` command line (typer): the commands of the node and of the model (status,
model-info, import-weights, train, evaluate). The commands that compose the node with a worker
(serve, worker, retry) are added by :mod:`worker.cli`, the entry point. Every serve/worker option
is also a ``DICOM_NODE_<NAME>`` environment variable and a key of the TOML file given by --config."""

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
WeightsOption = Annotated[Path | None, typer.Option(help="BS-Net weights file")]
UntrainedOption = Annotated[
    bool | None, typer.Option("--untrained", help="score with an untrained network (demonstration only)")
]


def settings_or_exit(config: Path | None, **overrides: object) -> NodeSettings:
    """The settings, or the configuration error printed and exit status 2."""
    try:
        return load_settings(config, **overrides)
    except ConfigError as error:
        error_console.print(f"[red]configuration error:[/red] {error}")
        raise typer.Exit(2) from error


def require_journal(settings: NodeSettings) -> None:
    """Exit with status 1, saying so, when the spool has no journal: nothing was received yet."""
    if not settings.journal_path.is_file():
        error_console.print(f"no journal at {settings.journal_path}: nothing received yet")
        raise typer.Exit(1)


def setup_logging() -> None:
    """INFO to stderr; the libraries' noise kept down."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("highdicom").setLevel(logging.WARNING)  # per-module copy notes
    # each pixel decoder's traceback for an undecodable image: the receipt's reason names them all
    logging.getLogger("pydicom.pixels.decoders.base").setLevel(logging.CRITICAL)


@app.callback()
def main() -> None:
    """dicom-node: research use only, not for diagnosis."""


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

    settings = settings_or_exit(config, spool=spool)
    require_journal(settings)
    receipts = Journal(settings.journal_path).recent(limit)
    if as_json:
        print(json.dumps([r.as_dict() for r in receipts], indent=2))
    else:
        console.print(status_table(receipts))


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
