"""One received radiograph as every output is built from it, derived once per image: the
dataset, its reference header (what the outputs copy: :func:`~dicom_node.outputs.common.reference_header`),
the transfer syntax it arrived in (lossy history, PS3.3 C.7.6.1.1.5) and, on first use, its
display image (Modality and VOI LUT applied, MONOCHROME1 inverted)."""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from pydicom.dataset import Dataset

from dicom_node.outputs.common import reference_header
from inference.preprocessing import display_image_from_dataset


@dataclass(frozen=True)
class OutputSource:
    """What the outputs of one radiograph share; make it with :meth:`of`."""

    dataset: Dataset
    header: Dataset
    transfer_syntax: str | None

    @classmethod
    def of(cls, dataset: Dataset) -> "OutputSource":
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
        return cls(dataset, reference_header(dataset), syntax)

    @cached_property
    def display(self) -> np.ndarray:
        """(rows, cols) float32 in [0, 1], air dark: the radiograph as a viewer shows it."""
        return display_image_from_dataset(self.dataset)
