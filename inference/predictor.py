"""Load BS-Net weights and score radiographs (the node's one entry point into the model)."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from pydicom.dataset import Dataset

from inference.bsnet.model import BSNetOutput
from inference.cuda_graphs import LazyGraphs
from inference.device import Precision, RunOptions, select_device
from inference.errors import UntrainedModelError, WeightsError
from inference.explainability import lung_mask, severity_contributions
from inference.geometry import FrameMapping
from inference.model_spec import BSNET_SPEC, ModelSpec, build_untrained
from inference.preprocessing import (
    PreparedImage,
    model_input_from_display,
    prepare_dataset,
    prepare_display,
    prepare_file,
)
from inference.regions import REGION_NAMES
from inference.result import BrixiaResult, ModelIdentity
from inference.weights import WeightsMetadata, load_weights, tensors_sha256

PredictorInput = Dataset | np.ndarray | PreparedImage | str | Path


def prepare_input(item: PredictorInput, size: int) -> PreparedImage:
    """Dataset, display array in [0, 1], image/DICOM path or PreparedImage -> PreparedImage.

    A PreparedImage made for another input size (the node prepares at 512; weights may have been
    trained at another size) is resized and equalised again, which approximates preparing the
    source at ``size`` directly.
    """
    if isinstance(item, PreparedImage):
        if item.model_input.shape == (size, size):
            return item
        return PreparedImage(
            model_input=model_input_from_display(item.model_input, size),
            mapping=FrameMapping(item.mapping.source_shape, size),
        )
    if isinstance(item, Dataset):
        return prepare_dataset(item, size)
    if isinstance(item, (str, Path)):
        return prepare_file(Path(item), size)
    return prepare_display(np.asarray(item, dtype=np.float32), size)


class Predictor:
    """BS-Net scorer.

    ``Predictor(weights=PATH)`` loads and verifies a weights file and reads images at the input size
    recorded in it (``metadata``); ``weights=None`` is refused
    unless ``allow_untrained=True`` (results then say ``untrained=True``). ``device=None`` picks
    CUDA when present, else the CPU; ``batch_size``, ``precision``, ``channels_last`` and
    ``compiled`` and ``cuda_graphs`` say how the network runs there
    (:class:`~inference.device.RunOptions`; a None batch size takes the device's default; with
    ``cuda_graphs`` N, up to N threads may score batches at the same time).
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        allow_untrained: bool = False,
        device: str | torch.device | None = None,
        batch_size: int | None = None,
        spec: ModelSpec = BSNET_SPEC,
        precision: Precision = "fp32",
        channels_last: bool = True,
        compiled: bool = False,
        cuda_graphs: int = 0,
    ) -> None:
        self.spec = spec
        self.device = select_device(device)
        self.options = RunOptions.for_device(self.device, batch_size, precision, channels_last, compiled, cuda_graphs)
        self.metadata: WeightsMetadata | None = None
        if weights is not None:
            loaded = load_weights(Path(weights), spec)
            self.spec = spec.at_size(int(loaded.metadata.input_spec.get("height", spec.input_spec.height)))
            self.metadata = loaded.metadata
            model = spec.build()
            try:
                model.load_state_dict(loaded.state_dict, strict=True)
            except RuntimeError as error:
                raise WeightsError(f"{weights} does not fit {spec.name}: {error}") from error
            self.identity = ModelIdentity(
                self.spec.name, loaded.metadata.model_version, loaded.sha256, loaded.metadata.source, untrained=False
            )
        elif allow_untrained:
            model = build_untrained(spec)
            self.identity = ModelIdentity(
                spec.name, spec.version, tensors_sha256(model.state_dict()), "untrained", untrained=True
            )
        else:
            raise UntrainedModelError(
                "no weights given: pass a weights file, or allow_untrained=True for a "
                "demonstration with a randomly initialised network"
            )
        if self.device.type == "cuda":
            # let cuDNN time its algorithms once per input shape (the batch sizes seen: few)
            torch.backends.cudnn.benchmark = True
        # channels_last: the convolutions run about a quarter faster on CPU (docs/benchmarks.md)
        self.model = model.to(self.device, memory_format=self.options.memory_format).eval()
        self.network = torch.compile(self.model, dynamic=False) if self.options.compiled else self.model
        self._graphs = LazyGraphs(self.options.cuda_graphs) if self.options.cuda_graphs else None

    @property
    def input_size(self) -> int:
        return self.spec.input_spec.height

    def predict(self, item: PredictorInput) -> BrixiaResult:
        """Score one radiograph."""
        return self.predict_batch([item])[0]

    def predict_batch(self, items: Sequence[PredictorInput]) -> list[BrixiaResult]:
        """Score many radiographs, one forward pass per ``options.batch_size`` of them; results in
        input order."""
        prepared = [prepare_input(item, self.input_size) for item in items]
        size = self.options.batch_size
        results: list[BrixiaResult] = []
        for start in range(0, len(prepared), size):
            results += self._run(prepared[start : start + size])
        return results

    def _inputs(self, batch: list[PreparedImage]) -> torch.Tensor:
        """The batch as an N x 1 x H x W tensor on the device; a compiled or graphed network gets zero
        images appended up to the batch size, so that it always sees the one shape it was made for.
        For a GPU the images are stacked straight into page-locked memory, whence the copy to the
        device needs no staging (from pageable memory it took 8-12 ms of a 36 ms batch of 32 on an
        H200, docs/benchmarks.md)."""
        rows = self.options.batch_size if self.options.fixed_shape else len(batch)
        size = batch[0].model_input.shape
        host = torch.empty((rows, 1, *size), dtype=torch.float32, pin_memory=self.device.type == "cuda")
        np.stack([p.model_input for p in batch], out=host.numpy()[: len(batch), 0])
        host[len(batch) :].zero_()
        return host.to(self.device, memory_format=self.options.memory_format, non_blocking=True)

    def _to_host(self, tensor: torch.Tensor) -> np.ndarray:
        """``tensor`` as a host array; from a GPU through page-locked memory (PyTorch's caching
        host allocator reuses it once the results are dropped): a batch of 32 full-size maps took
        130 ms to copy to pageable memory on an H200, 4 ms to page-locked (docs/benchmarks.md)."""
        if tensor.device.type != "cuda":
            return tensor.numpy()
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor)
        return host.numpy()

    @contextmanager
    def _forward(self, inputs: torch.Tensor) -> Iterator[BSNetOutput]:
        """The network's output for ``inputs``, valid inside the ``with`` (a CUDA graph's output
        tensors are lent: :mod:`inference.cuda_graphs`)."""
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.options.precision == "bf16")
        if self._graphs is None:
            with autocast:
                output = self.network(inputs)
            yield output
            return
        with autocast:  # the graphs are captured at the first pass, as every pass should run
            graphs = self._graphs.of(self.network, inputs)
        with graphs.replayed(inputs) as output:
            yield output

    @torch.inference_mode()
    def _run(self, batch: list[PreparedImage]) -> list[BrixiaResult]:
        with self._forward(self._inputs(batch)) as output:
            # only what the maps are made of leaves the device: BrixiaResult draws them on first use
            probabilities = self._to_host(output.score_probabilities.float())
            masks = self._to_host(lung_mask(output))
            alignments = self._to_host(output.theta.float())
            contributions = self._to_host(severity_contributions(output))
        results = []
        for index, prepared in enumerate(batch):
            scores = {name: int(np.argmax(probabilities[index, r])) for r, name in enumerate(REGION_NAMES)}
            results.append(
                BrixiaResult(
                    region_scores=scores,
                    probabilities={
                        name: tuple(float(p) for p in probabilities[index, r])
                        for r, name in enumerate(REGION_NAMES)
                    },
                    global_score=sum(scores.values()),
                    lung_mask=masks[index],
                    alignment=alignments[index],
                    contributions=contributions[index],
                    mapping=prepared.mapping,
                    model=self.identity,
                )
            )
        return results
