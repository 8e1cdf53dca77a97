"""Point-to-point transfers between neighbouring pipeline stages, each bounded by a timeout.

Sends are non-blocking (`isend`): a stage hands its activation to the next stage and goes on to
the next micro-batch at once; the sends are waited for at the end of each phase. Receives can be
posted ahead of use (`post`), so a transfer overlaps the receiver's compute.

A receiver must know the shape and dtype of what arrives. Gradients have the shape of the
activation they belong to, which the receiver of a gradient produced itself. Activations are
announced once by a small header per (destination, micro-batch input shape): the shape of a
stage's output is a function of the shape of the micro-batch the first stage read, so after the
first step no header is sent again.

Every wait has the pipeline's timeout: a stage whose neighbour died or hangs raises
`PipelineTimeout` instead of waiting for ever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["Link", "Pending", "PipelineTimeout", "Spec"]

_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32,
           torch.int16, torch.int8, torch.uint8, torch.bool)
_HEADER = 8            # int64 entries: dtype code, ndim, up to 6 sizes
_HEADER_TAG = 1 << 20  # headers travel under their own tags


class PipelineTimeout(RuntimeError):
    """A transfer between stages did not complete in time (a neighbour failed or hangs)."""


@dataclass(frozen=True)
class Spec:
    """Shape and dtype of a tensor that will arrive."""

    shape: tuple[int, ...]
    dtype: torch.dtype


@dataclass
class Pending:
    """A posted receive: the buffer it fills and the work to wait for."""

    buffer: Tensor
    work: Any
    what: str


class Link:
    """This stage's transfers to and from the other stages of its process group."""

    def __init__(self, stage: int, device: torch.device, timeout_s: float):
        self.stage, self.device = stage, device
        self.timeout = timedelta(seconds=timeout_s)
        self._sends: list[tuple[Any, Tensor, str]] = []   # works and the buffers they read
        self._announced: set[tuple[int, Any]] = set()
        self._known: dict[tuple[int, Any], Spec] = {}

    # ---- sending ---------------------------------------------------------------------------------
    def send(self, tensor: Tensor, dst: int, tag: int, what: str, announce: Any = None) -> None:
        """Start sending `tensor` to stage `dst`; with `announce` (a key the receiver knows too),
        first its shape and dtype, once per key."""
        tensor = tensor.detach().contiguous()
        if announce is not None and (dst, announce) not in self._announced:
            if tensor.dim() > _HEADER - 2:
                raise ValueError(f"a pipeline passes tensors of at most {_HEADER - 2} "
                                 f"dimensions between stages, got {tensor.dim()}")
            header = torch.zeros(_HEADER, dtype=torch.int64)
            header[0], header[1] = _DTYPES.index(tensor.dtype), tensor.dim()
            header[2: 2 + tensor.dim()] = torch.tensor(tensor.shape)
            header = header.to(self.device)
            self._sends.append((dist.isend(header, dst, tag=_HEADER_TAG + tag), header, what))
            self._announced.add((dst, announce))
        self._sends.append((dist.isend(tensor, dst, tag=tag), tensor, what))

    def flush(self) -> None:
        """Wait until every started send has completed."""
        sends, self._sends = self._sends, []
        for work, _, what in sends:
            self.wait(work, f"sending {what}")

    # ---- receiving -------------------------------------------------------------------------------
    def post(self, src: int, tag: int, what: str, spec: Spec | None = None,
             announced: Any = None) -> Pending:
        """Post the receive of a tensor from stage `src`: of shape `spec`, or announced by a header
        under the key `announced` (read here, once per key)."""
        if spec is None:
            key = (src, announced)
            if key not in self._known:
                header = torch.zeros(_HEADER, dtype=torch.int64, device=self.device)
                self.wait(dist.irecv(header, src, tag=_HEADER_TAG + tag), f"receiving {what}")
                h = header.tolist()
                self._known[key] = Spec(tuple(h[2: 2 + h[1]]), _DTYPES[h[0]])
            spec = self._known[key]
        buffer = torch.empty(spec.shape, dtype=spec.dtype, device=self.device)
        return Pending(buffer, dist.irecv(buffer, src, tag=tag), what)

    def knows(self, src: int, announced: Any) -> bool:
        """Whether the shape announced under this key from `src` is known already."""
        return (src, announced) in self._known

    def take(self, pending: Pending) -> Tensor:
        """The received tensor, once it has arrived."""
        self.wait(pending.work, f"receiving {pending.what}")
        return pending.buffer

    def wait(self, work: Any, doing: str) -> None:
        """Wait for a transfer or collective, at most the timeout."""
        try:
            work.wait(self.timeout)
        except RuntimeError as e:
            raise PipelineTimeout(
                f"stage {self.stage} gave up {doing} after at most "
                f"{self.timeout.total_seconds():g} s: another stage failed or is stuck "
                f"({str(e).splitlines()[0][:160]})") from None
