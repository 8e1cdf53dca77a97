"""Activation memory, measured on any device: the bytes a stage holds for its backward pass.

GPipe's re-materialisation (section 2.3) trades compute for memory: without it a stage keeps every
activation autograd saves for all M micro-batches, O(N L/K) for a mini-batch of N samples and L/K
layers; with it, only each micro-batch's input, O(N), plus one micro-batch's activations while it
is recomputed, O((L/K)(N/M)).

`ActivationMeter` counts, at every moment of a step, the bytes of (a) tensors autograd saves for
backward (through `torch.autograd.graph.saved_tensors_hooks`), and (b) tensors the stage itself
keeps (micro-batch inputs and outputs), each storage once, parameters not at all, and records the
peak. It works the same on CPU, where no allocator statistics exist, and on GPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["ActivationMeter"]


class _Held:
    """A saved tensor; when autograd frees it (after its backward), the meter releases it."""

    __slots__ = ("meter", "tensor")

    def __init__(self, meter: ActivationMeter, tensor: Tensor):
        self.meter, self.tensor = meter, tensor
        meter.hold(tensor)

    def __del__(self) -> None:
        self.meter.release(self.tensor)


class ActivationMeter:
    """Live and peak bytes of activations held for backward (see the module docstring)."""

    def __init__(self, parameters: Iterable[Tensor] = ()):
        self._params = {p.untyped_storage().data_ptr() for p in parameters}
        self._count: dict[int, int] = {}
        self.live = 0
        self.peak = 0

    def reset_peak(self) -> None:
        self.peak = self.live

    def hold(self, t: Tensor) -> None:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr in self._params or storage.nbytes() == 0:
            return
        self._count[ptr] = self._count.get(ptr, 0) + 1
        if self._count[ptr] == 1:
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)

    def release(self, t: Tensor) -> None:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self._count:
            return
        self._count[ptr] -= 1
        if self._count[ptr] == 0:
            del self._count[ptr]
            self.live -= storage.nbytes()

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        """Count what autograd saves for backward inside the block."""

        def pack(t: Tensor) -> Any:
            return _Held(self, t)

        def unpack(held: Any) -> Tensor:
            return held.tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            yield
