"""The outline of a pixel mask as a closed polygon in DICOM image coordinates.

PS3.3 C.18.6.1.2 (SCOORD Graphic Data): (column, row) pairs in which the top left hand corner of
the top left pixel is 0.0\\0.0 and the bottom right hand corner of the bottom right pixel is
Columns\\Rows; a polygon is a POLYLINE whose first point is repeated as its last (PS3.3
C.18.6.1.1; TID 1410 takes such a closed POLYLINE as its image region). The outline follows the
pixel edges of the mask's largest 4-connected component (crack following); the
Douglas-Peucker algorithm then keeps the corners that matter at a given tolerance.
"""

import itertools

import numpy as np

# Edges of a mask pixel (row r, column c) that face outside the mask, walked clockwise on the
# screen (rows grow downwards), so the mask lies on the right of each edge: (neighbour offset
# (dr, dc) that must be outside, start corner (dx, dy) relative to (c, r), direction (dx, dy)).
_SIDES = (
    ((-1, 0), (0, 0), (1, 0)),  # top edge, walked rightwards
    ((0, 1), (1, 0), (0, 1)),  # right edge, walked downwards
    ((1, 0), (1, 1), (-1, 0)),  # bottom edge, walked leftwards
    ((0, -1), (0, 1), (0, -1)),  # left edge, walked upwards
)

_Edge = tuple[int, int, int, int]  # start x, start y, direction dx, dy


def _boundary_edges(mask: np.ndarray) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Start corner (x, y) -> directions of the mask's boundary edges that start there."""
    padded = np.pad(mask, 1)
    rows, cols = mask.shape
    starts: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for (dr, dc), (ox, oy), direction in _SIDES:
        outside = ~padded[1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols]
        for r, c in np.argwhere(mask & outside).tolist():
            starts.setdefault((c + ox, r + oy), []).append(direction)
    return starts


def _loops(mask: np.ndarray) -> list[np.ndarray]:
    """Every closed boundary of ``mask`` as corner points (x, y), first point not repeated.

    Where two pixels touch only at a corner, the walk turns right (towards the pixel it follows),
    so diagonal neighbours belong to different loops and every loop is a simple polygon.
    """
    starts = _boundary_edges(mask)
    unused: set[_Edge] = {(x, y, dx, dy) for (x, y), ds in starts.items() for dx, dy in ds}
    loops = []
    while unused:
        first = edge = unused.pop()
        points = []
        while True:
            x, y, dx, dy = edge
            points.append((x, y))
            end = (x + dx, y + dy)
            choices = starts[end]
            turn = (-dy, dx) if len(choices) > 1 else choices[0]  # right turn, else the only way
            edge = (*end, *turn)
            if edge == first:
                break
            unused.discard(edge)
        loops.append(np.array(points, dtype=np.float64))
    return loops


def _signed_area(points: np.ndarray) -> float:
    """Shoelace area; positive for the clockwise-on-screen outer boundaries of :func:`_loops`."""
    x, y = points[:, 0], points[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2.0


def _douglas_peucker(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Indices of the points of the open path ``points`` kept at ``tolerance`` (both ends kept)."""
    keep = np.zeros(len(points), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        chord = points[last] - points[first]
        offsets = points[first + 1 : last] - points[first]
        length = float(np.hypot(*chord))
        if length > 0:
            distances = np.abs(chord[0] * offsets[:, 1] - chord[1] * offsets[:, 0]) / length
        else:
            distances = np.hypot(offsets[:, 0], offsets[:, 1])
        farthest = first + 1 + int(np.argmax(distances))
        if distances[farthest - first - 1] > tolerance:
            keep[farthest] = True
            stack += [(first, farthest), (farthest, last)]
    return np.flatnonzero(keep)


def mask_outline(mask: np.ndarray, tolerance: float = 1.0) -> np.ndarray | None:
    """Closed polygon (N, 2) of (column, row) points around the largest 4-connected component of
    ``mask`` (rows, cols), first point == last point, or None for an empty mask.

    No traced pixel edge lies farther than ``tolerance`` pixels from the polygon, and the
    component's extreme points are always kept, so the polygon's bounding box is exactly the
    component's.
    """
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return None
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # trace only the bounding box
    ring = max(_loops(crop), key=_signed_area) + np.array([cols[0], rows[0]], dtype=np.float64)
    ring = np.roll(ring, -int(np.argmin(ring[:, 0])), axis=0)  # start at the leftmost point
    closed = np.vstack([ring, ring[:1]])
    extremes = [0, np.argmin(ring[:, 1]), np.argmax(ring[:, 0]), np.argmax(ring[:, 1]), len(ring)]
    anchors = np.unique(extremes)
    kept = [
        start + _douglas_peucker(closed[start : end + 1], tolerance)[:-1]
        for start, end in itertools.pairwise(anchors)
    ]
    return closed[np.concatenate([*kept, [len(ring)]])]
