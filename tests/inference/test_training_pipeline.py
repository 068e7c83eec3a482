"""The training path: stage steps lower their loss, transforms keep image and mask together,
an interrupted run resumes to the same weights, and the CLI trains and evaluates end to end."""

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dicom_node.cli import app
from inference import Predictor
from inference.augment import SYNTHETIC_ALIGNMENT, AffineRange, random_affine, transform_pair
from inference.checkpoint import checkpoint_path
from inference.datasets import TensorSet, load_folder
from inference.model_spec import BSNET_SPEC, build_untrained
from inference.preprocessing import prepare_file
from inference.regions import REGION_NAMES
from inference.training import (
    TrainingConfig,
    alignment_step,
    segmentation_step,
    train,
)
from inference.weights import AUTHORS_RELEASE, OWN_TRAINING, load_weights, metadata_for, save_weights
from tests.conftest import BRIXIA_DATA, FUJI_CR, require_path

SIZE = 128  # the smallest side BS-Net reads (the alignment block pools to 128)
REQUIRED_KEYS = (
    "region_mae", "region_accuracy", "global_mae", "kappa_linear", "kappa_quadratic", "n_images", "baselines"
)


def synthetic_set(count: int = 4) -> TensorSet:
    """Radiograph-like toy images: two dark 'lungs' on a bright body, masks on the lungs."""
    generator = torch.Generator().manual_seed(1)
    y, x = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
    images, masks = [], []
    for index in range(count):
        width = 0.25 + 0.05 * index
        lungs = (((x + 0.45) / width) ** 2 + (y / 0.6) ** 2 < 1) | (((x - 0.45) / width) ** 2 + (y / 0.6) ** 2 < 1)
        masks.append(lungs.float())
        images.append((0.8 - 0.5 * lungs.float() + 0.05 * torch.rand(SIZE, SIZE, generator=generator)).clamp(0, 1))
    scores = torch.randint(0, 4, (count, 6), generator=generator)
    return TensorSet(
        [f"toy{i}.png" for i in range(count)],
        torch.stack(images)[:, None],
        torch.stack(masks)[:, None],
        torch.ones(count, dtype=torch.bool),
        scores,
        scores.flip(0),
    )


def fresh_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return BSNET_SPEC.build()


def test_segmentation_steps_lower_the_loss_on_a_fixed_batch():
    data, model = synthetic_set(), fresh_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = [segmentation_step(model, optimizer, data.images, data.masks) for _ in range(6)]
    assert losses[-1] < 0.9 * losses[0], losses


def test_alignment_steps_lower_the_loss_and_train_only_the_alignment_block():
    data, model = synthetic_set(), fresh_model()
    _, moved = transform_pair(data.images, data.masks, SYNTHETIC_ALIGNMENT, torch.Generator().manual_seed(0))
    backbone_before = model.backbone.conv0.weight.clone()
    optimizer = torch.optim.Adam(model.alignment.parameters(), lr=1e-3)
    losses = [alignment_step(model, optimizer, moved, data.masks) for _ in range(6)]
    assert losses[-1] < losses[0], losses
    assert torch.equal(model.backbone.conv0.weight, backbone_before)


def test_transforms_move_image_and_mask_alike_and_zero_ranges_are_the_identity():
    data = synthetic_set(2)
    image_out, mask_out = transform_pair(data.masks, data.masks, SYNTHETIC_ALIGNMENT, torch.Generator().manual_seed(3))
    assert torch.equal(image_out, mask_out) and not torch.equal(mask_out, data.masks)
    identity = random_affine(3, AffineRange(0.0, 0.0, 0.0), torch.Generator())
    assert torch.equal(identity, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(3, 2, 3))


class Interrupted(Exception):
    pass


def test_an_interrupted_run_resumes_from_the_saved_epoch_to_the_same_weights(tmp_path):
    data = synthetic_set()
    config = TrainingConfig(input_size=SIZE, stage_epochs=(1, 1, 2), batch_size=2, val_fraction=0.25)
    device = torch.device("cpu")
    uninterrupted = train(data, tmp_path / "full.pt", config, device)

    def stop_after_first_scoring_epoch(entry):
        if entry.stage == "scoring":
            raise Interrupted

    with pytest.raises(Interrupted):
        train(data, tmp_path / "resumed.pt", config, device, on_epoch=stop_after_first_scoring_epoch)
    state = torch.load(checkpoint_path(tmp_path / "resumed.pt"), weights_only=True)
    assert tuple(state["position"]) == (2, 1)  # phase 2 (scoring), one epoch done
    resumed = train(data, tmp_path / "resumed.pt", config, device, resume=True)
    assert [e.epoch for e in resumed.history if e.stage == "scoring"] == [1, 2]
    assert resumed.metrics["region_mae"] == uninterrupted.metrics["region_mae"]
    full = load_weights(tmp_path / "full.pt", BSNET_SPEC.at_size(SIZE))
    again = load_weights(tmp_path / "resumed.pt", BSNET_SPEC.at_size(SIZE))
    assert full.sha256 == again.sha256
    finished = train(data, tmp_path / "resumed.pt", config, device, resume=True)  # nothing left to run
    assert len(finished.history) == len(resumed.history)
    assert load_weights(tmp_path / "resumed.pt", BSNET_SPEC.at_size(SIZE)).sha256 == full.sha256
    with pytest.raises(ValueError, match="other settings"):
        train(data, tmp_path / "resumed.pt", TrainingConfig(input_size=SIZE, seed=1), device, resume=True)


def test_training_from_existing_weights_starts_from_them_and_names_them(tmp_path):
    """``init`` (e.g. the authors' imported weights): the frozen parts keep the initial tensors,
    the metadata names the file and checksum, a resumed run must start from the same weights."""
    start = build_untrained(BSNET_SPEC)
    with torch.no_grad():
        start.segmentation.final_conv.bias.fill_(0.25)
    init = tmp_path / "authors.pt"
    init_sha = save_weights(init, start.state_dict(), metadata_for(BSNET_SPEC, source=AUTHORS_RELEASE))
    config = TrainingConfig(input_size=SIZE, stage_epochs=(0, 0, 1), batch_size=2, val_fraction=0.25)
    result = train(synthetic_set(), tmp_path / "site.pt", config, torch.device("cpu"), init=init)
    tuned = load_weights(tmp_path / "site.pt", BSNET_SPEC.at_size(SIZE))
    for name, tensor in start.state_dict().items():  # the scoring stage leaves these frozen
        if name.startswith(("segmentation.", "alignment.")):
            assert torch.equal(tuned.state_dict[name], tensor), name
    assert not torch.equal(tuned.state_dict["heads.heads.0.score_regressor.bias"],
                           start.state_dict()["heads.heads.0.score_regressor.bias"])
    assert tuned.metadata.source == OWN_TRAINING
    assert "authors.pt" in tuned.metadata.source_file and init_sha in tuned.metadata.source_file
    assert AUTHORS_RELEASE in tuned.metadata.source_file
    assert result.metrics["n_images"] == 1
    with pytest.raises(ValueError, match="other settings"):  # the checkpoint remembers the initial weights
        train(synthetic_set(), tmp_path / "site.pt", config, torch.device("cpu"), resume=True)


def two_image_folder(tmp_path):
    """A folder of symbolic links to two shared radiographs with lung masks (no copies)."""
    source = require_path(BRIXIA_DATA)
    with open(source / "lung-masks" / "index.csv", newline="") as stream:
        masks = list(csv.DictReader(stream))[:2]
    with open(source / "annotations.csv", newline="") as stream:
        rows = {row["filename"]: row for row in csv.DictReader(stream)}
    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    (folder / "lung-masks").mkdir()
    for entry in masks:
        (folder / "images" / entry["image"]).symlink_to(source / "images" / entry["image"])
        (folder / "lung-masks" / entry["mask"]).symlink_to(source / "lung-masks" / entry["mask"])
    with open(folder / "lung-masks" / "index.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(masks[0]))
        writer.writeheader()
        writer.writerows(masks)
    with open(folder / "annotations.csv", "w", newline="") as stream:
        chosen = [rows[entry["image"]] for entry in masks]
        writer = csv.DictWriter(stream, fieldnames=list(chosen[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return folder


def test_cli_trains_a_loadable_weights_file_and_evaluates_it(tmp_path):
    folder = two_image_folder(tmp_path)
    weights = tmp_path / "smoke.pt"
    runner = CliRunner()
    trained = runner.invoke(
        app,
        ["train", "--data", str(folder), "--out", str(weights), "--epochs", "1", "--input-size", str(SIZE),
         "--batch-size", "2", "--val-fraction", "0.5", "--device", "cpu"],
    )
    assert trained.exit_code == 0, trained.output
    predictor = Predictor(weights=weights, device="cpu")
    assert not predictor.identity.untrained
    metadata = load_weights(weights, BSNET_SPEC).metadata
    assert metadata.input_spec["height"] == SIZE and "2 annotated images" in metadata.training_data
    assert set(metadata.metrics["constant_scores"]) <= {0, 1, 2, 3}

    evaluated = runner.invoke(
        app, ["evaluate", "--data", str(folder), "--weights", str(weights), "--report", str(tmp_path / "report")]
    )
    assert evaluated.exit_code == 0, evaluated.output
    figures = json.loads(evaluated.stdout)
    assert set(REQUIRED_KEYS) <= set(figures)
    assert figures["n_images"] == 2 and figures["baselines"]["human"]["rater"] == "junior"
    assert sorted(figures["confusion"]) == list(REGION_NAMES)
    assert np.isfinite(figures["region_mae"])
    for name in ("report.md", "confusion.png", "global_scores.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0


def test_folders_read_image_files_dicom_files_and_masks_with_the_node_preprocessing(tmp_path):
    folder = two_image_folder(tmp_path)
    dicom = require_path(FUJI_CR)
    (folder / "images" / "cr.dcm").symlink_to(dicom)
    with open(folder / "annotations.csv", "a") as stream:
        stream.write("cr.dcm,0,1,2,3,0,1,7,,,,,,,\n")
    data = load_folder(folder, SIZE)
    assert data.images.shape == (3, 1, SIZE, SIZE) and data.has_mask.tolist() == [True, True, False]
    assert torch.equal(data.images[2, 0], torch.from_numpy(prepare_file(dicom, SIZE).model_input))
    assert data.senior[2].tolist() == [0, 1, 2, 3, 0, 1] and data.junior[2].tolist() == [-1] * 6
    masks = data.masks[:2]
    assert set(masks.unique().tolist()) == {0.0, 1.0} and 0.1 < float(masks.mean()) < 0.9
