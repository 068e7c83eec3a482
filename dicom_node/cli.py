"""The ``dicom-node`` command line (typer)."""

import typer
from rich.console import Console
from rich.table import Table

from dicom_node import __version__

app = typer.Typer(help="DICOM node scoring chest radiographs with BS-Net (research use only).")
console = Console()


@app.callback()
def main() -> None:
    """dicom-node: research use only, not for diagnosis."""


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
