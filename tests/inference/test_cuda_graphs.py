"""The network replayed as CUDA graphs scores as the network itself does (issue 13). These tests
need a CUDA device and are skipped without one (CI has none): ``bench/gpu_session.sh`` runs them
on a lent GPU machine."""

import threading

import numpy as np
import pydicom
import pytest
import torch

from inference import Predictor
from inference.predictor import prepare_input

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")


@pytest.fixture(scope="module")
def images(fuji_cr):
    """Two different prepared radiographs: the Fuji chest CR and its mirror image."""
    prepared = prepare_input(pydicom.dcmread(fuji_cr), 512)
    mirrored = prepare_input(np.ascontiguousarray(prepared.model_input[:, ::-1]), 512)
    return [prepared, mirrored]


def assert_same(graphed, plain, atol: float) -> None:
    for a, b in zip(graphed, plain, strict=True):
        for region in a.probabilities:
            np.testing.assert_allclose(a.probabilities[region], b.probabilities[region], atol=atol)
        np.testing.assert_allclose(a.alignment, b.alignment, atol=atol)
        assert (a.lung_mask != b.lung_mask).mean() < 0.01


def test_graphed_batches_full_and_partial_score_as_the_network_does(images):
    """fp32: the compiled network as graphs, against the same weights eager, for a batch of one,
    a partial batch and a full one (CUDA graphs need the compiled network: RunOptions)."""
    plain = Predictor(allow_untrained=True, device="cuda", batch_size=4)
    graphed = Predictor(allow_untrained=True, device="cuda", batch_size=4, compiled=True, cuda_graphs=2)
    graphed.model.load_state_dict(plain.model.state_dict())
    for batch in ([images[0]], [images[1], images[0], images[1]], images * 2):
        assert_same(graphed.predict_batch(batch), plain.predict_batch(batch), atol=5e-3)


def test_two_threads_scoring_at_once_each_get_their_own_batch_results(images):
    plain = Predictor(allow_untrained=True, device="cuda", batch_size=2)
    graphed = Predictor(allow_untrained=True, device="cuda", batch_size=2, compiled=True, cuda_graphs=2)
    graphed.model.load_state_dict(plain.model.state_dict())
    expected = {index: plain.predict_batch([image])[0] for index, image in enumerate(images)}
    graphed.predict_batch([images[0]])  # captures both graphs, as a worker's warm-up does
    mismatches: list[str] = []

    def score(index: int) -> None:
        for _ in range(20):
            result, wanted = graphed.predict_batch([images[index]])[0], expected[index]
            probabilities = [np.allclose(result.probabilities[r], wanted.probabilities[r], atol=1e-3)
                             for r in wanted.probabilities]
            if not all(probabilities) or not np.allclose(result.alignment, wanted.alignment, atol=1e-3):
                mismatches.append(f"image {index}")

    threads = [threading.Thread(target=score, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not mismatches


def test_compiled_bf16_graphs_score_as_the_eager_bf16_network(images):
    """The worker's GPU setting (compiled, bf16) captured as graphs, against the same network eager."""
    plain = Predictor(allow_untrained=True, device="cuda", batch_size=4, precision="bf16")
    graphed = Predictor(
        allow_untrained=True, device="cuda", batch_size=4, precision="bf16", compiled=True, cuda_graphs=2
    )
    graphed.model.load_state_dict(plain.model.state_dict())
    batch = [images[0], images[1], images[0]]
    assert_same(graphed.predict_batch(batch), plain.predict_batch(batch), atol=0.03)
