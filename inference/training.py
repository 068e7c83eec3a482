"""Training BS-Net "from the part to the whole" (Signoroni et al. 2021; BSNET.md "Loss and training").

Stage 1, segmentation pre-training: backbone + U-Net++ decoder on the images with lung masks,
Dice + binary cross-entropy loss. Stage 2, alignment pre-training: the spatial
transformer alone learns to undo synthetic rotations/zooms/shifts of the lung masks (the paper's synthetic
alignment set, :mod:`inference.augment`); as in the authors' ``pretrain_aligment_net`` mode it reads
the transformed mask itself, and the loss compares the mask it aligns with the un-transformed one. Stage 3,
end-to-end scoring with :class:`~inference.loss.BrixiaScoreLoss`; segmentation decoder
and alignment block stay frozen, backbone, pyramid and heads learn.

``init`` starts every stage from a weights file instead of a random initialisation, e.g. the
authors' weights imported with ``dicom-node import-weights``, to fine-tune on a site's own images
(typically ``stage_epochs=(0, 0, N)``: scoring only).

Validation: with ``folds >= 2``, k-fold cross-validation of stage 3 (each fold restarts from the
pre-trained network; stages 1-2 use lung masks only, no scores, and run once), then a final
stage 3 on all images gives the weights; otherwise one hold-out split (``val_fraction``).
A checkpoint (model, optimizer, phase, epoch, RNG state, history) is written after every epoch
and ``resume=True`` continues from it; every epoch draws its batches and augmentations from a
generator seeded by (seed, phase, epoch), so a resumed run equals an uninterrupted one
(:mod:`inference.checkpoint`). Progress goes to an ``on_progress`` callback as
:data:`TrainingEvent` values, for the caller to show as it likes.
"""

import copy
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inference.augment import SCORING_AUGMENTATION, SYNTHETIC_ALIGNMENT, augment_images, transform_pair
from inference.bsnet.alignment import warp
from inference.bsnet.model import check_input_size
from inference.checkpoint import checkpoint_path, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from inference.datasets import TensorSet
from inference.evaluation import constant_scores, evaluation_report
from inference.loss import BrixiaScoreLoss, alignment_loss, segmentation_loss
from inference.model_spec import BSNET_SPEC
from inference.weights import LoadedWeights, load_weights, metadata_for, save_weights

log = logging.getLogger(__name__)

STAGES = ("segmentation", "alignment", "scoring")
STAGE_PARTS = {  # the BSNet children each stage trains; the others are frozen in eval mode
    "segmentation": ("backbone", "segmentation"),
    "alignment": ("alignment",),
    "scoring": ("backbone", "pyramid", "heads"),
}
LEARNING_RATES = {"segmentation": 1e-3, "alignment": 1e-3, "scoring": 3e-4}


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that determines a run (a resumed run must use the same values)."""

    input_size: int = 512
    stage_epochs: tuple[int, int, int] = (10, 10, 30)
    batch_size: int = 8
    seed: int = 0
    folds: int = 0
    val_fraction: float = 0.2
    label: str = "senior"
    init_sha256: str = ""  # checksum of the weights the run starts from ("" = random initialisation)

    def __post_init__(self) -> None:
        check_input_size(self.input_size)
        if len(self.stage_epochs) != len(STAGES) or min(self.stage_epochs) < 0 or self.stage_epochs[-1] < 1:
            raise ValueError(f"stage_epochs: {len(STAGES)} counts >= 0, scoring >= 1; got {self.stage_epochs}")
        if self.folds == 1 or self.folds < 0:
            raise ValueError("folds must be 0 (hold-out split) or at least 2")
        if not self.folds and not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class Phase:
    """One run of a stage: ``fold`` indexes the validation split; None trains on every image."""

    stage: str
    epochs: int
    fold: int | None = None


@dataclass
class EpochLog:
    phase: int
    stage: str
    fold: int | None
    epoch: int
    loss: float
    val_mae: float | None


@dataclass(frozen=True)
class PhaseStarted:
    """A phase begins, or resumes with ``done`` of its ``total`` batches already run."""

    phase: Phase
    total: int
    done: int


@dataclass(frozen=True)
class BatchDone:
    """One more batch trained, with its loss."""

    loss: float


# what ``on_progress`` receives: a phase starting, a batch done, an epoch done (its log entry, before
# the checkpoint is written; ``on_epoch`` gets the same entry after)
TrainingEvent = PhaseStarted | BatchDone | EpochLog


@dataclass
class TrainingResult:
    model: nn.Module
    metrics: dict
    history: list[EpochLog] = field(default_factory=list)


def train_mode(model: nn.Module, stage: str) -> None:
    """Train mode and gradients for the parts ``stage`` trains; eval mode, no gradients elsewhere."""
    model.train()
    for name, child in model.named_children():
        trainable = name in STAGE_PARTS[stage]
        child.train(trainable)
        child.requires_grad_(trainable)


def _optimise(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def segmentation_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, masks: torch.Tensor
) -> float:
    """Stage 1: one step of backbone + U-Net++ on (B, 1, S, S) images and lung masks."""
    train_mode(model, "segmentation")
    logits = model.segmentation(model.backbone(images))
    return _optimise(optimizer, segmentation_loss(logits, masks))


def alignment_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, moved_masks: torch.Tensor, targets: torch.Tensor
) -> float:
    """Stage 2: one step of the alignment block on transformed lung masks, target = original masks."""
    train_mode(model, "alignment")
    aligned = warp(moved_masks, model.alignment(moved_masks))
    return _optimise(optimizer, alignment_loss(aligned, targets))


def scoring_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: BrixiaScoreLoss,
    images: torch.Tensor,
    targets: torch.Tensor,
) -> float:
    """Stage 3: forward (B, 1, S, S) images, loss against (B, 6) scores 0-3, backward, step."""
    train_mode(model, "scoring")
    return _optimise(optimizer, loss_fn(model(images).score_logits, targets))


@torch.no_grad()
def predict_scores(model: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device) -> np.ndarray:
    """(N, 1, S, S) images -> (N, 6) most probable scores (as the Predictor reports them)."""
    model.eval()
    parts = [
        model(images[start : start + batch_size].to(device)).score_logits.argmax(dim=-1).cpu()
        for start in range(0, len(images), batch_size)
    ]
    return torch.cat(parts).numpy()


def validation_splits(count: int, config: TrainingConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, validation) index pairs: k folds, or one hold-out split; seeded shuffle."""
    order = np.random.default_rng(config.seed).permutation(count)
    if config.folds:
        folds = np.array_split(order, config.folds)
        return [(np.sort(np.concatenate(folds[:k] + folds[k + 1 :])), np.sort(folds[k])) for k in range(len(folds))]
    held = max(1, round(count * config.val_fraction))
    if held >= count:
        raise ValueError(f"{count} images cannot be split for validation")
    return [(np.sort(order[held:]), np.sort(order[:held]))]


def plan_phases(config: TrainingConfig) -> list[Phase]:
    """Stages 1-2 once, stage 3 per validation split, and a final stage 3 on all images for k-fold."""
    segmentation, alignment, scoring = config.stage_epochs
    phases = [Phase("segmentation", segmentation), Phase("alignment", alignment)]
    phases += [Phase("scoring", scoring, fold) for fold in range(max(config.folds, 1))]
    if config.folds:
        phases.append(Phase("scoring", scoring, None))
    return phases


def _epoch_generator(seed: int, phase: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + phase * 1_009 + epoch)


def _batches(count: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    order = torch.randperm(count, generator=generator)
    for start in range(0, count, batch_size):
        yield order[start : start + batch_size]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Runs :func:`plan_phases` on a :class:`TensorSet`, checkpointing after every epoch."""

    def __init__(
        self,
        data: TensorSet,
        config: TrainingConfig,
        checkpoint: Path,
        device: torch.device,
        on_epoch: Callable[[EpochLog], None] | None = None,
        on_progress: Callable[[TrainingEvent], None] | None = None,
        init: LoadedWeights | None = None,
    ) -> None:
        self.config, self.checkpoint, self.device = config, Path(checkpoint), device
        if (init.sha256 if init else "") != config.init_sha256:
            raise ValueError("config.init_sha256 must be the checksum of the initial weights")
        labels = data.labels(config.label)
        scored = (labels >= 0).all(dim=1).nonzero().flatten().numpy()
        if len(scored) < 2:
            raise ValueError(f"at least 2 images with {config.label} scores are needed, found {len(scored)}")
        self.scored = data.subset(scored)
        self.masked = data.subset(data.has_mask.nonzero().flatten().numpy())
        self.splits = validation_splits(len(self.scored), config)
        self.phases = plan_phases(config)
        self.on_epoch = on_epoch
        self.on_progress = on_progress
        self.loss_fn = BrixiaScoreLoss()
        _seed_everything(config.seed)
        self.model = BSNET_SPEC.build()
        if init is not None:
            self.model.load_state_dict(init.state_dict)
        self.model.to(device)
        self.pretrained: dict | None = None
        self.out_of_fold = np.full((len(self.scored), 6), -1, dtype=np.int64)
        self.history: list[EpochLog] = []
        self.position = (0, 0)  # (phase index, epochs done in it)
        self.optimizer = self._optimizer(self.phases[0].stage)

    def _optimizer(self, stage: str) -> torch.optim.Optimizer:
        parts = [getattr(self.model, name) for name in STAGE_PARTS[stage]]
        return torch.optim.Adam([p for part in parts for p in part.parameters()], lr=LEARNING_RATES[stage])

    def _save(self) -> None:
        save_checkpoint(
            {
                "config": asdict(self.config),
                "position": self.position,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "pretrained": self.pretrained,
                "out_of_fold": torch.from_numpy(self.out_of_fold),
                "history": [asdict(entry) for entry in self.history],
                "rng": rng_state(),
            },
            self.checkpoint,
        )

    def resume(self) -> None:
        """Continue from the checkpoint file (same config required)."""
        state = load_checkpoint(self.checkpoint)
        saved = TrainingConfig(**{**state["config"], "stage_epochs": tuple(state["config"]["stage_epochs"])})
        if saved != self.config:
            raise ValueError(f"{self.checkpoint} was written with other settings: {saved}")
        self.position = tuple(state["position"])
        self.model.load_state_dict(state["model"])
        current = self.phases[min(self.position[0], len(self.phases) - 1)]  # a finished run: the last
        self.optimizer = self._optimizer(current.stage)
        self.optimizer.load_state_dict(state["optimizer"])
        self.pretrained = state["pretrained"]
        self.out_of_fold = state["out_of_fold"].numpy()
        self.history = [EpochLog(**entry) for entry in state["history"]]
        set_rng_state(state["rng"])

    def run(self) -> TrainingResult:
        """Train every remaining phase and return the final model with its validation figures."""
        start_phase, done = self.position
        for index in range(start_phase, len(self.phases)):
            self._run_phase(index, done if index == start_phase else 0)
        return TrainingResult(self.model, self._metrics(), self.history)

    def _run_phase(self, index: int, done: int) -> None:
        phase = self.phases[index]
        if done == 0:
            if phase.stage == "scoring":
                if self.pretrained is None:
                    self.pretrained = copy.deepcopy(self.model.state_dict())
                self.model.load_state_dict(self.pretrained)
            self.optimizer = self._optimizer(phase.stage)
        train, val = self._phase_data(phase)
        if len(train) == 0 and phase.epochs:
            log.warning("no images for the %s stage (lung masks missing?): skipped", phase.stage)
            return
        per_epoch = -(-len(train) // self.config.batch_size)
        self._report(PhaseStarted(phase, per_epoch * phase.epochs, per_epoch * done))
        for epoch in range(done, phase.epochs):
            generator = _epoch_generator(self.config.seed, index, epoch)
            losses = []
            for batch in _batches(len(train), self.config.batch_size, generator):
                losses.append(self._step(phase.stage, train.subset(batch.numpy()), generator))
                self._report(BatchDone(losses[-1]))
            val_mae = self._validate(phase, val, final=epoch + 1 == phase.epochs)
            entry = EpochLog(index, phase.stage, phase.fold, epoch + 1, float(np.mean(losses)), val_mae)
            self._report(entry)
            self.history.append(entry)
            self.position = (index, epoch + 1) if epoch + 1 < phase.epochs else (index + 1, 0)
            self._save()
            if self.on_epoch is not None:
                self.on_epoch(entry)

    def _report(self, event: TrainingEvent) -> None:
        if self.on_progress is not None:
            self.on_progress(event)

    def _phase_data(self, phase: Phase) -> tuple[TensorSet, TensorSet | None]:
        if phase.stage != "scoring":
            return self.masked, None
        if phase.fold is None:
            return self.scored, None
        train, val = self.splits[phase.fold]
        return self.scored.subset(train), self.scored.subset(val)

    def _step(self, stage: str, batch: TensorSet, generator: torch.Generator) -> float:
        to = self.device
        if stage == "segmentation":
            images, masks = transform_pair(batch.images, batch.masks, SCORING_AUGMENTATION, generator)
            return segmentation_step(self.model, self.optimizer, images.to(to), masks.to(to))
        if stage == "alignment":
            _, moved_masks = transform_pair(batch.images, batch.masks, SYNTHETIC_ALIGNMENT, generator)
            return alignment_step(self.model, self.optimizer, moved_masks.to(to), batch.masks.to(to))
        images = augment_images(batch.images, generator).to(to)
        targets = batch.labels(self.config.label).to(to)
        return scoring_step(self.model, self.optimizer, self.loss_fn, images, targets)

    def _validate(self, phase: Phase, val: TensorSet | None, final: bool) -> float | None:
        if val is None:
            return None
        predicted = predict_scores(self.model, val.images, self.config.batch_size, self.device)
        if final:
            self.out_of_fold[self.splits[phase.fold][1]] = predicted
        return float(np.abs(predicted - val.labels(self.config.label).numpy()).mean())

    def _metrics(self) -> dict:
        """Out-of-fold (or hold-out) figures with the human and constant baselines."""
        label = self.config.label
        evaluated = np.concatenate([val for _, val in self.splits])
        constant = np.zeros_like(self.out_of_fold)
        for train, val in self.splits:
            constant[val] = constant_scores(self.scored.labels(label).numpy()[train])
        other = self.scored.labels("junior" if label == "senior" else "senior").numpy()
        labels = self.scored.labels(label).numpy()
        report = evaluation_report(
            self.out_of_fold[evaluated],
            labels[evaluated],
            other[evaluated],
            constant[evaluated],
            label,
            "per-region lower median of each split's training labels",
        )
        report["validation"] = (
            f"{self.config.folds}-fold cross-validation, out-of-fold predictions"
            if self.config.folds
            else f"hold-out split of {len(evaluated)} images"
        )
        final_training = np.arange(len(labels)) if self.config.folds else self.splits[0][0]
        report["constant_scores"] = constant_scores(labels[final_training]).tolist()
        return report


def train(
    data: TensorSet,
    out: Path,
    config: TrainingConfig,
    device: torch.device,
    resume: bool = False,
    training_data: str = "",
    on_epoch: Callable[[EpochLog], None] | None = None,
    on_progress: Callable[[TrainingEvent], None] | None = None,
    init: Path | None = None,
) -> TrainingResult:
    """Train on ``data`` (from the weights file ``init`` if given), checkpointing to ``OUT.checkpoint``;
    write the weights file ``out``. ``on_epoch`` gets each epoch's entry once it is checkpointed,
    ``on_progress`` every :data:`TrainingEvent`."""
    out = Path(out)
    start = load_weights(Path(init), BSNET_SPEC) if init is not None else None
    if start is not None and start.sha256 != config.init_sha256:
        config = replace(config, init_sha256=start.sha256)
    trainer = Trainer(data, config, checkpoint_path(out), device, on_epoch, on_progress, start)
    if resume:
        if not trainer.checkpoint.is_file():
            raise FileNotFoundError(f"no checkpoint to resume from: {trainer.checkpoint}")
        trainer.resume()
    result = trainer.run()
    metrics = {**result.metrics, "config": asdict(config)}
    origin = ""
    if start is not None:
        origin = f"fine-tuned from {Path(init).name} ({start.metadata.source}, sha256 {start.sha256})"
    metadata = metadata_for(BSNET_SPEC.at_size(config.input_size), training_data, metrics, source_file=origin)
    save_weights(out, result.model.state_dict(), metadata)
    return result
