"""Region outlines burned into the secondary captures (dicom_node.outputs.drawing.outline)."""

import numpy as np

from dicom_node.outputs.drawing import border_band


def _by_definition(mask: np.ndarray, thickness: int) -> np.ndarray:
    """Mask pixels with a pixel outside the mask, or outside the image, within ``thickness``
    (Chebyshev distance)."""
    padded = np.pad(mask, thickness)
    rows, cols = mask.shape
    side = 2 * thickness + 1
    inside_all = np.ones(mask.shape, dtype=bool)
    for dr in range(side):
        for dc in range(side):
            inside_all &= padded[dr : dr + rows, dc : dc + cols]
    return mask & ~inside_all


def test_outline_is_the_band_inside_the_border() -> None:
    mask = np.zeros((20, 30), dtype=bool)
    mask[5:15, 8:25] = True
    band = border_band(mask, 2)
    inner = np.zeros_like(mask)
    inner[7:13, 10:23] = True
    assert np.array_equal(band, mask & ~inner)


def test_image_edge_counts_as_border_and_empty_mask_has_none() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[:, :4] = True  # touches the top, bottom and left edges
    band = border_band(mask, 1)
    assert band[0].any() and band[-1].any() and band[:, 0].all()
    assert np.array_equal(band, _by_definition(mask, 1))
    assert not border_band(np.zeros((8, 8), dtype=bool), 3).any()


def test_outline_matches_its_definition_on_random_masks() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        rows, cols = rng.integers(1, 40, size=2)
        mask = rng.random((rows, cols)) < rng.random()
        thickness = int(rng.integers(1, 6))
        assert np.array_equal(border_band(mask, thickness), _by_definition(mask, thickness))
