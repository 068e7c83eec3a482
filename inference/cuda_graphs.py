"""The network replayed as CUDA graphs (``torch.cuda.CUDAGraph``; NVIDIA's CUDA Programming
Guide, "CUDA Graphs"; PyTorch's "CUDA Graphs" notes).

A forward pass of BS-Net is several hundred kernel launches, each issued by Python code that
holds the GIL. In an inference worker the thread that drives the GPU shares the GIL with
Celery's consumer and the other scoring thread, so the GPU idles while it waits for the GIL: a
batch of 32 took 60 ms in the worker against 34 ms alone on an H200 (docs/benchmarks.md).
Captured once as a graph, the pass is one launch. A graph replays into the same input and
output tensors every time, so each batch scored at once needs a graph of its own: the copies
are captured together, at the first pass (the worker's warm-up), never while images are scored.
"""

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from inference.bsnet.model import BSNetOutput

WARM_UP_PASSES = 3  # on a side stream before capture, as PyTorch's notes advise (cuDNN picks its algorithms)


@dataclass
class _Graph:
    """One captured pass: ``graph`` reads ``inputs`` and writes ``output`` each replay."""

    graph: torch.cuda.CUDAGraph
    inputs: torch.Tensor
    output: BSNetOutput


class GraphedNetwork:
    """``copies`` CUDA graphs of ``network`` at the shape, dtype and device of ``example``;
    :meth:`replayed` lends one to a batch. Capture under the autocast and inference-mode context
    the passes should run in; ``example`` is also the warm-up passes' input."""

    def __init__(self, network: Callable[[torch.Tensor], BSNetOutput], example: torch.Tensor, copies: int) -> None:
        if example.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {example.device}")
        side = torch.cuda.Stream(example.device)
        side.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(side):
            for _ in range(WARM_UP_PASSES):
                network(example)
        torch.cuda.current_stream(example.device).wait_stream(side)
        self._free: queue.SimpleQueue[_Graph] = queue.SimpleQueue()
        for _ in range(copies):
            inputs = example.clone()
            graph = torch.cuda.CUDAGraph()
            # thread_local: another thread's CUDA work during a capture neither fails nor joins it
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                output = network(inputs)
            self._free.put(_Graph(graph, inputs, output))
        self.shape = tuple(example.shape)

    @contextmanager
    def replayed(self, inputs: torch.Tensor) -> Iterator[BSNetOutput]:
        """The network's output for ``inputs`` (of the captured shape), valid inside the ``with``
        only: the graph is lent to another batch after it. Waits while every copy is lent."""
        if tuple(inputs.shape) != self.shape:
            raise ValueError(f"the CUDA graphs were captured for inputs {self.shape}, got {tuple(inputs.shape)}")
        lent = self._free.get()
        try:
            lent.inputs.copy_(inputs)
            lent.graph.replay()
            yield lent.output
        finally:
            self._free.put(lent)


class LazyGraphs:
    """:class:`GraphedNetwork` captured at the first pass, once, whichever thread makes it."""

    def __init__(self, copies: int) -> None:
        self._copies = copies
        self._lock = threading.Lock()
        self._graphs: GraphedNetwork | None = None

    def of(self, network: Callable[[torch.Tensor], BSNetOutput], example: torch.Tensor) -> GraphedNetwork:
        with self._lock:
            if self._graphs is None:
                self._graphs = GraphedNetwork(network, example, self._copies)
            return self._graphs
