"""The explainability map: a Secondary Capture image (PS3.3 A.8.1 SC Image IOD, see
:mod:`dicom_node.outputs.capture`) showing where on the radiograph each region's score comes from.

A 3 x 2 grid of the radiograph's display image (each tile at most 340 pixels on its longest side,
aspect ratio and orientation of the source kept): the top row holds regions A, B, C (right lung),
the bottom row D, E, F (left lung). Each tile carries that region's explainability map
(``BrixiaResult.explainability``: positive contribution to the region's expected score, 1 = the
region's maximum) in the colour-blind-safe viridis scale, the region's outline and its score.
Bands above and below carry the warnings, the model, the global score and the colour bar.
"""

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dicom_node.outputs.capture import secondary_capture
from dicom_node.outputs.common import safety_lines
from dicom_node.outputs.drawing import (
    BASE_FONT_SIZE,
    TEXT_RGBA,
    border_band,
    draw_label,
    draw_panel,
    draw_safety_panel,
    font,
    model_line,
    panel_height,
)
from dicom_node.outputs.source import OutputSource
from inference import BrixiaResult
from inference.preprocessing import display_copy
from inference.regions import MAX_GLOBAL_SCORE, REGIONS

EXPLAINABILITY_SERIES_NUMBER = 9703
TILE_SIDE = 340  # longest side of each tile (pixels): three tiles span at most 1020 pixels
GRID_COLUMNS = 3
MAP_ALPHA = 0.65  # opacity of the colour where the map is 1; it fades with the map to 0
# viridis (van der Walt & Smith, matplotlib), perceptually uniform and colour-blind-safe: colours
# at 0, 1/8, ..., 1, interpolated linearly in between.
VIRIDIS = np.array(
    [
        (68, 1, 84),
        (72, 40, 120),
        (62, 73, 137),
        (49, 104, 142),
        (38, 130, 142),
        (31, 158, 137),
        (53, 183, 121),
        (110, 206, 88),
        (253, 231, 37),
    ],
    dtype=np.float32,
)


def viridis(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) -> float RGB (shape + (3,)) on the viridis scale."""
    position = np.clip(values, 0.0, 1.0) * (len(VIRIDIS) - 1)
    low = np.minimum(position.astype(int), len(VIRIDIS) - 2)
    weight = (position - low)[..., None]
    return (1.0 - weight) * VIRIDIS[low] + weight * VIRIDIS[low + 1]


def _tile(display: np.ndarray, heat: np.ndarray, region: np.ndarray) -> np.ndarray:
    """RGB tile: the grey display image with a region's ``heat`` map (display frame) blended in
    and the region (``region``, a display-frame mask) outlined in white."""
    heat = np.clip(heat, 0.0, 1.0)[..., None]
    grey = np.repeat(display[..., None].astype(np.float32), 3, axis=2)
    rgb = (1.0 - MAP_ALPHA * heat) * grey + MAP_ALPHA * heat * viridis(heat[..., 0])
    rgb[border_band(region, 1)] = 255.0
    return np.round(rgb).astype(np.uint8)


def _draw_colour_bar(
    draw: ImageDraw.ImageDraw, origin: tuple[int, int], chosen: ImageFont.FreeTypeFont, height: int
) -> None:
    """Draw "Contribution 0 [viridis gradient] 1 (region maximum)"."""
    x, y = origin
    draw.text((x, y), "Contribution 0", font=chosen, fill=TEXT_RGBA)
    x += round(draw.textlength("Contribution 0 ", font=chosen))
    width = 8 * height
    for step, colour in enumerate(viridis(np.linspace(0.0, 1.0, width))):
        draw.line(
            (x + step, y, x + step, y + height), fill=(*np.round(colour).astype(int).tolist(), 255)
        )
    draw.rectangle((x, y, x + width, y + height), outline=TEXT_RGBA)
    draw.text((x + width + height // 2, y), "1 (region maximum)", font=chosen, fill=TEXT_RGBA)


def render_explainability(display: np.ndarray, maps: np.ndarray, result: BrixiaResult) -> np.ndarray:
    """Grey uint8 tile-sized image (rows, cols) and the six region ``maps`` of ``result`` (model
    frame, (6, S, S)) -> RGB uint8 grid of the maps with the bands: (top band + 2 rows + bottom
    band, 3 cols, 3)."""
    rows, cols = display.shape
    mapping = result.mapping.for_shape(display.shape)
    labels = mapping.map_to_source(result.region_map, labels=True)
    size = max(BASE_FONT_SIZE, round(GRID_COLUMNS * cols / 48))
    info = [
        (f"Explainability: Brixia score {result.global_score}/{MAX_GLOBAL_SCORE}", TEXT_RGBA),
        (model_line(result), TEXT_RGBA),
    ]
    top = panel_height(len(safety_lines(result)), size)
    bottom = panel_height(len(info) + 1, size)  # + the colour bar
    canvas = np.zeros((top + 2 * rows + bottom, GRID_COLUMNS * cols, 3), dtype=np.uint8)
    for index in range(len(REGIONS)):
        row, column = divmod(index, GRID_COLUMNS)
        canvas[top + row * rows : top + (row + 1) * rows, column * cols : (column + 1) * cols] = _tile(
            display, mapping.map_to_source(maps[index]), labels == index + 1
        )
    image = Image.fromarray(canvas)
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw_safety_panel(draw, image.size, result, size)
    caption = font(size)
    for index, region in enumerate(REGIONS):
        row, column = divmod(index, GRID_COLUMNS)
        draw_label(
            draw,
            (column * cols + size // 3, top + row * rows + size // 3),
            f"{region.name} {region.lung} {region.zone}: {result.region_scores[region.name]}",
            caption,
        )
    draw_panel(draw, image.size, info, size, at_top=False, footer=_draw_colour_bar)
    composed = Image.alpha_composite(image.convert("RGBA"), layer)
    return np.asarray(composed.convert("RGB"))


def explainability_pixels(source: OutputSource, result: BrixiaResult) -> np.ndarray:
    """The explainability map's RGB pixels for ``source``."""
    return render_explainability(display_copy(source.display, TILE_SIDE), result.explainability, result)


def build_explainability(source: OutputSource, result: BrixiaResult) -> hd.sc.SCImage:
    """Secondary Capture RGB image of the per-region explainability maps over ``source``."""
    return secondary_capture(
        source,
        result,
        "explainability",
        explainability_pixels(source, result),
        EXPLAINABILITY_SERIES_NUMBER,
        "Brixia score maps",
        "Display image of the source radiograph with the per-region explainability maps of the "
        "Brixia scores burned in",
    )
