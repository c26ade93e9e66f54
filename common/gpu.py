"""Device selection, distributed set-up and training-throughput measurement.

Every package is device-agnostic: ``select_device("auto")`` picks CUDA when present, else CPU.
Under ``torchrun`` the process group is initialised from the environment (NCCL on GPUs, gloo on
CPU) so the same training loop runs on one CPU, one GPU or many machines."""
from __future__ import annotations

import atexit
import os
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist


def select_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> this rank's CUDA device when available, else CPU; anything else is parsed."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistributedContext:
    """Initialise ``torch.distributed`` from torchrun's environment variables (idempotent).

    A plain ``python`` process (no ``WORLD_SIZE``) is a world of one and initialises nothing."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        # Tear the group down before the interpreter does (PyTorch asks for it; a group left to
        # the interpreter's exit is torn down in no defined order).
        atexit.register(_destroy_process_group)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank)


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so that wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class ThroughputResult:
    images_per_second: float
    seconds_per_step: float
    batch_size: int
    steps_timed: int
    device: str
    bf16: bool
    channels_last: bool
    compiled: bool


def measure_training_throughput(
    model: torch.nn.Module,
    make_batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    batch_size: int,
    steps: int = 20,
    warmup_steps: int = 5,
    device: str | torch.device = "auto",
    bf16: bool = False,
    channels_last: bool = False,
    compile_model: bool = False,
    optimizer_factory: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
) -> ThroughputResult:
    """Steady-state training throughput: forward + backward + optimizer step, warm-up excluded,
    the device synchronised before the clock is read. ``make_batch(batch_size)`` returns
    ``(inputs, targets)`` on the CPU; they are moved once, outside the timed region."""
    device = select_device(device) if isinstance(device, str) else device
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = (optimizer_factory or (lambda params: torch.optim.AdamW(params, lr=1e-4)))(
        list(model.parameters()))
    runnable = torch.compile(model) if compile_model else model
    inputs, targets = make_batch(batch_size)
    inputs, targets = inputs.to(device), targets.to(device)
    if channels_last and inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    model.train()

    def one_step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(runnable(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup_steps):
        one_step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    synchronize(device)
    elapsed = time.perf_counter() - start
    return ThroughputResult(
        images_per_second=batch_size * steps / elapsed, seconds_per_step=elapsed / steps,
        batch_size=batch_size, steps_timed=steps, device=str(device), bf16=bf16,
        channels_last=channels_last, compiled=compile_model)
