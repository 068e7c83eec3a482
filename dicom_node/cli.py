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
BrokerOption = Annotated[str | None, typer.Option(help="Celery broker, e.g. redis://127.0.0.1:6379/0")]
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
    allow: Annotated[list[str] | None, typer.Option(help="calling AE titles allowed (repeat); default: any")] = None,
    destination: Annotated[str | None, typer.Option(help="where results go: AET@HOST:PORT")] = None,
    weights: WeightsOption = None,
    untrained: UntrainedOption = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="do not run a worker in this process")] = False,
    broker_url: BrokerOption = None,
) -> None:
    """Receive images (C-STORE), score frontal chest radiographs and send the results back."""
    from dicom_node.broker import BrokerError
    from dicom_node.serve import serve as run

    settings = _settings(
        config, ae_title=ae_title, host=host, port=port, spool=spool, allow=allow,
        destination=destination, weights=weights, untrained=untrained,
        worker=False if no_worker else None, broker_url=broker_url,
    )
    _logging()
    try:
        run(settings)
    except (ConfigError, BrokerError) as error:
        error_console.print(f"[red]cannot start:[/red] {error}")
        raise typer.Exit(2) from error


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="comma-separated queues: node, inference")] = "node,inference",
    concurrency: Annotated[int, typer.Option(help="worker processes")] = 1,
    config: ConfigOption = None,
    spool: SpoolOption = None,
    weights: WeightsOption = None,
    untrained: UntrainedOption = None,
    broker_url: BrokerOption = None,
) -> None:
    """Run a Celery worker: "node" beside the node (spool + PACS), "inference" anywhere (GPU)."""
    from dicom_node.serve import check_model_settings, run_worker

    names = tuple(q.strip() for q in queues.split(",") if q.strip())
    unknown = set(names) - {"node", "inference"}
    if not names or unknown:
        error_console.print(f"[red]unknown queue(s):[/red] {', '.join(sorted(unknown)) or 'none given'}")
        raise typer.Exit(2)
    settings = _settings(config, spool=spool, weights=weights, untrained=untrained, broker_url=broker_url)
    if "inference" in names:
        try:
            check_model_settings(settings)
        except ConfigError as error:
            error_console.print(f"[red]cannot start:[/red] {error}")
            raise typer.Exit(2) from error
    _logging()
    run_worker(settings, names, concurrency=concurrency, pool="prefork")


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


@app.command("model-info")
def model_info() -> None:
    """Print the model's name, version, parameter count and FLOPs at its input size."""
    from inference.model_info import describe
    from inference.model_spec import BSNET_SPEC

    info = describe(BSNET_SPEC)
    table = Table(title=f"dicom-node {__version__}", show_header=False)
    table.add_row("model", info.name)
    table.add_row("version", info.version)
    table.add_row("parameters", f"{info.parameters:,}")
    channels, height, width = info.input_shape
    table.add_row("input", f"{channels} x {height} x {width}")
    table.add_row(f"FLOPs at {height}x{width}", f"{info.flops_per_image / 1e9:.2f} GFLOPs per image")
    console.print(table)
