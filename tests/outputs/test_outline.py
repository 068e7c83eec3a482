"""Region outlines for the SR: closed polygons along pixel edges, in (column, row) order."""

import numpy as np

from dicom_node.outputs.outline import mask_outline


def _area(points: np.ndarray) -> float:
    x, y = points[:-1, 0], points[:-1, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))) / 2.0


def test_rectangle_outline_is_its_four_pixel_edge_corners() -> None:
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:9] = True  # rows 2-4, columns 3-8
    points = mask_outline(mask)
    assert np.array_equal(points[0], points[-1])
    corners = {tuple(point) for point in points.tolist()}
    assert corners == {(3.0, 2.0), (9.0, 2.0), (9.0, 5.0), (3.0, 5.0)}  # (column, row)
    assert len(points) == 5


def test_concave_outline_keeps_the_notch() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[1:9, 1:4] = True
    mask[6:9, 1:9] = True  # an L
    points = mask_outline(mask)
    assert {tuple(point) for point in points.tolist()} == {
        (1.0, 1.0),
        (4.0, 1.0),
        (4.0, 6.0),
        (9.0, 6.0),
        (9.0, 9.0),
        (1.0, 9.0),
    }
    assert _area(points) == mask.sum()


def test_outline_follows_the_largest_component_and_ignores_holes() -> None:
    mask = np.zeros((40, 40), dtype=bool)
    mask[2:5, 2:5] = True  # small component
    mask[10:30, 15:35] = True  # large one, with a hole
    mask[18:22, 20:24] = False
    mask[30, 35] = True  # touches the large one only at a corner: a separate component
    points = mask_outline(mask)
    assert [points.min(axis=0).tolist(), points.max(axis=0).tolist()] == [[15, 10], [35, 30]]
    assert _area(points) == 400


def test_curved_outline_is_simplified_within_tolerance_and_keeps_the_bounding_box() -> None:
    rows, cols = np.mgrid[:600, :500]
    disc = (rows - 300) ** 2 + (cols - 240) ** 2 < 200**2
    points = mask_outline(disc, tolerance=2.0)
    assert np.array_equal(points[0], points[-1])
    assert 10 < len(points) < 100  # the staircase of hundreds of corners is simplified
    pixel_rows, pixel_cols = np.nonzero(disc)
    assert points.min(axis=0).tolist() == [pixel_cols.min(), pixel_rows.min()]
    assert points.max(axis=0).tolist() == [pixel_cols.max() + 1, pixel_rows.max() + 1]
    assert abs(_area(points) - disc.sum()) < 2.0 * 2 * np.pi * 200  # tolerance x perimeter


def test_empty_mask_has_no_outline() -> None:
    assert mask_outline(np.zeros((5, 5), dtype=bool)) is None


def test_mask_touching_the_image_border_stays_within_it() -> None:
    mask = np.ones((7, 9), dtype=bool)
    points = mask_outline(mask)
    assert points.min() == 0 and points[:, 0].max() == 9 and points[:, 1].max() == 7
