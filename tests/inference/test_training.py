"""A short end-to-end scoring run on 8 real annotated radiographs lowers the loss."""

import csv

import numpy as np
import torch

from inference.loss import BrixiaScoreLoss
from inference.model_spec import BSNET_SPEC, build_untrained
from inference.preprocessing import prepare_file
from inference.regions import REGION_NAMES
from tests.conftest import BRIXIA_DATA, require_path

TRAIN_SIZE = 256  # any multiple of 32 works; small keeps the CPU run short
STEPS = 8


def load_annotated_batch(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    folder = require_path(BRIXIA_DATA)
    with open(folder / "annotations.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))[:count]
    images = [prepare_file(folder / "images" / row["filename"], TRAIN_SIZE).model_input for row in rows]
    targets = [[int(row[f"S-{name}"]) for name in REGION_NAMES] for row in rows]
    return torch.from_numpy(np.stack(images))[:, None], torch.tensor(targets)


def test_short_training_run_on_eight_images_lowers_the_loss():
    from inference.training import scoring_step

    torch.manual_seed(0)
    images, targets = load_annotated_batch(8)
    model = build_untrained(BSNET_SPEC)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = BrixiaScoreLoss()
    losses = [scoring_step(model, optimizer, loss_fn, images, targets) for _ in range(STEPS)]
    assert all(np.isfinite(losses))
    assert min(losses[-3:]) < 0.8 * losses[0], losses
