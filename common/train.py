"""The one training loop every torch package uses.

``Trainer`` owns what is the same in all five papers: device and AMP handling, channels_last,
optional ``torch.compile``, DistributedDataParallel under ``torchrun``, a seeded epoch order that
makes a resumed run identical to an uninterrupted one, gradient clipping, per-step LR schedules,
tqdm / CSV / TensorBoard logging, periodic evaluation, best-checkpoint selection, atomic
checkpoints holding models, optimizers, schedulers, AMP scaler, RNG states and the step, and a
graceful stop on SIGTERM / SIGINT (finish the step, write ``last.pt``, raise
:class:`TrainingInterrupted`).

Resume exactness (one process, on CPU; on GPUs up to the determinism of the kernels): a run
resumed from ``last.pt``, also mid-epoch, gives bit-identical weights to the uninterrupted run,
with any ``num_workers``. The epoch order comes from a sampler seeded by (seed, epoch). Data
augmentation drawn from the global RNGs (torch, NumPy, ``random``) is exact in both loader modes:

- ``num_workers=0``: samples are drawn in the main process from the global streams, which the
  checkpoint saves and restores;
- ``num_workers >= 1``: before each sample a worker seeds the global RNGs from
  (seed, rank, epoch, sample index), so a sample's augmentation depends neither on which worker
  reads it nor on where the loader started. Weights are then the same for every worker count,
  but differ from ``num_workers=0`` runs, whose draws follow one stream (same sample order).

A dataset holding its own generator (created in ``__init__``) is outside this guarantee. Under
DDP the checkpoint holds rank 0's RNG states and every rank restores them, so after a resume the
ranks other than 0 draw other dropout masks (and, with ``num_workers=0``, augmentations) than in
the uninterrupted run: same sample order and step count, not the same bits.

What differs between papers is passed in: either ``loss_fn(models, batch) -> (loss, logs)`` for
a single optimizer, or ``step_fn(trainer, batch) -> logs`` for several (GANs)."""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
import logging
import math
import os
import platform
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm.auto import tqdm

from common.checkpoint import (write_atomically, capture_rng_state, load_checkpoint, restore_rng_state,
                               save_checkpoint)
from common.data.dataset import collate_skip_corrupt
from common.gpu import init_distributed, measure_training_throughput, select_device, synchronize
from common.seed import seed_everything

log = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"

#: Signals on which ``Trainer.fit`` finishes the current step, writes ``last.pt`` and stops.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step."""


class TrainingInterrupted(SystemExit):
    """``Trainer.fit`` stopped on SIGTERM / SIGINT after finishing a step and writing ``last.pt``.

    A ``SystemExit``: left uncaught, it ends the process with status 1 and its one-line message
    (no traceback), and ``except Exception`` handlers let it through. Catch it to do something
    else; ``step``, ``checkpoint`` and ``signal_name`` say where the run stopped."""

    def __init__(self, signal_name: str, step: int, max_steps: int, checkpoint: Path):
        self.signal_name, self.step, self.max_steps, self.checkpoint = signal_name, step, max_steps, checkpoint
        super().__init__(f"{signal_name}: training stopped at step {step} of {max_steps}; checkpoint "
                         f"{checkpoint} holds step {step}; run the same command again to resume")

    def __reduce__(self) -> tuple[type, tuple[str, int, int, Path]]:
        """Pickle by the constructor's arguments (e.g. from a process-pool worker)."""
        return type(self), (self.signal_name, self.step, self.max_steps, self.checkpoint)


@dataclass
class TrainConfig:
    """Knobs of the shared loop (the papers' own hyper-parameters live in each package's config)."""

    out_dir: Path
    max_steps: int
    log_every: int = 10
    eval_every: int = 0          # 0: evaluate only at the end
    checkpoint_every: int = 0    # 0: checkpoint at each evaluation and at the end
    grad_clip_norm: float | None = None
    bf16: bool = False           # bf16 autocast (CUDA; also CPU where supported)
    fp16: bool = False           # fp16 autocast + GradScaler, for GPUs without bf16
    channels_last: bool = False
    compile: bool = False
    device: str = "auto"
    seed: int = 0
    best_metric: str | None = None
    best_mode: str = "max"       # "max" or "min"
    tensorboard: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min', got {self.best_mode!r}")
        if self.bf16 and self.fp16:
            raise ValueError("choose one of bf16 and fp16")


@dataclass
class TrainResult:
    step: int
    best_value: float | None
    history: list[dict[str, float]]
    out_dir: Path
    samples_per_second: float | None = None


def _as_dict(obj: Any, default_name: str) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    return {default_name: obj}


class _OffsetSampler(Sampler[int]):
    """The first ``offset`` indices of ``base`` are skipped: the rest of an interrupted epoch."""

    def __init__(self, base: Sampler[int], offset: int):
        self.base, self.offset = base, offset

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.base)[self.offset:])

    def __len__(self) -> int:
        return max(0, len(self.base) - self.offset)  # type: ignore[arg-type]


class _SampleSeededDataset(Dataset):
    """``base`` whose every sample is read with the global RNGs (torch CPU, NumPy, ``random``)
    seeded from (seed, rank, epoch, index). Used only inside DataLoader worker processes, whose
    global RNGs are otherwise one stream per worker: which sample got which draw would depend on
    the worker that read it and on the batch the loader started at, so that a resumed epoch
    would draw other augmentations than the uninterrupted one."""

    def __init__(self, base: Dataset, seed: int, rank: int, epoch: int):
        self.base, self.seed, self.rank, self.epoch = base, seed, rank, epoch

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        entropy = (self.seed % 2**64, self.rank, self.epoch, int(index))
        sample_seed = int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])
        torch.default_generator.manual_seed(sample_seed)  # CPU only: workers do not use CUDA
        np.random.seed(sample_seed % 2**32)
        random.seed(sample_seed)
        return self.base[index]


class Trainer:
    """See the module docstring. ``models``/``optimizers``/``schedulers`` are one object or a
    dict by name; ``extra_state`` holds other objects with ``state_dict``/``load_state_dict``
    (e.g. a GAN's image history pool) that must survive a resume.

    bf16 on CPU (``config.bf16``): whether autocast pays off depends on the network and the CPU.
    On an AVX-512/AMX Xeon bf16 + channels_last made a ResNet50 train step 2.2x and a DenseNet121
    1.9x as fast but the SSP basic net 0.82x (``shared/FINDINGS.md``); CPUs without native bf16
    only emulate it. So a package offering ``bf16="auto"`` at its real-data CPU scale decides by
    measurement: when it starts a fresh run it calls :func:`calibrate_bf16` once, with a factory
    of a throwaway copy of its network, its loss and its batch size, trains with
    ``TrainConfig(bf16=calibration.use_bf16)`` and records ``dataclasses.asdict(calibration)`` in
    ``run.json`` (``write_run_record(..., extra={"bf16_calibration": ...})``). A resumed run does
    not calibrate again but takes ``bf16`` from its checkpoint (``last.pt``'s ``"config"``): the
    precision shapes the trajectory, and a second timing that came out the other way must not
    switch it mid-run. Under ``torchrun`` rank 0's decision is to be broadcast, so that the ranks
    do not time their way to different precisions. ``calibrate_bf16`` times the CPU only; on
    CUDA bf16 runs on the tensor cores wherever
    ``torch.cuda.is_bf16_supported(including_emulation=False)``.

    Under autocast (CPU and CUDA) convolutions and matmuls run in bf16, while the standard losses
    (``binary_cross_entropy_with_logits``, ``cross_entropy``, ``mse_loss``, ``l1_loss``) come out
    in fp32; a loss reduced by hand from bf16 activations stays bf16 unless cast (``.float()``).
    Logged values are Python floats, and ``evaluate_fn`` and :func:`predict` run without autocast,
    so metrics are fp32."""

    def __init__(
        self,
        models: nn.Module | Mapping[str, nn.Module],
        optimizers: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer],
        train_dataset: Dataset,
        config: TrainConfig,
        *,
        batch_size: int,
        loss_fn: Callable[[Any, dict[str, Any]], tuple[torch.Tensor, dict[str, float]]] | None = None,
        step_fn: Callable[["Trainer", dict[str, Any]], dict[str, float]] | None = None,
        schedulers: Any = None,
        evaluate_fn: Callable[[Any], dict[str, float]] | None = None,
        collate_fn: Callable | None = collate_skip_corrupt,
        num_workers: int = 0,
        drop_last: bool = True,
        extra_state: Mapping[str, Any] | None = None,
    ):
        if (loss_fn is None) == (step_fn is None):
            raise ValueError("give exactly one of loss_fn and step_fn")
        self.config = config
        self.distributed = init_distributed()
        self.device = select_device(config.device)
        seed_everything(config.seed + self.distributed.rank)

        self._single_model = not isinstance(models, Mapping)
        self.raw_models: dict[str, nn.Module] = _as_dict(models, "model")
        self.optimizers: dict[str, torch.optim.Optimizer] = _as_dict(optimizers, "optimizer")
        self.schedulers: dict[str, Any] = _as_dict(schedulers, "scheduler")
        self.extra_state: dict[str, Any] = dict(extra_state or {})
        if loss_fn is not None and len(self.optimizers) != 1:
            raise ValueError("loss_fn training takes exactly one optimizer; use step_fn for several")

        for model in self.raw_models.values():
            model.to(self.device)
            if config.channels_last:
                model.to(memory_format=torch.channels_last)
        self.models: dict[str, nn.Module] = {name: self._wrap(m) for name, m in self.raw_models.items()}

        self.train_dataset = train_dataset
        self.batch_size = batch_size
        self.loss_fn, self.step_fn, self.evaluate_fn = loss_fn, step_fn, evaluate_fn
        self.collate_fn, self.num_workers, self.drop_last = collate_fn, num_workers, drop_last
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.fp16)

        self.step = 0
        self.best_value: float | None = None
        self.history: list[dict[str, float]] = []
        self._csv_path = config.out_dir / "log.csv"
        self._tb_writer = None
        self._stop_signal: int | None = None   # set by the signal handler during fit
        self._handled_signals: tuple[int, ...] = ()  # the signals fit handles now
        self._last_saved_step: int | None = None  # the step of the last last.pt this run wrote

    # ----------------------------------------------------------------- set-up helpers
    def _wrap(self, model: nn.Module) -> nn.Module:
        wrapped = model
        if self.config.compile:
            wrapped = torch.compile(wrapped)
        if self.distributed.enabled and any(p.requires_grad for p in model.parameters()):
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped = DistributedDataParallel(wrapped, device_ids=device_ids)
        return wrapped

    @property
    def is_main(self) -> bool:
        return self.distributed.is_main

    def _sampler(self, epoch: int, offset: int) -> Sampler[int]:
        base = DistributedSampler(
            self.train_dataset, num_replicas=self.distributed.world_size, rank=self.distributed.rank,
            shuffle=True, seed=self.config.seed, drop_last=self.drop_last)
        base.set_epoch(epoch)
        return _OffsetSampler(base, offset)

    def steps_per_epoch(self) -> int:
        per_rank = len(self._sampler(0, 0))
        steps = per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)
        if steps == 0:
            raise ValueError(
                f"training set of {len(self.train_dataset)} samples gives no full batch of "
                f"{self.batch_size} per rank")
        return steps

    def _loader(self, epoch: int, batches_done: int) -> DataLoader:
        dataset = self.train_dataset
        if self.num_workers > 0:
            dataset = _SampleSeededDataset(dataset, self.config.seed, self.distributed.rank, epoch)
        return DataLoader(
            dataset, batch_size=self.batch_size,
            sampler=self._sampler(epoch, batches_done * self.batch_size),
            num_workers=self.num_workers, collate_fn=self.collate_fn, drop_last=self.drop_last,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
            worker_init_fn=functools.partial(_ignore_signals_in_worker, self._handled_signals),
            generator=torch.Generator().manual_seed(self.config.seed * 100_003 + epoch))

    def _to_device(self, batch: Any) -> Any:
        if isinstance(batch, torch.Tensor):
            return batch.to(self.device, non_blocking=True)
        if isinstance(batch, Mapping):
            moved = {key: self._to_device(value) for key, value in batch.items()}
            image = moved.get("image")
            if self.config.channels_last and isinstance(image, torch.Tensor) and image.dim() == 4:
                moved["image"] = image.contiguous(memory_format=torch.channels_last)
            return moved
        if isinstance(batch, (list, tuple)):
            return type(batch)(self._to_device(value) for value in batch)
        return batch

    # ----------------------------------------------------------------- used by step_fn
    def autocast(self) -> contextlib.AbstractContextManager:
        """The configured mixed-precision context (a no-op in fp32)."""
        if self.config.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.config.fp16:
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def check_finite(self, loss: torch.Tensor, name: str = "loss") -> None:
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteLossError(f"{name} is {loss.detach().float().item()} at step {self.step + 1}")

    def backward_and_step(self, loss: torch.Tensor, optimizer_name: str | None = None,
                          parameters: list[nn.Parameter] | None = None) -> None:
        """Zero grads, backward, clip (``parameters`` or the optimizer's own), optimizer step."""
        optimizer = self.optimizers[optimizer_name or next(iter(self.optimizers))]
        self.check_finite(loss)
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip_norm is not None:
            self.scaler.unscale_(optimizer)
            params = parameters or [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip_norm)
        self.scaler.step(optimizer)
        self.scaler.update()

    def model_argument(self, wrapped: bool = True) -> Any:
        """What ``loss_fn``/``evaluate_fn`` receive: the model, or the dict of models."""
        models = self.models if wrapped else self.raw_models
        return next(iter(models.values())) if self._single_model else models

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "models": {name: m.state_dict() for name, m in self.raw_models.items()},
            "optimizers": {name: o.state_dict() for name, o in self.optimizers.items()},
            "schedulers": {name: s.state_dict() for name, s in self.schedulers.items()},
            "extra": {name: s.state_dict() for name, s in self.extra_state.items()},
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(),
            "best_value": self.best_value,
            "history": self.history,
            "config": {k: (str(v) if isinstance(v, Path) else v)
                       for k, v in dataclasses.asdict(self.config).items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, model in self.raw_models.items():
            model.load_state_dict(state["models"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][name])
        for name, holder in self.extra_state.items():
            holder.load_state_dict(state["extra"][name])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best_value = state["best_value"]
        self.history = list(state["history"])
        restore_rng_state(state["rng"])

    def save(self, filename: str) -> None:
        if self.is_main:
            save_checkpoint(self.config.out_dir / filename, self.state_dict())
        if filename == LAST_CHECKPOINT:
            self._last_saved_step = self.step

    # ----------------------------------------------------------------- logging
    def _rewrite_log(self, fields: list[str], rows: list[dict[str, str]]) -> None:
        """Replace ``log.csv`` by ``fields`` and ``rows`` atomically (temp file, then rename), so a
        crash mid-write leaves the previous file."""
        def write(temp_path: Path) -> None:
            with temp_path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)

        write_atomically(self._csv_path, write)

    def _drop_log_rows_after(self, step: int) -> None:
        """Remove the ``log.csv`` rows of steps after ``step``: a run resuming from a checkpoint of
        ``step`` logs those steps again (and a run started afresh, at step 0, drops them all)."""
        if not self.is_main or not self._csv_path.is_file():
            return
        with self._csv_path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            fields = list(reader.fieldnames or [])
        kept = [row for row in rows if (logged := _logged_step(row)) is not None and logged <= step]
        if len(kept) < len(rows):
            self._rewrite_log(fields, kept)

    def _log_row(self, row: dict[str, float]) -> None:
        if not self.is_main:
            return
        self.config.out_dir.mkdir(parents=True, exist_ok=True)
        existing_fields: list[str] = []
        if self._csv_path.exists():
            with self._csv_path.open(newline="") as handle:
                existing_fields = next(csv.reader(handle), [])
        fields = existing_fields + [k for k in row if k not in existing_fields]
        if fields != existing_fields and existing_fields:
            with self._csv_path.open(newline="") as handle:
                old_rows = list(csv.DictReader(handle))
            self._rewrite_log(fields, old_rows)
        with self._csv_path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            if not existing_fields:
                writer.writeheader()
            writer.writerow(row)
        if self._tb_writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb_writer.add_scalar(key, value, row["step"])

    def _evaluate(self) -> dict[str, float]:
        if self.evaluate_fn is None:
            return {}
        metrics: dict[str, float] = {}
        if self.is_main:
            for model in self.raw_models.values():
                model.eval()
            with torch.no_grad():
                metrics = {k: float(v) for k, v in self.evaluate_fn(self.model_argument(wrapped=False)).items()}
            for model in self.raw_models.values():
                model.train()
        if self.distributed.enabled:
            dist.barrier()
        return metrics

    def _improved(self, value: float) -> bool:
        if self.best_value is None or not math.isfinite(self.best_value):
            return math.isfinite(value)
        return value > self.best_value if self.config.best_mode == "max" else value < self.best_value

    def _evaluate_and_checkpoint(self, final: bool) -> None:
        metrics = self._evaluate()
        if metrics:
            self.history.append({"step": float(self.step), **metrics})
            self._log_row({"step": self.step, **{f"eval/{k}": v for k, v in metrics.items()}})
        metric_name = self.config.best_metric
        if metric_name is not None and metrics:
            if metric_name not in metrics:
                raise KeyError(f"best_metric {metric_name!r} not among evaluated metrics {sorted(metrics)}")
            if self._improved(metrics[metric_name]):
                self.best_value = metrics[metric_name]
                self.save(BEST_CHECKPOINT)
        self.save(LAST_CHECKPOINT)
        if final and metric_name is None:
            self.save(BEST_CHECKPOINT)

    # ----------------------------------------------------------------- graceful stop
    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """While in the block, SIGTERM / SIGINT only ask the loop to stop (``_stop_signal``).

        Installed in the main thread only (the only one Python delivers signals to); a signal
        that is ignored (``SIG_IGN``, e.g. SIGINT of a background job) or whose handler was not
        installed from Python is left alone. The first signal puts the previous handler back, so
        a second one acts as it would without ``fit`` (SIGINT: ``KeyboardInterrupt``, SIGTERM:
        termination). The previous handlers are restored when the block ends. DataLoader workers
        ignore the handled signals (see :func:`_ignore_signals_in_worker`)."""
        self._stop_signal = None
        previous: dict[int, Any] = {}

        def request_stop(signum: int, frame: Any) -> None:
            self._stop_signal = signum
            signal.signal(signum, previous[signum])

        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                handler = signal.getsignal(signum)
                if handler is not None and handler is not signal.SIG_IGN:
                    previous[signum] = handler
                    signal.signal(signum, request_stop)
        self._handled_signals = tuple(previous)
        try:
            yield
        finally:
            self._handled_signals = ()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _agreed_stop_signal(self) -> int:
        """The signal asking this run to stop, 0 if none. Under DDP the largest over all ranks
        (one tiny all-reduce per step), so that every rank stops after the same step."""
        signum = self._stop_signal or 0
        if self.distributed.enabled:
            flag = torch.tensor([signum], device=self.device)  # NCCL reduces device tensors only
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            signum = int(flag.item())
        return signum

    def _stop_for_signal(self, signum: int, after_last_step: bool = False) -> NoReturn:
        """Write ``last.pt`` (unless it already holds this step) and raise
        :class:`TrainingInterrupted`; during training under DDP after every rank knows the file
        is written (after the last step, ``last.pt`` is already written by the final evaluation)."""
        if self._last_saved_step != self.step:
            self.save(LAST_CHECKPOINT)
        if self.distributed.enabled and not after_last_step:
            dist.barrier()
        raise TrainingInterrupted(signal.Signals(signum).name, self.step, self.config.max_steps,
                                  self.config.out_dir / LAST_CHECKPOINT)

    # ----------------------------------------------------------------- the loop
    def _train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        if self.step_fn is not None:
            return self.step_fn(self, batch)
        with self.autocast():
            loss, logs = self.loss_fn(self.model_argument(), batch)  # type: ignore[misc]
        self.backward_and_step(loss)
        return {"loss": float(loss.detach()), **logs}

    def fit(self, resume: bool = True) -> TrainResult:
        """Train to ``config.max_steps``; resume from ``out_dir/last.pt`` when present.

        ``log.csv`` keeps only the rows up to the step training starts from, so a resumed run
        logs no step twice; re-running a finished run neither evaluates nor logs again.

        On SIGTERM or SIGINT (when called from the main thread) the current step is finished,
        ``last.pt`` written and :class:`TrainingInterrupted` raised, which ends a command-line
        run with status 1 and one line naming the step and the checkpoint; a signal during the
        final evaluation stops the run after it. The previous signal handlers are restored when
        ``fit`` returns or raises."""
        with self._stop_on_signals():
            return self._fit(resume)

    def _fit(self, resume: bool) -> TrainResult:
        config = self.config
        last_path = config.out_dir / LAST_CHECKPOINT
        if resume and last_path.is_file():
            self.load_state_dict(load_checkpoint(last_path, map_location=self.device))
            log.info("resumed %s at step %d", last_path, self.step)
        self._drop_log_rows_after(self.step)
        if self.is_main:
            config.out_dir.mkdir(parents=True, exist_ok=True)
            if config.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self._tb_writer = SummaryWriter(str(config.out_dir / "tb"), purge_step=self.step)
        steps_per_epoch = self.steps_per_epoch()
        progress = tqdm(total=config.max_steps, initial=self.step, disable=not (config.progress and self.is_main),
                        desc=config.out_dir.name, dynamic_ncols=True)
        for model in self.raw_models.values():
            model.train()
        timed_samples, timed_seconds = 0, 0.0
        window_logs: dict[str, list[float]] = {}
        try:
            while self.step < config.max_steps:
                epoch, batches_done = divmod(self.step, steps_per_epoch)
                if hasattr(self.train_dataset, "set_epoch"):  # e.g. per-epoch oversampling
                    self.train_dataset.set_epoch(epoch)
                step_start = time.perf_counter()
                for batch in self._loader(epoch, batches_done):
                    logs = self._train_step(self._to_device(batch)) if batch is not None else {}
                    for scheduler in self.schedulers.values():
                        scheduler.step()
                    self.step += 1
                    if self.step % config.log_every == 0:
                        synchronize(self.device)
                    step_seconds = time.perf_counter() - step_start
                    if self.step > 1:  # the first step (allocation, compilation) is warm-up
                        timed_samples += _batch_size(batch)
                        timed_seconds += step_seconds
                    for key, value in logs.items():
                        window_logs.setdefault(key, []).append(float(value))
                    progress.update(1)
                    if self.step % config.log_every == 0 or self.step == config.max_steps:
                        row = {"step": self.step, "epoch": epoch,
                               "lr": next(iter(self.optimizers.values())).param_groups[0]["lr"],
                               **{f"train/{k}": float(np.mean(v)) for k, v in window_logs.items()}}
                        if timed_seconds > 0:
                            row["samples_per_second"] = timed_samples / timed_seconds * self.distributed.world_size
                        self._log_row(row)
                        progress.set_postfix({k: f"{np.mean(v):.4g}" for k, v in window_logs.items()})
                        window_logs = {}
                    at_end = self.step >= config.max_steps
                    if config.eval_every and self.step % config.eval_every == 0 and not at_end:
                        self._evaluate_and_checkpoint(final=False)
                    elif config.checkpoint_every and self.step % config.checkpoint_every == 0 and not at_end:
                        self.save(LAST_CHECKPOINT)
                    if at_end:
                        break
                    stop_signal = self._agreed_stop_signal()
                    if stop_signal:
                        self._stop_for_signal(stop_signal)
                    step_start = time.perf_counter()
            evaluated_at_this_step = bool(self.history) and self.history[-1]["step"] == self.step
            if not evaluated_at_this_step:  # it was when a finished run is resumed
                self._evaluate_and_checkpoint(final=True)
            # A signal during the final evaluation: the run is complete and last.pt written, but
            # the caller must not go on (e.g. to the next grid point). Checked per rank, with no
            # collective after the last one of the run (a trailing all-reduce made gloo ranks
            # abort at exit in about 1 of 12 two-rank runs).
            if self._stop_signal:
                self._stop_for_signal(self._stop_signal, after_last_step=True)
        finally:
            progress.close()
            if self._tb_writer is not None:
                self._tb_writer.close()
                self._tb_writer = None
        return TrainResult(step=self.step, best_value=self.best_value, history=self.history,
                           out_dir=config.out_dir,
                           samples_per_second=(timed_samples / timed_seconds * self.distributed.world_size)
                           if timed_seconds > 0 else None)


def _ignore_signals_in_worker(signals: tuple[int, ...], worker_id: int) -> None:
    """``worker_init_fn`` of the training loader: the worker ignores ``signals`` (those ``fit``
    handles). A scheduler's cancel (SLURM signals every process of the job) or Ctrl-C reaches the
    workers too; by default a worker would die of it and the main process fail mid-step with
    "DataLoader worker is killed", instead of finishing the step. Workers still exit when the
    loader shuts them down or the main process dies."""
    for signum in signals:
        signal.signal(signum, signal.SIG_IGN)


def _logged_step(row: dict[str, str]) -> float | None:
    """The step of a ``log.csv`` row; ``None`` where it cannot be read (a row cut short by a
    killed process)."""
    try:
        return float(row["step"])
    except (TypeError, ValueError):
        return None


def _batch_size(batch: Any) -> int:
    if isinstance(batch, Mapping):
        batch = batch.get("image", next(iter(batch.values())))
    if isinstance(batch, (list, tuple)):
        batch = batch[0]
    return int(batch.shape[0]) if isinstance(batch, torch.Tensor) else 0


def load_trained_models(path: str | Path, models: nn.Module | Mapping[str, nn.Module]) -> dict[str, Any]:
    """Load the model weights of a Trainer checkpoint into ``models``; returns the checkpoint."""
    state = load_checkpoint(path)
    for name, model in _as_dict(models, "model").items():
        model.load_state_dict(state["models"][name])
    return state


@torch.no_grad()
def predict(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    output_fn: Callable[[nn.Module, dict[str, Any]], torch.Tensor] | None = None,
    num_workers: int = 0,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Run ``model`` over ``dataset`` in order (eval mode, no grad); returns ``"outputs"`` (what
    ``output_fn(model, batch)`` gives, default ``model(batch["image"])``) and every tensor field of
    the batches (``"attributes"``, ``"index"``, ...) stacked as numpy arrays."""
    device = select_device(device or "auto") if not isinstance(device, torch.device) else device
    was_training = model.training
    model.eval().to(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate_skip_corrupt)
    collected: dict[str, list[np.ndarray]] = {}
    for batch in tqdm(loader, disable=not progress, desc="predict"):
        if batch is None:
            continue
        batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        outputs = output_fn(model, batch) if output_fn is not None else model(batch["image"])
        collected.setdefault("outputs", []).append(outputs.float().cpu().numpy())
        for key, value in batch.items():
            if isinstance(value, torch.Tensor) and key != "image":
                collected.setdefault(key, []).append(value.cpu().numpy())
    model.train(was_training)
    return {key: np.concatenate(parts) for key, parts in collected.items()}


# --------------------------------------------------------------------------- bf16 on CPU
#: ``/proc/cpuinfo`` flags of bf16 arithmetic in hardware on x86: AVX512_BF16 (bf16 dot products;
#: Cooper Lake, Sapphire Rapids, AMD Zen 4 and later) and AMX-BF16 (tile matrix multiplies;
#: Sapphire Rapids and later). Without one of them oneDNN emulates bf16 convolutions and matmuls
#: (converting to and from fp32), which adds work instead of saving it.
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")

#: :func:`calibrate_bf16` chooses bf16 only when its train step is more than this many times as
#: fast as fp32. bf16 autocast rounds activations and matmul inputs to 8 mantissa bits, so it has
#: to pay for itself, and a few timed steps on a shared machine vary by some percent; where bf16
#: helps it helps by far more (1.9-2.2x on DenseNet121 / ResNet50, ``shared/FINDINGS.md``), and
#: where it hurts (0.82x, the SSP basic net) it is far below.
BF16_MIN_SPEEDUP = 1.10


def _read_cpuinfo() -> str | None:
    """The text of ``/proc/cpuinfo``; ``None`` where there is none (not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


def _cpuinfo_field(cpuinfo: str, key: str) -> str | None:
    """The value of the first ``key : value`` line (the first core's; the cores agree)."""
    for line in cpuinfo.splitlines():
        name, separator, value = line.partition(":")
        if separator and name.strip() == key:
            return value.strip()
    return None


def cpu_has_native_bf16() -> bool:
    """Whether this CPU does bf16 arithmetic in hardware (:data:`NATIVE_BF16_CPU_FLAGS`), the
    condition for bf16 autocast to be worth timing at all. Read from ``/proc/cpuinfo``'s flags;
    where there is none (not Linux), from torch's own query of AVX512_BF16, which every AMX-BF16
    CPU also has (``torch.cpu._is_avx512_bf16_supported``, private in torch 2.14; the public
    ``torch.backends.cpu.get_cpu_capability()`` says ``"AVX512"`` with or without BF16)."""
    cpuinfo = _read_cpuinfo()
    if cpuinfo is None:
        return bool(torch.cpu._is_avx512_bf16_supported())
    flags = set((_cpuinfo_field(cpuinfo, "flags") or "").split())
    return any(flag in flags for flag in NATIVE_BF16_CPU_FLAGS)


def cpu_description() -> str:
    """The CPU model, its vector / bf16 extensions, cores and torch threads: where a calibration
    was measured (a rate means little without them)."""
    cpuinfo = _read_cpuinfo()
    model = platform.processor() or platform.machine()
    if cpuinfo is None:
        extensions = "extensions unknown"
    else:
        model = _cpuinfo_field(cpuinfo, "model name") or model
        flags = set((_cpuinfo_field(cpuinfo, "flags") or "").split())
        extensions = ", ".join(f for f in ("avx2", "avx512f", *NATIVE_BF16_CPU_FLAGS) if f in flags) or "no AVX2"
    return f"{model} ({extensions}), {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


@dataclass(frozen=True)
class Bf16Calibration:
    """What :func:`calibrate_bf16` measured and decided; ``dataclasses.asdict`` of it is what a
    run records in ``run.json``. The rates and the speedup are ``None`` when nothing was timed
    (no native bf16)."""

    use_bf16: bool
    reason: str
    cpu: str
    native_bf16: bool
    fp32_images_per_second: float | None
    bf16_images_per_second: float | None
    bf16_speedup: float | None       # bf16 / fp32 images per second
    min_speedup: float
    batch_size: int
    steps: int
    warmup_steps: int
    channels_last: bool


def calibrate_bf16(
    make_model: Callable[[], nn.Module],
    make_batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor],
    steps: int = 3,
    warmup_steps: int = 1,
    channels_last: bool = True,
    *,
    batch_size: int,
    min_speedup: float = BF16_MIN_SPEEDUP,
) -> Bf16Calibration:
    """Decide bf16 autocast for training this network on this CPU by timing it (see
    :class:`Trainer` for how a package uses it).

    On a CPU without native bf16 it returns "off" at once, timing nothing: there oneDNN converts
    bf16 to fp32 and back, which is not expected to be faster (``shared/FINDINGS.md``), and
    timing would only delay the run. Otherwise one ``make_model()`` and one
    ``make_batch(batch_size)`` -> ``(inputs, targets)`` are trained ``warmup_steps`` + ``steps``
    steps (forward, ``loss_fn(outputs, targets)``, backward, AdamW) in fp32 and then under bf16
    autocast, both in channels_last when ``channels_last`` (so that the ratio is bf16's alone), with
    :func:`common.gpu.measure_training_throughput`; bf16 is chosen when it is more than
    ``min_speedup`` times as fast. ``make_model`` should build a throwaway copy: the timed steps
    change its weights. torch's CPU random state is the same afterwards as before, so calibrating
    does not change the run that follows."""
    settings = dict(cpu=cpu_description(), min_speedup=min_speedup, batch_size=batch_size, steps=steps,
                    warmup_steps=warmup_steps, channels_last=channels_last)
    if not cpu_has_native_bf16():
        return Bf16Calibration(
            use_bf16=False, reason=f"no native bf16 on this CPU ({' / '.join(NATIVE_BF16_CPU_FLAGS)}): "
            "autocast would emulate it; not timed", native_bf16=False, fp32_images_per_second=None,
            bf16_images_per_second=None, bf16_speedup=None, **settings)
    with torch.random.fork_rng(devices=[]):
        model = make_model()
        batch = make_batch(batch_size)

        def images_per_second(bf16: bool) -> float:
            return measure_training_throughput(
                model, lambda _size: batch, loss_fn, batch_size=batch_size, steps=steps,
                warmup_steps=warmup_steps, device="cpu", bf16=bf16, channels_last=channels_last,
            ).images_per_second

        fp32_rate = images_per_second(bf16=False)
        bf16_rate = images_per_second(bf16=True)
    speedup = bf16_rate / fp32_rate
    use_bf16 = speedup > min_speedup
    return Bf16Calibration(
        use_bf16=use_bf16,
        reason=f"bf16 step {speedup:.2f}x fp32 ({'>' if use_bf16 else '<='} {min_speedup:.2f})",
        native_bf16=True, fp32_images_per_second=fp32_rate, bf16_images_per_second=bf16_rate,
        bf16_speedup=speedup, **settings)


#: The values of a package's ``--bf16`` switch (:func:`decide_bf16`).
BF16_MODES = ("off", "on", "auto")


def decide_bf16(
    mode: str,
    record_path: str | os.PathLike,
    device: torch.device,
    make_model: Callable[[], nn.Module],
    make_batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor],
    *,
    batch_size: int,
    channels_last: bool = True,
) -> dict[str, Any]:
    """A package's ``--bf16 off|on|auto`` switch, decided once per training folder.

    "on" / "off" are taken as given. "auto" asks CUDA whether it has native bf16, or times the
    network on this CPU with :func:`calibrate_bf16` (``make_model`` builds a throwaway copy), and
    writes the decision to ``record_path`` (JSON, atomically); a later call with the file present
    (a resumed run, perhaps on another CPU) reads it instead of timing again, so a run never
    changes precision half-way. Returns the record: ``{"use_bf16": bool, "reason": str, ...}``
    (``dataclasses.asdict`` of the calibration when timed)."""
    if mode not in BF16_MODES:
        raise ValueError(f"bf16 must be one of {BF16_MODES}, got {mode!r}")
    if mode != "auto":
        return {"use_bf16": mode == "on", "reason": f"--bf16 {mode}"}
    record_path = Path(record_path)
    if record_path.is_file():
        return json.loads(record_path.read_text(encoding="utf-8"))
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported(including_emulation=False)
        record = {"use_bf16": supported, "reason": f"CUDA native bf16: {supported}"}
    else:
        record = dataclasses.asdict(calibrate_bf16(make_model, make_batch, loss_fn, batch_size=batch_size,
                                                   channels_last=channels_last))
    text = json.dumps(record, indent=1) + "\n"
    write_atomically(record_path, lambda temp_path: temp_path.write_text(text, encoding="utf-8"))
    log.info("bf16 %s (%s); decision kept in %s", "on" if record["use_bf16"] else "off",
                record["reason"], record_path)
    return record
