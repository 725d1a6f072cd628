"""Process-group setup and the small collective helpers the training loop and evaluation share.

The launcher (`torchrun`) exports RANK / WORLD_SIZE / LOCAL_RANK; they are read in `setup()`,
never at import time. CUDA runs use NCCL and bf16 autocast; CPU runs use gloo in float32.
"""
from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """bf16 on GPUs; None (plain float32) on CPU."""
        return torch.bfloat16 if self.device.type == "cuda" else None

    def autocast(self) -> contextlib.AbstractContextManager:
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def sync(self) -> None:
        """Wait for queued GPU work, so a clock read after it measures finished work."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def all_reduce_sum(self, t: Tensor) -> Tensor:
        if self.distributed:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def all_reduce_max(self, t: Tensor) -> Tensor:
        if self.distributed:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Average `.grad` over ranks in one flat all-reduce per dtype (gloo has no AVG op).
        Parameters without a gradient (a layer switched off, e.g. recurrence not yet active)
        are left out, on every rank alike, so optimizers skip them instead of decaying them."""
        if not self.distributed or self.world_size == 1:
            return
        by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
        for p in params:
            if p.grad is not None:
                by_dtype.setdefault(p.grad.dtype, []).append(p)
        for group in by_dtype.values():
            flat = torch.cat([p.grad.reshape(-1) for p in group])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            flat.div_(self.world_size)
            offset = 0
            for p in group:
                n = p.grad.numel()
                p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
                offset += n


def setup(environ: Mapping[str, str] | None = None) -> DistContext:
    """Join the process group torchrun describes (or run alone) and pick the device."""
    env = os.environ if environ is None else environ
    rank = int(env.get("RANK", "0"))
    world_size = int(env.get("WORLD_SIZE", "1"))
    local_rank = int(env.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if "RANK" in env and world_size > 1 and not dist.is_initialized():
        if backend == "nccl":
            dist.init_process_group(backend=backend, device_id=device)
        else:
            dist.init_process_group(backend=backend)
        dist.barrier()
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def teardown() -> None:
    """Leave the process group together and free what it still holds while the interpreter is
    fully alive. Without the final `gc.collect()` about one 2-rank gloo run in ten aborted at
    interpreter exit ("terminate called without an active exception", SIGABRT) after training
    had finished: objects in reference cycles kept collective state alive until finalization
    (measured here: 5 of 50 runs without it, 0 of 60 with it)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    gc.collect()


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Evaluate under inference mode and restore the previous train/eval flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)
