"""Mapping between the model frame (S x S, S = 512) and a source image frame (rows x cols).

The model input is the source resized without keeping the aspect ratio (BSNET.md "Input"), so
the mapping is an axis-aligned scale. Coordinates are continuous (row, col) with pixel edges at
integers: model point (y, x) is source point (y * rows / S, x * cols / S).
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class FrameMapping:
    """Scale between the model frame and one image frame of the same radiograph."""

    source_shape: tuple[int, int]  # (rows, cols) of the source frame
    model_size: int = 512

    @property
    def scale(self) -> tuple[float, float]:
        """Source pixels per model pixel, (row scale, column scale)."""
        rows, cols = self.source_shape
        return rows / self.model_size, cols / self.model_size

    def to_source(self, points: np.ndarray) -> np.ndarray:
        """Model (y, x) points, shape (N, 2) -> source (row, col) points."""
        return np.asarray(points, dtype=np.float64) * np.array(self.scale)

    def to_model(self, points: np.ndarray) -> np.ndarray:
        """Source (row, col) points, shape (N, 2) -> model (y, x) points."""
        return np.asarray(points, dtype=np.float64) / np.array(self.scale)

    def box_to_source(self, box: tuple[float, float, float, float]) -> tuple[float, ...]:
        """Model box (y1, x1, y2, x2) in pixel-edge coordinates -> source box."""
        corners = self.to_source(np.array([box[:2], box[2:]]))
        return tuple(float(v) for v in corners.reshape(-1))

    def map_to_source(self, array: np.ndarray, labels: bool = False) -> np.ndarray:
        """Resample a model-frame map (S, S) to the source frame (rows, cols).

        ``labels=True`` uses nearest-neighbour (masks, region labels); otherwise bilinear.
        """
        rows, cols = self.source_shape
        if labels:
            image = Image.fromarray(np.asarray(array, dtype=np.uint8))
            return np.asarray(image.resize((cols, rows), Image.Resampling.NEAREST))
        image = Image.fromarray(np.asarray(array, dtype=np.float32), mode="F")
        return np.asarray(image.resize((cols, rows), Image.Resampling.BILINEAR))

    def for_shape(self, shape: tuple[int, int]) -> "FrameMapping":
        """The same mapping to another frame of this radiograph (e.g. a display copy)."""
        return FrameMapping((int(shape[0]), int(shape[1])), self.model_size)
