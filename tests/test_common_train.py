"""common.train / common.checkpoint: exact resume, DDP on gloo, NaN stop, atomic weights-only checkpoints."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from common.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from common.gpu import measure_training_throughput
from common.train import NonFiniteLossError, TrainConfig, Trainer, load_trained_models, predict

REPO_ROOT = Path(__file__).resolve().parents[1]


class NoisyBlobs(Dataset):
    """Tiny image dataset whose samples are augmented with the global torch RNG (like RandAugment)."""

    def __init__(self, n: int = 40):
        generator = torch.Generator().manual_seed(1)
        self.images = torch.rand(n, 3, 8, 8, generator=generator)
        self.attributes = (self.images.mean(dim=(1, 2, 3), keepdim=False) > 0.5).float().unsqueeze(1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        jitter = 0.05 * torch.randn(3, 8, 8)  # consumes the global RNG: resume must restore it
        return {"image": self.images[index] + jitter, "attributes": self.attributes[index], "index": index}


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Dropout(0.3), nn.Flatten(), nn.Linear(4 * 36, 1))


def bce_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    logits = model(batch["image"])
    loss = nn.functional.binary_cross_entropy_with_logits(logits, batch["attributes"])
    return loss, {}


def make_trainer(out_dir: Path, max_steps: int, loss_fn=bce_loss, **config_overrides) -> Trainer:
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    dataset = NoisyBlobs()

    def evaluate(trained: nn.Module) -> dict[str, float]:
        outputs = predict(trained, dataset, batch_size=16)
        accuracy = ((outputs["outputs"] > 0) == (outputs["attributes"] > 0.5)).mean()
        return {"accuracy": float(accuracy)}

    config = TrainConfig(out_dir=out_dir, max_steps=max_steps, log_every=2, eval_every=4,
                         checkpoint_every=3, progress=False, best_metric="accuracy", **config_overrides)
    return Trainer(model, optimizer, dataset, config, batch_size=8, loss_fn=loss_fn,
                   schedulers=scheduler, evaluate_fn=evaluate)


def final_weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.raw_models["model"].state_dict().items()}


class Interrupted(RuntimeError):
    pass


def test_resume_mid_epoch_matches_uninterrupted_run(tmp_path):
    # 40 samples / batch 8 = 5 steps per epoch; 13 steps cross two epoch boundaries.
    uninterrupted = make_trainer(tmp_path / "full", max_steps=13)
    uninterrupted.fit()

    calls = {"n": 0}

    def crashing_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 8:  # dies inside epoch 2, after the checkpoint of step 6
            raise Interrupted("simulated kill")
        return bce_loss(model, batch)

    with pytest.raises(Interrupted):
        make_trainer(tmp_path / "resumed", max_steps=13, loss_fn=crashing_loss).fit()
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["step"] == 6

    torch.manual_seed(12345)  # a fresh process would have arbitrary global RNG state
    resumed = make_trainer(tmp_path / "resumed", max_steps=13)
    result = resumed.fit(resume=True)
    assert result.step == 13
    expected, got = final_weights(uninterrupted), final_weights(resumed)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)
    assert resumed.history == uninterrupted.history


def test_checkpoint_contents_and_weights_only(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=5)
    trainer.fit()
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert set(state) >= {"step", "models", "optimizers", "schedulers", "scaler", "rng", "best_value"}
    assert state["step"] == 5
    assert (tmp_path / "best.pt").is_file()
    assert (tmp_path / "log.csv").read_text().splitlines()[0].startswith("step")
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())
    # The best checkpoint loads into a fresh model.
    fresh = make_model()
    load_trained_models(tmp_path / "best.pt", fresh)
    assert not list(tmp_path.glob(".*.tmp-*"))


def test_save_checkpoint_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1})

    def broken_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert list(tmp_path.iterdir()) == [path]


def test_rng_state_round_trip():
    state = capture_rng_state()
    expected = (np.random.rand(), torch.rand(1).item())
    np.random.rand(5), torch.rand(5)
    restore_rng_state(state)
    assert (np.random.rand(), torch.rand(1).item()) == expected


def test_non_finite_loss_stops_with_step_number(tmp_path):
    def nan_after_three(model, batch, calls={"n": 0}):
        calls["n"] += 1
        loss, logs = bce_loss(model, batch)
        return (loss * float("nan") if calls["n"] == 3 else loss), logs

    with pytest.raises(NonFiniteLossError, match="step 3"):
        make_trainer(tmp_path, max_steps=6, loss_fn=nan_after_three).fit()


def test_step_fn_with_two_optimizers(tmp_path):
    generator, critic = nn.Linear(4, 4), nn.Linear(4, 1)
    optimizers = {"g": torch.optim.SGD(generator.parameters(), lr=0.1),
                  "d": torch.optim.SGD(critic.parameters(), lr=0.1)}

    class Vectors(Dataset):
        def __len__(self):
            return 16

        def __getitem__(self, index):
            return {"x": torch.full((4,), float(index))}

    def step(trainer: Trainer, batch: dict) -> dict[str, float]:
        with trainer.autocast():
            d_loss = trainer.models["d"](batch["x"]).pow(2).mean()
        trainer.backward_and_step(d_loss, "d")
        with trainer.autocast():
            g_loss = trainer.models["d"](trainer.models["g"](batch["x"])).mean()
        trainer.backward_and_step(g_loss, "g")
        return {"d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach())}

    config = TrainConfig(out_dir=tmp_path, max_steps=4, log_every=1, progress=False, tensorboard=False)
    result = Trainer({"g": generator, "d": critic}, optimizers, Vectors(), config, batch_size=4,
                     step_fn=step).fit()
    assert result.step == 4
    state = load_checkpoint(tmp_path / "last.pt")
    assert set(state["models"]) == {"g", "d"} and set(state["optimizers"]) == {"g", "d"}


def test_bf16_channels_last_switches_run_on_cpu(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=3, bf16=True, channels_last=True)
    result = trainer.fit()
    assert result.step == 3 and result.samples_per_second and result.samples_per_second > 0


DDP_SCRIPT = textwrap.dedent("""
    import sys, torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from common.train import Trainer, TrainConfig

    class Pairs(torch.utils.data.Dataset):
        def __init__(self):
            g = torch.Generator().manual_seed(0)
            self.x = torch.randn(32, 6, generator=g)
            self.y = (self.x.sum(1, keepdim=True) > 0).float()
        def __len__(self): return 32
        def __getitem__(self, i): return {"x": self.x[i], "y": self.y[i]}

    torch.manual_seed(0)
    model = nn.Linear(6, 1)
    def loss_fn(m, b):
        return nn.functional.binary_cross_entropy_with_logits(m(b["x"]), b["y"]), {}
    out = sys.argv[1]
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.5), Pairs(),
                      TrainConfig(out_dir=out, max_steps=6, log_every=2, progress=False, tensorboard=False),
                      batch_size=4, loss_fn=loss_fn)
    trainer.fit()
    rank = trainer.distributed.rank
    torch.save(model.state_dict(), f"{out}/weights_rank{rank}.pt")
""")


def test_ddp_gloo_two_processes(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
         str(script), str(tmp_path / "run")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-4000:]
    rank0 = torch.load(tmp_path / "run" / "weights_rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "run" / "weights_rank1.pt", weights_only=True)
    for name in rank0:  # DDP keeps replicas identical
        torch.testing.assert_close(rank0[name], rank1[name])
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["step"] == 6
    # Each rank saw half of each epoch: 32 samples / (2 ranks x 4) = 4 steps per epoch.
    log_lines = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(log_lines) == 1 + 3  # header + rows at steps 2, 4, 6, written by rank 0 only


def test_measure_training_throughput_reports_positive_rate():
    result = measure_training_throughput(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 14 * 14, 2)),
        make_batch=lambda n: (torch.randn(n, 3, 16, 16), torch.rand(n, 2)),
        loss_fn=nn.functional.binary_cross_entropy_with_logits,
        batch_size=4, steps=3, warmup_steps=1, device="cpu", channels_last=True)
    assert result.images_per_second > 0 and result.steps_timed == 3


# --------------------------------------------------------------------------- log.csv across resumes


def logged_rows(out_dir: Path) -> list[tuple[str, str]]:
    """(step, eval/accuracy) of every ``log.csv`` row, in file order."""
    import csv

    with (out_dir / "log.csv").open(newline="") as handle:
        return [(row["step"], row.get("eval/accuracy", "")) for row in csv.DictReader(handle)]


def test_resume_drops_log_rows_written_after_the_checkpoint(tmp_path):
    uninterrupted = make_trainer(tmp_path / "full", max_steps=13, tensorboard=False)
    uninterrupted.fit()

    calls = {"n": 0}

    def crashing_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 11:  # dies after logging step 10, whose last checkpoint is step 9
            raise Interrupted("simulated kill")
        return bce_loss(model, batch)

    with pytest.raises(Interrupted):
        make_trainer(tmp_path / "resumed", max_steps=13, loss_fn=crashing_loss, tensorboard=False).fit()
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["step"] == 9
    assert logged_rows(tmp_path / "resumed")[-1] == ("10", "")

    make_trainer(tmp_path / "resumed", max_steps=13, tensorboard=False).fit()
    assert logged_rows(tmp_path / "resumed") == logged_rows(tmp_path / "full")


def test_rerunning_a_finished_fit_neither_evaluates_nor_logs_again(tmp_path):
    first = make_trainer(tmp_path, max_steps=5, tensorboard=False).fit()
    log_text = (tmp_path / "log.csv").read_text()
    again = make_trainer(tmp_path, max_steps=5, tensorboard=False).fit()
    assert (tmp_path / "log.csv").read_text() == log_text
    assert again.history == first.history and again.step == 5


def test_log_csv_rewrite_for_a_new_column_is_atomic(tmp_path, monkeypatch):
    def failing_writerows(writer, rows):
        raise OSError("disk full")

    monkeypatch.setattr("csv.DictWriter.writerows", failing_writerows)
    # Rows of steps 2 and 4 are logged; the final evaluation adds the eval/accuracy column,
    # which rewrites the file, and that write fails.
    with pytest.raises(OSError, match="disk full"):
        make_trainer(tmp_path, max_steps=4, tensorboard=False).fit()
    monkeypatch.undo()
    assert logged_rows(tmp_path) == [("2", ""), ("4", "")]
    assert not list(tmp_path.glob(".log.csv.tmp-*"))


# --------------------------------------------------------------------------- DataLoader workers


def make_trainer_with_workers(out_dir: Path, max_steps: int, num_workers: int,
                              loss_fn=bce_loss) -> Trainer:
    trainer = make_trainer(out_dir, max_steps, loss_fn=loss_fn, tensorboard=False)
    trainer.num_workers = num_workers
    return trainer


def test_resume_mid_epoch_with_workers_matches_uninterrupted_run(tmp_path):
    uninterrupted = make_trainer_with_workers(tmp_path / "full", max_steps=13, num_workers=2)
    uninterrupted.fit()

    calls = {"n": 0}

    def crashing_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 8:  # resumes at the second batch of epoch 1: another worker reads it
            raise Interrupted("simulated kill")
        return bce_loss(model, batch)

    with pytest.raises(Interrupted):
        make_trainer_with_workers(tmp_path / "resumed", max_steps=13, num_workers=2,
                                  loss_fn=crashing_loss).fit()
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["step"] == 6

    torch.manual_seed(12345)
    resumed = make_trainer_with_workers(tmp_path / "resumed", max_steps=13, num_workers=2)
    assert resumed.fit().step == 13
    expected, got = final_weights(uninterrupted), final_weights(resumed)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)


def test_weights_do_not_depend_on_the_number_of_workers(tmp_path):
    one = make_trainer_with_workers(tmp_path / "one", max_steps=7, num_workers=1)
    one.fit()
    two = make_trainer_with_workers(tmp_path / "two", max_steps=7, num_workers=2)
    two.fit()
    expected, got = final_weights(one), final_weights(two)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)
