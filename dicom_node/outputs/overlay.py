"""The Brixia overlay: a Secondary Capture image (PS3.3 A.8.1 SC Image IOD) of the radiograph
with the six regions, their scores, a legend, the model and the warnings burned in.

The image is the radiograph's display image (Modality/VOI LUT applied, MONOCHROME1 inverted) at
most 1024 pixels on its longest side, aspect ratio and orientation of the source kept, RGB,
uncompressed (Explicit VR Little Endian). Modality is "OT", never CR/DX, so the node does not
triage its own output.
"""

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSNearLossless,
)

from dicom_node.outputs.common import (
    CONTENT_QUALIFICATION,
    MANUFACTURER,
    copied_names_allowed,
    instance_number,
    output_uids,
    reference_header,
    safety_lines,
    series_description,
    summary_text,
)
from inference import BrixiaResult
from inference.preprocessing import display_copy, display_image_from_dataset
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
PANEL_RGBA = (0, 0, 0, 170)
TEXT_RGBA = (255, 255, 255, 255)
WARNING_RGBA = (240, 228, 66, 255)
MIN_FONT_SIZE = 10  # smallest text drawn (pixels)
BASE_FONT_SIZE = 14  # text size on small images; larger images scale it up

# Lossy Image Compression Method (0028,2114) implied by a lossy transfer syntax (PS3.3 C.7.6.1.1.5).
_LOSSY_METHODS = {
    JPEGBaseline8Bit: "ISO_10918_1",
    JPEGExtended12Bit: "ISO_10918_1",
    JPEG2000: "ISO_15444_1",
    JPEGLSNearLossless: "ISO_14495_1",
}


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(MIN_FONT_SIZE, size))


def _fitted_font(
    draw: ImageDraw.ImageDraw, lines: list[str], width: int, size: int
) -> ImageFont.FreeTypeFont:
    """The largest font up to ``size`` in which every line fits ``width`` pixels."""
    while size > MIN_FONT_SIZE:
        font = _font(size)
        if max(draw.textlength(line, font=font) for line in lines) <= width:
            return font
        size -= 1
    return _font(MIN_FONT_SIZE)


def _outline(mask: np.ndarray, thickness: int) -> np.ndarray:
    """Pixels of ``mask`` within ``thickness`` of its border."""
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    inner = np.asarray(image.filter(ImageFilter.MinFilter(2 * thickness + 1))) > 0
    return mask & ~inner


def _tint_regions(
    display: np.ndarray, labels: np.ndarray, result: BrixiaResult, thickness: int
) -> np.ndarray:
    """Grey display -> RGB with each region filled translucently and outlined in its score colour."""
    rgb = np.repeat(display[..., None].astype(np.float32), 3, axis=2)
    for index, region in enumerate(REGIONS, start=1):
        mask = labels == index
        colour = np.array(PALETTE[result.region_scores[region.name]], dtype=np.float32)
        rgb[mask] = (1.0 - FILL_ALPHA) * rgb[mask] + FILL_ALPHA * colour
        rgb[_outline(mask, thickness)] = colour
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
    font = _font(size)
    low, high = free_rows[0] + size / 2, free_rows[1] - size / 2
    for index, region in enumerate(REGIONS, start=1):
        rows, cols = np.nonzero(labels == index)
        if rows.size:
            draw.text(
                (float(cols.mean()), float(np.clip(rows.mean(), low, max(low, high)))),
                f"{region.name} {result.region_scores[region.name]}",
                font=font,
                fill=TEXT_RGBA,
                anchor="mm",
                stroke_width=max(1, size // 14),
                stroke_fill=(0, 0, 0, 255),
            )


def _draw_panel(
    draw: ImageDraw.ImageDraw,
    canvas: tuple[int, int],
    lines: list[tuple[str, tuple[int, int, int, int]]],
    size: int,
    at_top: bool,
    legend: bool = False,
) -> tuple[int, int]:
    """A translucent full-width band at the top or bottom with one text line per entry (and,
    with ``legend``, a row of score colour swatches under them); returns its first and last
    row."""
    width, height = canvas
    pad = max(2, size // 3)
    texts = [text for text, _ in lines]
    font = _fitted_font(draw, texts, width - 2 * pad, size)
    line_height = font.getbbox("Ag")[3] + pad
    rows = len(lines) + (1 if legend else 0)
    top = 0 if at_top else height - rows * line_height - pad
    bottom = top + rows * line_height + pad
    draw.rectangle((0, top, width, bottom), fill=PANEL_RGBA)
    y = top + pad
    for text, fill in lines:
        draw.text((pad, y), text, font=font, fill=fill)
        y += line_height
    if legend:
        _draw_legend(draw, (pad, y), font, line_height - pad)
    return top, bottom


def _draw_legend(
    draw: ImageDraw.ImageDraw, origin: tuple[int, int], font: ImageFont.FreeTypeFont, box: int
) -> None:
    """Draw "Score" and one colour swatch per Brixia score 0-3."""
    x, y = origin
    draw.text((x, y), "Score", font=font, fill=TEXT_RGBA)
    x += draw.textlength("Score ", font=font)
    for score in range(SCORE_LEVELS):
        draw.rectangle((x, y, x + box, y + box), fill=(*PALETTE[score], 255), outline=TEXT_RGBA)
        x += box + box // 3
        draw.text((x, y), str(score), font=font, fill=TEXT_RGBA)
        x += draw.textlength(f"{score}  ", font=font)


def render_overlay(display: np.ndarray, labels: np.ndarray, result: BrixiaResult) -> np.ndarray:
    """Grey uint8 image (rows, cols) + region labels (0 background, 1-6 = A-F) in the same frame
    -> RGB uint8 (rows, cols, 3) with regions, labels, legend, model and warnings burned in."""
    rows, cols = display.shape
    size = max(BASE_FONT_SIZE, round(max(rows, cols) / 32))
    image = Image.fromarray(_tint_regions(display, labels, result, max(1, size // 8)))
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    warnings = [
        (line, TEXT_RGBA if index == 0 else WARNING_RGBA)
        for index, line in enumerate(safety_lines(result))
    ]
    _, free_top = _draw_panel(draw, image.size, warnings, size, at_top=True)
    scores = "  ".join(f"{name} {score}" for name, score in result.region_scores.items())
    model = f"{result.model_name} {result.model_version}  weights {result.weights_sha256[:12]}"
    info = [
        (f"Brixia score {result.global_score}/{MAX_GLOBAL_SCORE}", TEXT_RGBA),
        (scores, TEXT_RGBA),
        (model, TEXT_RGBA),
    ]
    info_size = max(BASE_FONT_SIZE, round(size * 0.8))
    free_bottom, _ = _draw_panel(draw, image.size, info, info_size, at_top=False, legend=True)
    _draw_region_labels(draw, labels, result, round(size * 1.4), (free_top, free_bottom))
    composed = Image.alpha_composite(image.convert("RGBA"), layer)
    return np.asarray(composed.convert("RGB"))


def overlay_pixels(source: Dataset, result: BrixiaResult) -> np.ndarray:
    """The overlay's RGB pixels for ``source`` (display copy, regions mapped to its frame)."""
    display = display_copy(display_image_from_dataset(source))
    labels = result.mapping.for_shape(display.shape).map_to_source(result.region_map, labels=True)
    return render_overlay(display, labels, result)


def _keep_lossy_history(header: Dataset, syntax: str | None, image: Dataset) -> None:
    """An image derived from a lossy-compressed one stays marked lossy (PS3.3 C.7.6.1.1.5): the
    source's own Lossy Image Compression wins; without one, a lossy transfer syntax implies it."""
    declared = header.get("LossyImageCompression")
    if declared != "01" and (declared == "00" or syntax not in _LOSSY_METHODS):
        return
    method = header.get("LossyImageCompressionMethod") or _LOSSY_METHODS.get(syntax)
    image.LossyImageCompression = "01"
    if method:
        image.LossyImageCompressionMethod = method
    if header.get("LossyImageCompressionRatio"):
        image.LossyImageCompressionRatio = header.LossyImageCompressionRatio


def build_overlay(source: Dataset, result: BrixiaResult) -> hd.sc.SCImage:
    """Secondary Capture RGB overlay of ``source`` with the Brixia result, in its study."""
    header = reference_header(source)
    series_uid, sop_uid = output_uids(source, result, "overlay")
    with copied_names_allowed():
        image = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=header,
            pixel_array=overlay_pixels(source, result),
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            series_instance_uid=series_uid,
            series_number=OVERLAY_SERIES_NUMBER,
            sop_instance_uid=sop_uid,
            instance_number=instance_number(source),
            manufacturer=MANUFACTURER,
            patient_orientation=("L", "F"),  # replaced below by the source's own value
            transfer_syntax_uid=ExplicitVRLittleEndian,
            series_description=series_description(result, "Brixia overlay"),
            manufacturer_model_name=result.model_name,
            software_versions=result.model_version,
            content_qualification=CONTENT_QUALIFICATION,
        )
        image.copy_patient_and_study_information(header)
    # The display copy keeps the source's orientation: copy it, empty (Type 2C) where unknown.
    image.PatientOrientation = header.get("PatientOrientation")
    image.ImageLaterality = "B"  # a frontal chest image shows both lungs (PS3.3 C.7.6.1)
    if header.get("BodyPartExamined"):
        image.BodyPartExamined = header.BodyPartExamined
    image.ConversionType = "WSD"  # produced by a workstation (PS3.3 C.8.6.1)
    image.BurnedInAnnotation = "YES"
    image.ImageComments = summary_text(result)
    image.DerivationDescription = (
        f"Display image of the source radiograph with {result.algorithm_label} Brixia regions "
        "and scores burned in"
    )[:1024]
    reference = Dataset()
    reference.ReferencedSOPClassUID = header.SOPClassUID
    reference.ReferencedSOPInstanceUID = header.SOPInstanceUID
    image.SourceImageSequence = [reference]
    syntax = getattr(getattr(source, "file_meta", None), "TransferSyntaxUID", None)
    _keep_lossy_history(header, syntax, image)
    return image
