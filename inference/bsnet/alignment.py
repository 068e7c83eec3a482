"""Alignment block: the authors' spatial transformer (their ``STN`` and ``BilinearInterpolation``
layers, after Jaderberg et al. 2015; BSNET.md "Network").

Localisation network on the lung probability map (B, 1, S, S): max-pool to 128^2
(``locnet_input_adaptation``, S a multiple of 128), then twice [max-pool 2, 5x5 'valid' conv with
20 filters and bias, no activation] -> (B, 20, 26, 26), flattened in Keras' H, W, C order, dense 50
(``locnet_dense``), ReLU (``locnet_relu``), dense 6 (``locnet_alignment``) = theta, initialised to
the identity as the authors' ``get_initial_weights``.

The sampler (:func:`warp`) reproduces ``BilinearInterpolation`` exactly, which
``torch.nn.functional.grid_sample`` cannot: output pixel (i, j) of an H x W output sits at
(x_t, y_t) = (-1 + 2j/(W-1), -1 + 2i/(H-1)); theta maps it to (x_s, y_s); the input position in
pixels is x = (x_s + 1) W/2, y = (y_s + 1) H/2; the four neighbours int(x), int(x)+1 (truncated
towards zero) are clipped to the image *before* the bilinear weights are formed.
"""

import torch
import torch.nn.functional as F
from torch import nn

LOCALISATION_INPUT = 128
LOCALISATION_FILTERS = 20
LOCALISATION_KERNEL = 5
HIDDEN_UNITS = 50
IDENTITY_THETA = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


class LocalisationNet(nn.Module):
    """Lung probability map (B, 1, S, S) -> theta (B, 2, 3), output-to-input, row-major."""

    def __init__(self) -> None:
        super().__init__()
        self.locnet_conv0 = nn.Conv2d(1, LOCALISATION_FILTERS, LOCALISATION_KERNEL)
        self.locnet_conv1 = nn.Conv2d(LOCALISATION_FILTERS, LOCALISATION_FILTERS, LOCALISATION_KERNEL)
        side = ((LOCALISATION_INPUT // 2 - 4) // 2) - 4  # 26
        self.locnet_dense = nn.Linear(side * side * LOCALISATION_FILTERS, HIDDEN_UNITS)
        self.locnet_relu = nn.ReLU()
        self.locnet_alignment = nn.Linear(HIDDEN_UNITS, 6)
        nn.init.zeros_(self.locnet_alignment.weight)
        with torch.no_grad():
            self.locnet_alignment.bias.copy_(torch.tensor(IDENTITY_THETA))

    def forward(self, lung_probability: torch.Tensor) -> torch.Tensor:
        size = lung_probability.shape[-1]
        if size % LOCALISATION_INPUT or lung_probability.shape[-2] != size:
            raise ValueError(f"the alignment block reads square maps, sides multiples of 128: {lung_probability.shape}")
        x = F.max_pool2d(lung_probability, size // LOCALISATION_INPUT)
        x = self.locnet_conv0(F.max_pool2d(x, 2))
        x = self.locnet_conv1(F.max_pool2d(x, 2))
        hidden = self.locnet_relu(self.locnet_dense(x.permute(0, 2, 3, 1).flatten(1)))
        return self.locnet_alignment(hidden).view(-1, 2, 3)


def output_grid(height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(3, H*W) homogeneous output coordinates (x_t, y_t, 1) of the authors' sampler, row-major."""
    ys = torch.linspace(-1.0, 1.0, height, dtype=dtype, device=device)
    xs = torch.linspace(-1.0, 1.0, width, dtype=dtype, device=device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.flatten(), grid_y.flatten(), torch.ones_like(grid_x.flatten())])


def warp(image: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The authors' ``BilinearInterpolation`` of (B, C, H, W) by theta (B, 2, 3) at the same size.

    Coordinates, weights and gather indices are computed in at least fp32 whatever the map's
    dtype (under bf16 autocast a bf16 ``row * width + column`` would round by up to 1024 pixels);
    the result has the map's dtype."""
    batch, channels, height, width = image.shape
    dtype = torch.promote_types(image.dtype, torch.float32)
    with torch.autocast(image.device.type, enabled=False):
        source = theta.to(dtype) @ output_grid(height, width, dtype, image.device)  # (B, 2, H*W)
    x = 0.5 * (source[:, 0] + 1.0) * width
    y = 0.5 * (source[:, 1] + 1.0) * height
    x0, y0 = x.trunc(), y.trunc()  # the authors' cast to int32 truncates towards zero
    x1, y1 = (x0 + 1).clamp(0, width - 1), (y0 + 1).clamp(0, height - 1)
    x0, y0 = x0.clamp(0, width - 1), y0.clamp(0, height - 1)
    flat = image.reshape(batch, channels, height * width)

    def gather(row: torch.Tensor, column: torch.Tensor) -> torch.Tensor:
        index = (row * width + column).long()
        return flat.gather(2, index[:, None, :].expand(-1, channels, -1))

    out = (
        ((x1 - x) * (y1 - y))[:, None] * gather(y0, x0)
        + ((x1 - x) * (y - y0))[:, None] * gather(y1, x0)
        + ((x - x0) * (y1 - y))[:, None] * gather(y0, x1)
        + ((x - x0) * (y - y0))[:, None] * gather(y1, x1)
    )
    return out.view(batch, channels, height, width).to(image.dtype)


def as_square(theta: torch.Tensor) -> torch.Tensor:
    """(..., 2, 3) affine matrices -> (..., 3, 3) with the homogeneous row."""
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=theta.dtype, device=theta.device)
    return torch.cat([theta, bottom.expand(*theta.shape[:-2], 1, 3)], dim=-2)


def invert_affine(theta: torch.Tensor) -> torch.Tensor:
    """The inverse transform of theta (B, 2, 3): input coordinates -> aligned coordinates."""
    return torch.linalg.inv(as_square(theta).float()).to(theta.dtype)[..., :2, :]


def input_positions(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(size, size, 2) normalised (x_s, y_s) of each input pixel (row, col) in the sampler's
    convention x = (x_s + 1) S/2, i.e. x_s = 2 col / S - 1: maps the input frame back to the aligned one."""
    steps = torch.arange(size, dtype=dtype, device=device) * (2.0 / size) - 1.0
    grid_y, grid_x = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)
