"""common.train: SIGTERM / SIGINT finish the step, write last.pt and stop with one line; the
resumed run is exactly the uninterrupted one; signal handlers are restored; DDP ranks agree."""
from __future__ import annotations

import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from common.checkpoint import load_checkpoint
from common.train import STOP_SIGNALS, TrainConfig, Trainer, TrainingInterrupted

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
#: Lets a subprocess import this module (for ``build_trainer``) and the repository's packages.
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(TESTS_DIR)]),
                  "OMP_NUM_THREADS": "1"}


class JitteredVectors(Dataset):
    """24 labelled vectors, jittered with the global torch RNG (which a resume must restore)."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(1)
        self.x = torch.randn(24, 6, generator=generator)
        self.y = (self.x.sum(dim=1, keepdim=True) > 0).float()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict:
        return {"x": self.x[index] + 0.05 * torch.randn(6), "y": self.y[index]}


def build_trainer(out_dir: str | Path, max_steps: int, step_seconds: float = 0.0,
                  on_step: Callable[[int], None] | None = None, num_workers: int = 0) -> Trainer:
    """A small dropout MLP logging every step and checkpointing every 5 steps; ``on_step(n)`` is
    called inside the n-th step of this process (before its backward pass)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 1))
    calls = {"n": 0}

    def loss_fn(network: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        calls["n"] += 1
        if on_step is not None:
            on_step(calls["n"])
        time.sleep(step_seconds)
        return nn.functional.binary_cross_entropy_with_logits(network(batch["x"]), batch["y"]), {}

    config = TrainConfig(out_dir=out_dir, max_steps=max_steps, log_every=1, checkpoint_every=5,
                         progress=False, tensorboard=False)
    return Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), JitteredVectors(), config,
                   batch_size=4, loss_fn=loss_fn, num_workers=num_workers)


def assert_same_weights(got: Trainer, expected: Trainer) -> None:
    expected_state = expected.raw_models["model"].state_dict()
    for name, value in got.raw_models["model"].state_dict().items():
        torch.testing.assert_close(value, expected_state[name], rtol=0, atol=0)


def last_logged_step(out_dir: Path) -> int:
    """The step of the last complete ``log.csv`` row (0 before the first)."""
    path = out_dir / "log.csv"
    lines = path.read_text().split("\n")[1:-1] if path.is_file() else []  # complete lines only
    return int(lines[-1].split(",")[0]) if lines else 0


@pytest.fixture
def recording_handler():
    """A Python handler for SIGTERM and SIGINT that records what reaches it: it stands for the
    handler a caller had before ``fit``, and keeps a stray signal from ending the test session."""
    received: list[int] = []

    def record(signum, frame):
        received.append(signum)

    originals = {signum: signal.signal(signum, record) for signum in STOP_SIGNALS}
    yield record, received
    for signum, handler in originals.items():
        signal.signal(signum, handler)


def test_sigterm_stops_after_the_step_with_checkpoint_and_one_line(tmp_path):
    # Two DataLoader workers, and SIGTERM to the whole process group, as a cluster scheduler
    # cancelling a job sends it: the workers must not die of it before the step is finished.
    max_steps, out_dir = 40, tmp_path / "interrupted"
    command = [sys.executable, "-c",
               "import sys; from test_common_train_interrupt import build_trainer; "
               f"build_trainer(sys.argv[1], max_steps={max_steps}, step_seconds=0.1, num_workers=2).fit()",
               str(out_dir)]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=SUBPROCESS_ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while last_logged_step(out_dir) < 3:
            assert process.poll() is None, process.communicate()[1][-4000:]
            assert time.monotonic() < deadline, "the training subprocess logged no steps"
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()

    assert process.returncode == 1, stderr[-4000:]
    assert "Traceback" not in stderr, stderr[-4000:]
    message = re.fullmatch(rf"SIGTERM: training stopped at step (\d+) of {max_steps}; checkpoint (.+) "
                           r"holds step \1; run the same command again to resume", stderr.strip().splitlines()[-1])
    assert message, stderr[-4000:]
    step = int(message[1])
    assert Path(message[2]) == out_dir / "last.pt"
    assert 3 <= step < max_steps
    # last.pt holds the step reached (the periodic checkpoints are at multiples of 5) ...
    assert load_checkpoint(out_dir / "last.pt")["step"] == step == last_logged_step(out_dir)

    # ... and resuming from it gives exactly the uninterrupted run.
    resumed = build_trainer(out_dir, max_steps, num_workers=2)
    assert resumed.fit().step == max_steps
    uninterrupted = build_trainer(tmp_path / "uninterrupted", max_steps, num_workers=2)
    uninterrupted.fit()
    assert_same_weights(resumed, uninterrupted)


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda signum: signal.Signals(signum).name)
def test_signal_raises_training_interrupted_and_restores_handlers(tmp_path, recording_handler, signum):
    record, received = recording_handler

    def signal_in_step_3(call: int) -> None:
        if call == 3:
            signal.raise_signal(signum)

    with pytest.raises(TrainingInterrupted) as stopped:
        build_trainer(tmp_path, max_steps=20, on_step=signal_in_step_3).fit()
    interrupted = stopped.value
    assert received == []  # fit took it
    assert all(signal.getsignal(each) is record for each in STOP_SIGNALS)
    assert (interrupted.signal_name, interrupted.step, interrupted.checkpoint) == (
        signal.Signals(signum).name, 3, tmp_path / "last.pt")
    assert interrupted.code == str(interrupted) and "\n" not in str(interrupted)  # SystemExit's message
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3
    unpickled = pickle.loads(pickle.dumps(interrupted))  # e.g. from a process-pool worker
    assert (type(unpickled), unpickled.step, str(unpickled)) == (TrainingInterrupted, 3, str(interrupted))


def test_second_signal_goes_to_the_previous_handler(tmp_path, recording_handler):
    record, received = recording_handler

    def two_signals_in_step_2(call: int) -> None:
        if call == 2:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(TrainingInterrupted, match="SIGINT: training stopped at step 2 of 20"):
        build_trainer(tmp_path, max_steps=20, on_step=two_signals_in_step_2).fit()
    assert received == [signal.SIGINT]


def test_ignored_signal_stays_ignored(tmp_path):
    original = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        def signal_in_step_2(call: int) -> None:
            if call == 2:
                signal.raise_signal(signal.SIGINT)

        assert build_trainer(tmp_path, max_steps=4, on_step=signal_in_step_2).fit().step == 4
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, original)


def test_fit_outside_the_main_thread_leaves_signals_to_the_process(tmp_path, recording_handler):
    record, received = recording_handler
    outcome: dict[str, object] = {}

    def signal_in_step_2(call: int) -> None:
        if call == 2:
            signal.raise_signal(signal.SIGTERM)

    def train() -> None:
        try:
            outcome["step"] = build_trainer(tmp_path, max_steps=4, on_step=signal_in_step_2).fit().step
        except BaseException as error:  # noqa: BLE001 -- reported by the assertion below
            outcome["error"] = error

    thread = threading.Thread(target=train)
    thread.start()
    thread.join(timeout=120)
    assert outcome == {"step": 4}
    assert received == [signal.SIGTERM]  # handled by the main thread's own handler
    assert all(signal.getsignal(each) is record for each in STOP_SIGNALS)


DDP_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from test_common_train_interrupt import build_trainer

    rank = int(os.environ["RANK"])

    def sigterm_to_rank_1_in_step_3(call):
        if rank == 1 and call == 3:
            signal.raise_signal(signal.SIGTERM)

    build_trainer(sys.argv[1], max_steps=12, on_step=sigterm_to_rank_1_in_step_3).fit()
""")


def test_ddp_ranks_stop_after_the_same_step(tmp_path):
    script = tmp_path / "ddp_interrupt.py"
    script.write_text(DDP_SCRIPT)
    out_dir = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(out_dir)],
        cwd=REPO_ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert completed.returncode != 0
    # Only rank 1 got the signal; rank 0 stopped after the same step and wrote the checkpoint.
    assert completed.stderr.count("SIGTERM: training stopped at step 3 of 12") == 2, completed.stderr[-4000:]
    assert load_checkpoint(out_dir / "last.pt")["step"] == 3
    assert last_logged_step(out_dir) == 3
