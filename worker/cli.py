"""The ``dicom-node`` entry point: the node's command line (:mod:`dicom_node.cli`) with the
commands that compose the node and a worker - ``serve`` (the node, with its own broker and
worker by default), ``worker`` (a Celery worker) and ``retry`` (queue results again). This is the
one module where ``dicom_node`` and ``worker`` meet; each command imports what it runs when it
runs (``status`` or ``model-info`` need neither Celery nor torch)."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from dicom_node.cli import (
    ConfigOption,
    SpoolOption,
    UntrainedOption,
    WeightsOption,
    app,
    console,
    error_console,
    require_journal,
    settings_or_exit,
    setup_logging,
)
from dicom_node.config import ConfigError, NodeSettings

BrokerOption = Annotated[
    str | None, typer.Option(help="Celery broker, e.g. redis://broker:6379/0 (default: the node's own private one)")
]


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
    from dicom_node.spool import SpoolInUse
    from inference.errors import InferenceError
    from worker.app import QUEUES, configure
    from worker.process import run_worker, settings_for_queues
    from worker.tasks import enqueue, enqueue_redelivery

    settings = settings_or_exit(
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
    setup_logging()
    try:
        settings.require_model()
        run(settings, work)
    except (ConfigError, BrokerError, InferenceError, SpoolInUse) as error:
        error_console.print(f"[red]cannot start:[/red] {error}")
        raise typer.Exit(2) from error


def run_worker_here(settings: NodeSettings, names: tuple[str, ...], broker_url: str) -> int:
    """Configure this process's app and logging and run a worker of ``names`` in it; its exit
    status, or 2 with the reason printed if its weights, device or run options are unusable (it
    stops before it takes any task)."""
    from inference.errors import InferenceError
    from worker.app import configure
    from worker.process import run_worker

    configure(settings, broker_url)
    setup_logging()
    try:
        return run_worker(settings, names)
    except InferenceError as error:
        error_console.print(f"[red]cannot start:[/red] {error}")
        return 2


def worker_process(settings: NodeSettings, names: tuple[str, ...], broker_url: str) -> None:
    """One of an inference worker's ``--concurrency`` processes (started by spawning: it inherits
    nothing from its parent, so it configures its own app and logging)."""
    sys.exit(run_worker_here(settings, names, broker_url))


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="comma-separated queues: node, inference")] = "node,inference",
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="worker processes: node queue, default one per CPU core; inference queue, processes sharing "
            "its device, default 1"
        ),
    ] = None,
    config: ConfigOption = None,
    spool: SpoolOption = None,
    destination: Annotated[
        str | None,
        typer.Option(help="node queue: where results may go, AET@HOST:PORT, as the node's (or the node's --config)"),
    ] = None,
    weights: WeightsOption = None,
    untrained: UntrainedOption = None,
    broker_url: BrokerOption = None,
    device: Annotated[str | None, typer.Option(help="e.g. cuda:1 (default: the first GPU, else the CPU)")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="images per forward pass (default: 1 on the CPU, 32 on a GPU)")
    ] = None,
    batch_wait_ms: Annotated[int | None, typer.Option(help="longest wait for a batch to fill (ms)")] = None,
    scoring_threads: Annotated[
        int | None,
        typer.Option(help="inference queue: batches scored at once, a thread each (default: CPU 1, GPU 2)"),
    ] = None,
    precision: Annotated[str | None, typer.Option(help="fp32 (default) or bf16 (autocast)")] = None,
    channels_last: Annotated[bool | None, typer.Option(help="channels-last memory format (default: on)")] = None,
    compile_network: Annotated[
        bool | None, typer.Option("--compile/--no-compile", help="torch.compile the network at start")
    ] = None,
    cuda_graphs: Annotated[
        bool | None,
        typer.Option(help="GPU: capture the network as CUDA graphs at start, one per scoring thread (default: off)"),
    ] = None,
) -> None:
    """Run a Celery worker: "node" beside the node (spool + PACS), "inference" anywhere (GPU)."""
    from worker.app import INFERENCE_QUEUE, NODE_QUEUE, QUEUES
    from worker.process import run_processes, settings_for_queues

    names = tuple(q.strip() for q in queues.split(",") if q.strip())
    unknown = set(names) - set(QUEUES)
    if not names or unknown:
        error_console.print(f"[red]unknown queue(s):[/red] {', '.join(sorted(unknown)) or 'none given'}")
        raise typer.Exit(2)
    if len(names) > 1 and concurrency not in (None, 1):
        error_console.print(
            "[red]--concurrency is for a worker of one queue:[/red] a worker of both scores one image at a time "
            "in one process (start a node worker and an inference worker to run several)"
        )
        raise typer.Exit(2)
    counts = {"node_concurrency": concurrency} if names == (NODE_QUEUE,) else {"inference_processes": concurrency}
    settings = settings_for_queues(
        settings_or_exit(
            config, spool=spool, destination=destination, weights=weights, untrained=untrained,
            broker_url=broker_url, **counts, device=device, batch_size=batch_size, batch_wait_ms=batch_wait_ms,
            scoring_threads=scoring_threads,
            precision=precision, channels_last=channels_last, compile_network=compile_network,
            cuda_graphs=cuda_graphs,
        ),
        names,
    )
    try:
        if INFERENCE_QUEUE in names:
            settings.require_model()
        broker = settings.worker_broker_url()
    except ConfigError as error:
        error_console.print(f"[red]cannot start:[/red] {error}")
        raise typer.Exit(2) from error
    if names == (INFERENCE_QUEUE,) and settings.inference_processes > 1:
        setup_logging()
        status = run_processes(settings.inference_processes, worker_process, (settings.picklable(), names, broker))
    else:
        status = run_worker_here(settings, names, broker)
    if status:
        raise typer.Exit(status)


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
    settings = settings_or_exit(config, spool=spool, broker_url=broker_url)
    require_journal(settings)
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
