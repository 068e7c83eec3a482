"""The node's DICOM outputs for one scored radiograph, in the source's study.

Each builder takes an :class:`OutputSource` (the radiograph with what every output shares,
derived once: ``OutputSource.of(dataset)``) and the result:
``build_sr``: Comprehensive 3D SR, TID 1500 Measurement Report (PS3.16).
``build_overlay``: Secondary Capture RGB image with the result burned in (PS3.3).
``build_explainability``: Secondary Capture RGB image of the per-region maps.
``build_seg``: binary Segmentation of the lungs and the six regions (PS3.3).
``build_outputs(source, result, kinds=DEFAULT_OUTPUT_KINDS)``: the chosen kinds, in the order of
``OUTPUT_KINDS``, for a dataset or an OutputSource. Output UIDs are derived from the source and
the model, so re-sending the same radiograph replaces rather than duplicates (docs/outputs.md).
"""

from collections.abc import Callable, Sequence

from pydicom.dataset import Dataset

from dicom_node.config import OUTPUT_KINDS, OutputKind
from dicom_node.outputs.explainability import build_explainability
from dicom_node.outputs.overlay import build_overlay
from dicom_node.outputs.seg import build_seg
from dicom_node.outputs.source import OutputSource
from dicom_node.outputs.sr import build_sr
from inference import BrixiaResult

DEFAULT_OUTPUT_KINDS: tuple[OutputKind, ...] = OUTPUT_KINDS
_BUILDERS: dict[OutputKind, Callable[[OutputSource, BrixiaResult], Dataset]] = {
    "sr": build_sr,
    "overlay": build_overlay,
    "explainability": build_explainability,
    "seg": build_seg,
}


def build_outputs(
    source: Dataset | OutputSource, result: BrixiaResult, kinds: Sequence[str] = DEFAULT_OUTPUT_KINDS
) -> list[Dataset]:
    """The outputs of ``kinds`` (each of :data:`OUTPUT_KINDS`) for ``source`` (a received
    radiograph) scored as ``result``; ValueError for an unknown kind."""
    unknown = sorted(set(kinds) - set(OUTPUT_KINDS))
    if unknown:
        raise ValueError(f"unknown output kinds {unknown}: choose from {', '.join(OUTPUT_KINDS)}")
    shared = source if isinstance(source, OutputSource) else OutputSource.of(source)
    return [_BUILDERS[kind](shared, result) for kind in OUTPUT_KINDS if kind in kinds]


__all__ = [
    "DEFAULT_OUTPUT_KINDS",
    "OUTPUT_KINDS",
    "OutputSource",
    "build_explainability",
    "build_outputs",
    "build_overlay",
    "build_seg",
    "build_sr",
]
