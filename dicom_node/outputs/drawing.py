"""Drawing shared by the secondary captures (overlay and explainability map): fonts, region
outlines and the translucent text bands that carry the scores, the model and the warnings."""

from collections.abc import Callable

import numpy as np
from PIL import ImageDraw, ImageFont

from dicom_node.outputs.common import safety_lines
from inference import BrixiaResult

PANEL_RGBA = (0, 0, 0, 170)
TEXT_RGBA = (255, 255, 255, 255)
WARNING_RGBA = (240, 228, 66, 255)
MIN_FONT_SIZE = 10  # smallest text drawn (pixels)
BASE_FONT_SIZE = 14  # text size on small images; larger images scale it up

# Draws one extra row under a band's text: (draw, (x, y), font, row height in pixels).
FooterRow = Callable[[ImageDraw.ImageDraw, tuple[int, int], ImageFont.FreeTypeFont, int], None]


def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's scalable default font, never smaller than :data:`MIN_FONT_SIZE`."""
    return ImageFont.load_default(size=max(MIN_FONT_SIZE, size))


def _fitted_font(
    draw: ImageDraw.ImageDraw, lines: list[str], width: int, size: int
) -> ImageFont.FreeTypeFont:
    """The largest font up to ``size`` in which every line fits ``width`` pixels."""
    while size > MIN_FONT_SIZE:
        candidate = font(size)
        if max(draw.textlength(line, font=candidate) for line in lines) <= width:
            return candidate
        size -= 1
    return font(MIN_FONT_SIZE)


def draw_label(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    chosen: ImageFont.FreeTypeFont,
    anchor: str | None = None,
) -> None:
    """White text with a black stroke, legible on any part of a radiograph."""
    draw.text(
        xy,
        text,
        font=chosen,
        fill=TEXT_RGBA,
        anchor=anchor,
        stroke_width=max(1, round(chosen.size) // 14),
        stroke_fill=(0, 0, 0, 255),
    )


def border_band(mask: np.ndarray, thickness: int) -> np.ndarray:
    """Pixels of ``mask`` within ``thickness`` of its border (or of the image's edge).

    Erosion by a (2t+1)^2 square counted with an integral image of the mask's bounding box
    (outside it, as beyond the image's edge, nothing is in the mask): linear in the box's size
    whatever the thickness.
    """
    border = np.zeros(mask.shape, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return border
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    side = 2 * thickness + 1
    padded = np.pad(mask[box], thickness).astype(np.int32)
    integral = np.pad(padded.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    window = integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side]
    border[box] = mask[box] & (window < side * side)
    return border


def panel_height(rows: int, size: int) -> int:
    """Height in pixels of a band of ``rows`` rows drawn by :func:`draw_panel` at ``size`` (a
    band whose text had to shrink to fit is lower)."""
    pad = max(2, size // 3)
    return rows * (font(size).getbbox("Ag")[3] + pad) + pad


def draw_panel(
    draw: ImageDraw.ImageDraw,
    canvas: tuple[int, int],
    lines: list[tuple[str, tuple[int, int, int, int]]],
    size: int,
    at_top: bool,
    footer: FooterRow | None = None,
) -> tuple[int, int]:
    """A translucent full-width band at the top or bottom with one text line per entry (and,
    with ``footer``, one more row drawn by it); returns the band's first and last row."""
    width, height = canvas
    pad = max(2, size // 3)
    chosen = _fitted_font(draw, [text for text, _ in lines], width - 2 * pad, size)
    line_height = chosen.getbbox("Ag")[3] + pad
    rows = len(lines) + (1 if footer else 0)
    top = 0 if at_top else height - rows * line_height - pad
    bottom = top + rows * line_height + pad
    draw.rectangle((0, top, width, bottom), fill=PANEL_RGBA)
    y = top + pad
    for text, fill in lines:
        draw.text((pad, y), text, font=chosen, fill=fill)
        y += line_height
    if footer:
        footer(draw, (pad, y), chosen, line_height - pad)
    return top, bottom


def draw_safety_panel(
    draw: ImageDraw.ImageDraw, canvas: tuple[int, int], result: BrixiaResult, size: int
) -> int:
    """The top band with the research-use line (white) and the untrained warning (yellow) if
    any; returns the band's last row."""
    lines = [
        (line, TEXT_RGBA if index == 0 else WARNING_RGBA)
        for index, line in enumerate(safety_lines(result))
    ]
    return draw_panel(draw, canvas, lines, size, at_top=True)[1]


def model_line(result: BrixiaResult) -> str:
    """Model name, version, the first 12 hex digits of the weights checksum and the weights' source."""
    model = result.model
    return f"{model.name} {model.version}  weights {model.short_checksum} ({model.weights_source})"
