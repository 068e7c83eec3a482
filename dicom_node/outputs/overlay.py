"""The Brixia overlay: a Secondary Capture image (PS3.3 A.8.1 SC Image IOD, see
:mod:`dicom_node.outputs.capture`) of the radiograph with the six regions, their scores, a legend,
the model and the warnings burned in.

The image is the radiograph's display image (Modality/VOI LUT applied, MONOCHROME1 inverted) at
most 1024 pixels on its longest side, aspect ratio and orientation of the source kept.
"""

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dicom_node.outputs.capture import secondary_capture
from dicom_node.outputs.drawing import (
    BASE_FONT_SIZE,
    TEXT_RGBA,
    border_band,
    draw_label,
    draw_panel,
    draw_safety_panel,
    font,
    model_line,
)
from dicom_node.outputs.source import OutputSource
from inference import BrixiaResult
from inference.preprocessing import display_copy
from inference.regions import MAX_GLOBAL_SCORE, REGIONS, SCORE_LEVELS

OVERLAY_SERIES_NUMBER = 9702

# Okabe & Ito colour-blind-safe colours, one per Brixia score 0-3: blue, yellow, orange, vermillion.
PALETTE: dict[int, tuple[int, int, int]] = {
    0: (0, 114, 178),
    1: (240, 228, 66),
    2: (230, 159, 0),
    3: (213, 94, 0),
}
FILL_ALPHA = 0.3


def _tint_regions(
    display: np.ndarray, labels: np.ndarray, result: BrixiaResult, thickness: int
) -> np.ndarray:
    """Grey display -> RGB with each region filled translucently and outlined in its score colour."""
    colours = np.zeros((len(REGIONS) + 1, 3), dtype=np.float32)  # label -> score colour
    for index, region in enumerate(REGIONS, start=1):
        colours[index] = PALETTE[result.region_scores[region.name]]
    alpha = np.where(labels > 0, FILL_ALPHA, 0.0).astype(np.float32)[..., None]
    rgb = (1.0 - alpha) * display[..., None].astype(np.float32) + alpha * colours[labels]
    for index in range(1, len(REGIONS) + 1):
        rgb[border_band(labels == index, thickness)] = colours[index]
    return np.round(rgb).astype(np.uint8)


def _draw_region_labels(
    draw: ImageDraw.ImageDraw,
    labels: np.ndarray,
    result: BrixiaResult,
    size: int,
    free_rows: tuple[float, float],
) -> None:
    """Draw labels such as "A 2" at the centre of each region present in ``labels``, kept within
    ``free_rows`` (the rows between the text panels)."""
    chosen = font(size)
    low, high = free_rows[0] + size / 2, free_rows[1] - size / 2
    for index, region in enumerate(REGIONS, start=1):
        rows, cols = np.nonzero(labels == index)
        if rows.size:
            draw_label(
                draw,
                (float(cols.mean()), float(np.clip(rows.mean(), low, max(low, high)))),
                f"{region.name} {result.region_scores[region.name]}",
                chosen,
                anchor="mm",
            )


def _draw_legend(
    draw: ImageDraw.ImageDraw, origin: tuple[int, int], chosen: ImageFont.FreeTypeFont, box: int
) -> None:
    """Draw "Score" and one colour swatch per Brixia score 0-3."""
    x, y = origin
    draw.text((x, y), "Score", font=chosen, fill=TEXT_RGBA)
    x += draw.textlength("Score ", font=chosen)
    for score in range(SCORE_LEVELS):
        draw.rectangle((x, y, x + box, y + box), fill=(*PALETTE[score], 255), outline=TEXT_RGBA)
        x += box + box // 3
        draw.text((x, y), str(score), font=chosen, fill=TEXT_RGBA)
        x += draw.textlength(f"{score}  ", font=chosen)


def render_overlay(display: np.ndarray, labels: np.ndarray, result: BrixiaResult) -> np.ndarray:
    """Grey uint8 image (rows, cols) + region labels (0 background, 1-6 = A-F) in the same frame
    -> RGB uint8 (rows, cols, 3) with regions, labels, legend, model and warnings burned in."""
    size = max(BASE_FONT_SIZE, round(max(display.shape) / 32))
    image = Image.fromarray(_tint_regions(display, labels, result, max(1, size // 8)))
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    free_top = draw_safety_panel(draw, image.size, result, size)
    scores = "  ".join(f"{name} {score}" for name, score in result.region_scores.items())
    info = [
        (f"Brixia score {result.global_score}/{MAX_GLOBAL_SCORE}", TEXT_RGBA),
        (scores, TEXT_RGBA),
        (model_line(result), TEXT_RGBA),
    ]
    info_size = max(BASE_FONT_SIZE, round(size * 0.8))
    free_bottom, _ = draw_panel(
        draw, image.size, info, info_size, at_top=False, footer=_draw_legend
    )
    _draw_region_labels(draw, labels, result, round(size * 1.4), (free_top, free_bottom))
    composed = Image.alpha_composite(image.convert("RGBA"), layer)
    return np.asarray(composed.convert("RGB"))


def overlay_pixels(source: OutputSource, result: BrixiaResult) -> np.ndarray:
    """The overlay's RGB pixels for ``source`` (display copy, regions mapped to its frame)."""
    display = display_copy(source.display)
    labels = result.mapping.for_shape(display.shape).map_to_source(result.region_map, labels=True)
    return render_overlay(display, labels, result)


def build_overlay(source: OutputSource, result: BrixiaResult) -> hd.sc.SCImage:
    """Secondary Capture RGB overlay of ``source`` with the Brixia result, in its study."""
    return secondary_capture(
        source,
        result,
        "overlay",
        overlay_pixels(source, result),
        OVERLAY_SERIES_NUMBER,
        "Brixia overlay",
        "Display image of the source radiograph with the Brixia regions and scores burned in",
    )
