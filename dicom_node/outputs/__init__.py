"""The node's DICOM outputs for one scored radiograph, in the source's study.

``build_sr(source, result)``: Comprehensive 3D SR, TID 1500 Measurement Report (PS3.16).
``build_overlay(source, result)``: Secondary Capture RGB image with the result burned in (PS3.3).
``build_outputs(source, result)``: ``[sr, overlay]``. Output UIDs are derived from the source and
the model, so re-sending the same radiograph replaces rather than duplicates (see docs/outputs.md).
"""

from pydicom.dataset import Dataset

from dicom_node.outputs.overlay import build_overlay
from dicom_node.outputs.sr import build_sr
from inference import BrixiaResult


def build_outputs(source: Dataset, result: BrixiaResult) -> list[Dataset]:
    """The SR and the overlay for ``source`` (a received radiograph) scored as ``result``."""
    return [build_sr(source, result), build_overlay(source, result)]


__all__ = ["build_outputs", "build_overlay", "build_sr"]
