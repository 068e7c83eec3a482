"""How the network runs on its device (inference.device.RunOptions): CUDA graphs are refused
where they cannot be captured, with a reason, when the predictor is made (a worker's start)."""

import pytest
import torch

from inference.device import RunOptions
from inference.errors import DeviceError

CUDA = torch.device("cuda")  # RunOptions only reads the device's type: no GPU needed here


def test_cuda_graphs_need_a_cuda_device():
    with pytest.raises(DeviceError, match="not a CUDA device"):
        RunOptions.for_device(torch.device("cpu"), 1, compiled=True, cuda_graphs=1)


def test_cuda_graphs_are_captured_from_the_compiled_network_only():
    with pytest.raises(DeviceError, match="add --compile"):
        RunOptions.for_device(CUDA, 32, cuda_graphs=2)


def test_graphed_batches_are_padded_to_the_batch_size_and_described():
    options = RunOptions.for_device(CUDA, 32, compiled=True, cuda_graphs=2)
    assert options.fixed_shape and not RunOptions.for_device(CUDA, 32).fixed_shape
    assert options.describe() == "batch 32, fp32, channels_last, compiled, 2 CUDA graphs"
