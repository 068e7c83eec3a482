"""The six Brixia regions and their boxes in the aligned lung frame.

Brixia score (Borghesi & Maroldi 2020; BSNET.md "Brixia score"): each lung is split into upper,
middle and lower zones. A/B/C are the right lung, D/E/F the left lung. On a frontal radiograph the
patient's right lung is on the image's left, so A-C use columns 0-0.5 of the aligned image.
The boxes are the overlapping bands of the authors' ROI pooling (BSNET.md, "ROI pooling").
"""

from dataclasses import dataclass

SCORE_LEVELS = 4  # Brixia 0..3 per region
MAX_GLOBAL_SCORE = 18


@dataclass(frozen=True)
class Region:
    """One Brixia region: its letter, lung, zone and pooling box (y1, x1, y2, x2) in [0, 1]."""

    name: str
    lung: str  # "right" or "left" (patient side)
    zone: str  # "upper", "middle" or "lower"
    box: tuple[float, float, float, float]
    label_rows: tuple[float, float]  # non-overlapping split used for the region label map


_ROW_BANDS = {"upper": (0.0, 0.4), "middle": (0.3, 0.7), "lower": (0.6, 1.0)}
# Label map: each overlap band is split at its middle (0.35 and 0.65).
_LABEL_ROWS = {"upper": (0.0, 0.35), "middle": (0.35, 0.65), "lower": (0.65, 1.0)}
_COLUMNS = {"right": (0.0, 0.5), "left": (0.5, 1.0)}


def _region(name: str, lung: str, zone: str) -> Region:
    (y1, y2), (x1, x2) = _ROW_BANDS[zone], _COLUMNS[lung]
    return Region(name, lung, zone, (y1, x1, y2, x2), _LABEL_ROWS[zone])


REGIONS: tuple[Region, ...] = (
    _region("A", "right", "upper"),
    _region("B", "right", "middle"),
    _region("C", "right", "lower"),
    _region("D", "left", "upper"),
    _region("E", "left", "middle"),
    _region("F", "left", "lower"),
)
REGION_NAMES: tuple[str, ...] = tuple(region.name for region in REGIONS)

# The authors' heads and ROI boxes run top-left, top-right, middle-left, ... (their `pool_rois`):
# head k scores region HEAD_ORDER[k]. The network reorders its outputs to REGION_NAMES.
HEAD_ORDER: tuple[str, ...] = ("A", "D", "B", "E", "C", "F")
HEAD_REGIONS: tuple[Region, ...] = tuple(REGIONS[REGION_NAMES.index(name)] for name in HEAD_ORDER)
HEADS_TO_REGIONS: tuple[int, ...] = tuple(HEAD_ORDER.index(name) for name in REGION_NAMES)
