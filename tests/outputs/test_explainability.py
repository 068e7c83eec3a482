"""The explainability map: a 3 x 2 grid of the radiograph with each region's map, and a colour
bar."""


import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicom_node.outputs.explainability import (
    EXPLAINABILITY_SERIES_NUMBER,
    MAP_ALPHA,
    TILE_SIDE,
    VIRIDIS,
    render_explainability,
    viridis,
)
from inference import UNTRAINED_WARNING
from inference.preprocessing import display_copy, display_image_from_dataset
from tests.outputs.conftest import LONG_VALUE_WARNING, NAMES

pytestmark = pytest.mark.filterwarnings(f"ignore:{LONG_VALUE_WARNING}:UserWarning")


def test_viridis_runs_from_purple_to_yellow() -> None:
    assert np.array_equal(viridis(np.array([0.0, 1.0])), VIRIDIS[[0, -1]])
    assert np.allclose(viridis(np.array(0.0625)), (VIRIDIS[0] + VIRIDIS[1]) / 2)
    assert np.array_equal(viridis(np.array([-1.0, 2.0])), VIRIDIS[[0, -1]])  # clipped


@pytest.mark.parametrize("name", NAMES)
def test_explainability_is_an_rgb_grid_of_the_radiograph(name: str, built) -> None:
    data = built(name)
    source = data.source
    image = pydicom.dcmread(data.files["explainability"])
    assert image.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert (image.PhotometricInterpretation, image.SamplesPerPixel) == ("RGB", 3)
    assert (image.Modality, image.BurnedInAnnotation) == ("OT", "YES")
    assert image.SeriesNumber == EXPLAINABILITY_SERIES_NUMBER
    assert image.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert image.SeriesDescription == f"{UNTRAINED_WARNING} - BS-Net Brixia score maps"
    tile = display_copy(display_image_from_dataset(source), TILE_SIDE)
    assert max(tile.shape) == min(TILE_SIDE, max(source.Rows, source.Columns))
    assert image.Columns == 3 * tile.shape[1] and image.Rows > 2 * tile.shape[0]


@pytest.mark.parametrize("name", NAMES)
def test_explainability_maps_lie_over_their_region_tiles(name: str, built) -> None:
    data = built(name)
    # Each region's map is constant on the model frame's top-left quadrant, 0 elsewhere: 1 for A,
    # then lower for B-F, so each tile's tint tells which map it shows.
    levels = [1.0, 0.8, 0.6, 0.45, 0.3, 0.15]
    maps = np.zeros_like(data.result.explainability)
    for index, level in enumerate(levels):
        maps[index, :256, :256] = level
    display = np.full((200, 300), 100, dtype=np.uint8)  # each tile: 200 rows, 300 columns
    rgb = render_explainability(display, maps, data.result).astype(float)
    assert rgb.shape[1] == 3 * 300 and rgb.shape[0] > 2 * 200

    def tint(level: float) -> np.ndarray:
        return np.round((1 - MAP_ALPHA * level) * 100 + MAP_ALPHA * level * viridis(level))

    rows, cols = np.nonzero(np.all(rgb == tint(1.0), axis=2))
    # Region A's tint covers the top-left quadrant of the top-left tile, below the top band.
    grid_top = rows.min()
    assert 0 < grid_top < rgb.shape[0] - 2 * 200
    assert abs(rows.max() + 1 - grid_top - 100) <= 2 and cols.min() == 0
    assert abs(cols.max() + 1 - 150) <= 2
    # Top row A, B, C (right lung), bottom row D, E, F; the bottom half of each tile is untinted.
    for index, level in enumerate(levels):
        row, column = divmod(index, 3)
        top, left = grid_top + row * 200, column * 300
        assert np.array_equal(rgb[top + 60, left + 100], tint(level)), "ABCDEF"[index]
        assert np.array_equal(rgb[top + 160, left + 100], [100, 100, 100]), "ABCDEF"[index]
    # The colour bar in the bottom band runs from viridis 0 to viridis 1.
    band = rgb[grid_top + 400 :].reshape(-1, 3)
    for end in (VIRIDIS[0], VIRIDIS[-1]):
        assert np.any(np.all(np.abs(band - end) <= 2, axis=1))
