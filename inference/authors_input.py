"""The authors' two image operations, bit for bit (BS-Net, BrixIA ``src/datasets/utils.py``):
``cv2.resize(img, (S, S))`` with INTER_LINEAR on a float64 image (:func:`resize_bilinear`) and
``equalize``, PIL's histogram equalisation on 4096 bins divided by the maximum (:func:`equalize`).
OpenCV rounds each step of its bilinear resize once (fused multiply-add on the x86-64 wheels), so
a plain numpy product-and-sum differs by one unit in the last place, and after equalisation a
pixel can land in the next of the 4096 bins; :func:`_fma` emulates the single rounding.
"""

import numpy as np

EQUALISATION_BINS = 4096


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s + e == a + b exactly, with s = fl(a + b) (Knuth)."""
    s = a + b
    b_virtual = s - a
    return s, (a - (s - b_virtual)) + (b - b_virtual)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a == high + low, each with at most 26 significant bits (Veltkamp)."""
    c = 134217729.0 * a  # 2**27 + 1
    high = c - (c - a)
    return high, a - high


def _two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p + e == a * b exactly, with p = fl(a * b) (Dekker)."""
    p = a * b
    a_high, a_low = _split(a)
    b_high, b_low = _split(b)
    return p, ((a_high * b_high - p) + a_high * b_low + a_low * b_high) + a_low * b_low


def _add_round_to_odd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b rounded to odd: exact, or else the neighbour whose last significand bit is 1."""
    s, error = _two_sum(a, b)
    even = (s.view(np.int64) & 1) == 0
    towards = np.where(error > 0, np.inf, -np.inf)
    return np.where((error != 0) & even, np.nextafter(s, towards), s)


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a * b + c rounded once, as a fused multiply-add, in float64 (exact away from underflow and
    overflow; Boldo and Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms
    using rounding to odd", IEEE Trans. Comput. 57(4), 2008)."""
    a, b, c = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (a, b, c)))
    high, low = _two_product(a, b)
    total, rest = _two_sum(c, high)
    return total + _add_round_to_odd(rest, low)


def _linear_taps(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV INTER_LINEAR along one axis: first and second source index and the second's weight.

    x = fma(i + 0.5, source / target, -0.5) (half-pixel centres); positions outside the source
    clamp to the edge pixel with weight 0.
    """
    centres = np.arange(target, dtype=np.float64) + 0.5
    position = _fma(centres, source / target, -0.5)
    first = np.floor(position)
    weight = position - first
    first = first.astype(np.int64)
    outside = (first < 0) | (first >= source - 1)
    first = np.clip(first, 0, source - 1)
    weight[outside] = 0.0
    return first, np.minimum(first + 1, source - 1), weight


def resize_bilinear(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``cv2.resize(image, (cols, rows))`` (INTER_LINEAR) of a 2-D float64 image, bit for bit.

    Columns first (only on the source rows that the row pass reads), then rows, each output value
    fma(second - first, weight, first): the roundings of OpenCV's x86-64 wheels on an FMA-capable
    CPU (checked against opencv-python 4.14 on random sizes and the reference's preprocessing.npz;
    builds that round differently differ by about 1 ulp).
    """
    image = np.asarray(image, dtype=np.float64)
    row_0, row_1, row_weight = _linear_taps(image.shape[0], rows)
    col_0, col_1, col_weight = _linear_taps(image.shape[1], cols)
    used, where = np.unique(np.concatenate((row_0, row_1)), return_inverse=True)
    left, right = image[np.ix_(used, col_0)], image[np.ix_(used, col_1)]
    across = _fma(right - left, col_weight, left)
    top, bottom = across[where[:rows]], across[where[rows:]]
    return _fma(bottom - top, row_weight[:, None], top)


def equalize(image: np.ndarray, bins: int = EQUALISATION_BINS) -> np.ndarray:
    """The authors' ``equalize``: codes int((bins - 1) * x), PIL's histogram equalisation of them
    on ``bins`` bins, divided by the maximum (float64 in [0, 1]). Codes are clipped to the bins
    (TF's histogram does so); an all-black image stays 0 where the original divides 0 by 0."""
    codes = np.clip((float(bins - 1) * np.asarray(image, dtype=np.float64)).astype(np.int64), 0, bins - 1)
    histogram = np.bincount(codes.ravel(), minlength=bins)
    used = histogram[histogram != 0]
    step = (int(used.sum()) - int(used[-1])) // bins
    if step == 0:
        levels = codes
    else:
        lut = (np.cumsum(histogram) + step // 2) // step
        levels = np.clip(np.concatenate(([0], lut[:-1])), 0, bins)[codes]
    top = int(levels.max())
    return levels.astype(np.float64) / top if top else np.zeros(codes.shape, dtype=np.float64)
