"""BS-Net network: shapes, determinism, alignment initialisation, loss."""

import pytest
import torch

from inference.bsnet.alignment import invert_affine, warp
from inference.bsnet.model import BSNet
from inference.bsnet.roi_pooling import crop_regions
from inference.loss import BrixiaScoreLoss, expected_scores
from inference.model_spec import BSNET_SPEC, build_untrained

SIZE = 256  # the network reads any multiple of 128; the oracle test runs it at 512

@pytest.fixture(scope="module")
def model() -> BSNet:
    return build_untrained(BSNET_SPEC).eval()


@pytest.mark.parametrize("batch", [1, 4])
def test_output_shapes(model, batch):
    with torch.no_grad():
        out = model(torch.rand(batch, 1, SIZE, SIZE))
    assert out.score_logits.shape == (batch, 6, 4)
    assert out.lung_logits.shape == (batch, 1, SIZE, SIZE)
    assert out.theta.shape == (batch, 2, 3)
    assert out.aligned_lung.shape == (batch, 1, SIZE, SIZE)
    assert out.region_activations.shape == (batch, 6, 4, SIZE // 32, SIZE // 32)
    torch.testing.assert_close(out.score_probabilities.sum(-1), torch.ones(batch, 6))


def test_input_sides_that_are_not_multiples_of_128_are_refused(model):
    with pytest.raises(ValueError, match="multiple of 128"):
        model(torch.rand(1, 1, 96, 96))


def test_eval_mode_is_deterministic_and_batch_independent(model):
    images = torch.rand(3, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        first = model(images).score_logits
        second = model(images).score_logits
        single = model(images[1:2]).score_logits
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(first[1:2], single, rtol=1e-4, atol=1e-4)


def test_alignment_starts_at_the_identity_and_inverts(model):
    with torch.no_grad():
        theta = model(torch.rand(1, 1, SIZE, SIZE)).theta
    torch.testing.assert_close(theta, torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]]))
    rotation = torch.tensor([[[0.9, -0.2, 0.1], [0.2, 0.9, -0.05]]])
    square = torch.cat([rotation, torch.tensor([[[0.0, 0, 1]]])], dim=1)
    inverse = torch.cat([invert_affine(rotation), torch.tensor([[[0.0, 0, 1]]])], dim=1)
    torch.testing.assert_close(square @ inverse, torch.eye(3)[None], atol=1e-6, rtol=0)


def test_identity_warp_follows_the_authors_sampler():
    """Output column j reads input position x = j W / (W - 1) (linspace grid, x = (x_s + 1) W / 2):
    a column ramp is stretched, and the last column and row are 0 (their clipped weights vanish)."""
    width = 32
    ramp = torch.arange(width, dtype=torch.float32).expand(1, 2, width, width)
    identity = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])
    warped = warp(ramp, identity)[0, 0]
    expected = torch.arange(width, dtype=torch.float32) * width / (width - 1)
    torch.testing.assert_close(warped[0, :-1], expected[:-1], atol=1e-4, rtol=0)
    assert warped[-1].abs().max() < 1e-5 and warped[:, -1].abs().max() < 1e-5


def test_roi_crops_follow_the_authors_head_order_and_boxes():
    # a map whose value is its column index: head 0 (A, cols 0-0.5) sees the left half only
    width = 64
    columns = torch.arange(width, dtype=torch.float32).expand(1, 1, width, width)
    rows = columns.transpose(-1, -2)
    crop_cols = crop_regions(columns)[:, 0]
    crop_rows = crop_regions(rows)[:, 0]
    assert crop_cols.shape == (6, width, width)
    half = (width - 1) / 2
    for head in (0, 2, 4):  # A, B, C: image left half = patient's right lung
        assert crop_cols[head].min() == pytest.approx(0.0)
        assert crop_cols[head].max() == pytest.approx(half, abs=1e-4)
        assert crop_cols[head + 1].min() == pytest.approx(half, abs=1e-4)  # D, E, F
    # heads 0-1 upper band rows 0-0.4, heads 4-5 lower band rows 0.6-1.0
    assert crop_rows[0].max() == pytest.approx(0.4 * (width - 1), abs=1e-3)
    assert crop_rows[4].min() == pytest.approx(0.6 * (width - 1), abs=1e-3)


def test_loss_combines_cross_entropy_and_expected_score_error():
    logits = torch.tensor([[[4.0, 0, 0, 0]] * 6])
    targets = torch.zeros(1, 6, dtype=torch.long)
    loss = BrixiaScoreLoss(alpha=0.7)
    probabilities = logits.softmax(-1)
    cross_entropy = -probabilities[0, 0, 0].log()
    mae = expected_scores(logits)[0, 0]
    assert float(loss(logits, targets)) == pytest.approx(float(0.7 * cross_entropy + 0.3 * mae), rel=1e-6)
    assert float(BrixiaScoreLoss(alpha=0.0)(logits, targets + 3)) == pytest.approx(3 - float(mae), rel=1e-6)
    with pytest.raises(ValueError):
        BrixiaScoreLoss(alpha=1.5)


def test_warp_of_a_bf16_map_samples_where_the_fp32_warp_does():
    """Under bf16 autocast the maps are bf16; the sampler's coordinates and gather indices stay
    fp32 (a bf16 row * width + column rounds by up to 1024 pixels at 512 and runs off the map)."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 1, 512, 512, generator=generator)
    theta = torch.tensor([[[0.9, 0.05, 0.02], [-0.04, 0.95, 0.01]]]).repeat(2, 1, 1)
    expected = warp(image, theta)
    warped = warp(image.bfloat16(), theta)
    assert warped.dtype == torch.bfloat16
    torch.testing.assert_close(warped.float(), expected, atol=2e-2, rtol=0)
