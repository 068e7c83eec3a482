"""The network against the authors' Keras BS-Net: their weight file imported, their outputs on four
inputs reproduced (../shared/reference/bsnet-keras, README "Tolerances"), float32 on the CPU."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from inference.bsnet.alignment import output_grid, warp
from inference.bsnet.model import BSNet, BSNetOutput
from inference.keras_import import keras_state_dict, read_keras_layers
from inference.model_info import weight_count
from inference.regions import HEAD_ORDER, REGION_NAMES
from tests.conftest import REPO_ROOT, require_path

REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "bsnet-keras"
AUTHORS_WEIGHT_COUNT = 20_947_836
BACKBONE_TAPS = (
    "stage1_unit1_relu1", "stage2_unit1_relu1", "stage2_unit2_relu1", "stage3_unit1_relu1",
    "stage3_unit2_relu1", "stage4_unit1_relu1", "stage4_unit2_relu1", "relu1",
)
HEAD_INDEX = [REGION_NAMES.index(name) for name in HEAD_ORDER]  # our A..F columns in head order


@dataclass
class Run:
    """One forward pass of the imported network on the reference inputs, with intermediates."""

    reference: dict[str, np.ndarray]
    model: BSNet
    output: BSNetOutput
    taps: dict[str, torch.Tensor]
    caught: dict[str, object]


def nhwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def run() -> Run:
    folder = require_path(REFERENCE)
    reference = dict(np.load(folder / "reference.npz"))
    model = BSNet()
    model.load_state_dict(keras_state_dict(read_keras_layers(folder / "bscore-model.h5"), model))
    model.eval()
    caught: dict[str, object] = {"attended": []}
    model.alignment.locnet_relu.register_forward_hook(lambda m, i, o: caught.setdefault("stn_hidden", o))
    model.attention.register_forward_hook(lambda m, i, o: caught["attended"].append(o))
    model.pyramid.register_forward_hook(lambda m, i, o: caught.update(crops=i[0], pyramid=o))
    model.heads.register_forward_hook(lambda m, i, o: caught.setdefault("head_maps", o))
    images = torch.from_numpy(reference["input"]).permute(0, 3, 1, 2)
    with torch.no_grad():
        output = model(images)
        taps = model.backbone(images[:1])
    return Run(reference, model, output, taps, caught)


def assert_relative(actual: np.ndarray, expected: np.ndarray, relative: float = 1e-4) -> None:
    """Equal within ``relative`` times the largest magnitude of the expected tensor."""
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=0, atol=relative * scale)


def test_weight_count_equals_the_authors():
    assert weight_count(BSNet()) == AUTHORS_WEIGHT_COUNT


def test_lung_map_theta_and_probabilities_match_the_authors(run):
    ref, out = run.reference, run.output
    np.testing.assert_allclose(nhwc(torch.sigmoid(out.lung_logits)), ref["lung"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(out.theta.reshape(4, 6).numpy(), ref["theta"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(run.caught["stn_hidden"].numpy(), ref["stn_hidden"], rtol=0, atol=1e-4)
    head_order = out.score_probabilities[:, HEAD_INDEX].numpy()  # the authors' (B, 3, 2, 4) layout
    np.testing.assert_allclose(head_order.reshape(4, 3, 2, 4), ref["scores"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(out.score_logits[:, HEAD_INDEX].numpy(), ref["logits"], rtol=0, atol=1e-4)


def _near_sampler_discontinuity(theta: np.ndarray, size: int, margin: float = 1e-3) -> np.ndarray:
    """(B, S, S) True where the sampler's source position lies within ``margin`` pixels of a place
    where the authors' sampler jumps (x or y = -1, where the truncation clips, or S - 1, past
    which the clipped weights vanish): a float32 difference in theta of 1e-7 moves such a pixel
    across the jump."""
    grid = output_grid(size, size, torch.float64, torch.device("cpu"))
    source = torch.from_numpy(theta.astype(np.float64)).view(-1, 2, 3) @ grid
    pixels = (source + 1.0) * size / 2.0
    jumps = torch.tensor([-1.0, size - 1.0], dtype=torch.float64)
    near = ((pixels[..., None] - jumps).abs() < margin).any(dim=-1).any(dim=1)
    return near.view(-1, size, size).numpy()


def test_aligned_lung_map_matches_the_authors(run):
    ref = run.reference
    aligned = nhwc(run.output.aligned_lung)[..., 0]
    near = _near_sampler_discontinuity(ref["theta"], 512)
    assert near.mean() < 1e-4  # a handful of the 1,048,576 pixels
    np.testing.assert_allclose(aligned[~near], ref["aligned"][..., 0][~near], rtol=0, atol=1e-4)


def test_sampler_reproduces_the_authors_on_their_own_theta(run):
    ref = run.reference
    lung = torch.from_numpy(ref["lung"]).permute(0, 3, 1, 2)
    aligned = warp(lung, torch.from_numpy(ref["theta"]).view(4, 2, 3))
    np.testing.assert_allclose(nhwc(aligned), ref["aligned"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", BACKBONE_TAPS)
def test_backbone_taps_match_the_authors(run, name):
    assert_relative(nhwc(run.taps[name]), run.reference[name])


def test_stem_matches_the_authors(run):
    assert_relative(nhwc(run.taps["relu0"])[..., :16], run.reference["relu0"])


def test_attention_crops_pyramid_and_heads_match_the_authors(run):
    ref, caught = run.reference, run.caught
    attended = caught["attended"]  # one call per tap, the batch of 4 each
    assert_relative(nhwc(attended[2][:1]), ref["attended_stage3_unit2_relu1"])
    assert_relative(nhwc(attended[3][:1]), ref["attended_stage4_unit2_relu1"])
    assert_relative(nhwc(caught["crops"][3][:6])[None], ref["rois_stage4_unit2_relu1"])
    p1, pmid0, pmid1, p5 = caught["pyramid"]
    assert_relative(nhwc(p1[:1]), ref["P1_swish_region0"])
    assert_relative(nhwc(pmid0[:1]), ref["Pmid0_swish_region0"])
    assert_relative(nhwc(pmid1[:1]), ref["Pmid1_swish_region0"])
    assert_relative(nhwc(p5[:6]), ref["P5_swish"])
    assert_relative(nhwc(caught["head_maps"][0]), ref["head_maps"])
