"""bf16 on CPU, decided per network and CPU: common.train.cpu_has_native_bf16 / calibrate_bf16,
the Trainer's bf16 autocast keeping losses and metrics fp32, and ``benchmarks.throughput --cpu``."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import common.train
from common.gpu import ThroughputResult
from common.train import (BF16_MIN_SPEEDUP, TrainConfig, Trainer, calibrate_bf16, cpu_has_native_bf16,
                          decide_bf16)

#: Abridged /proc/cpuinfo of the CPUs this project meets (flags lines cut to what matters here).
SAPPHIRE_RAPIDS = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\n"
                   "flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile\n"
                   "vmx flags\t: vnmi ept\n")
AMX_ONLY = "model name\t: hypothetical\nflags\t\t: avx2 avx512f amx_bf16 amx_tile\n"
ZEN4 = "model name\t: AMD EPYC 9R14\nflags\t\t: avx2 avx512f avx512bw avx512_bf16\n"
ZEN2_AVX2 = "model name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma\n"
SKYLAKE_AVX512 = "model name\t: Intel(R) Xeon(R) Gold 6148\nflags\t\t: avx2 avx512f avx512bw avx512_vnni\n"
#: A flag named only outside the ``flags`` line does not count.
BF16_ONLY_IN_OTHER_LINE = "model name\t: odd\nflags\t\t: avx2\nvmx flags\t: avx512_bf16\n"


@pytest.mark.parametrize("cpuinfo, native", [
    (SAPPHIRE_RAPIDS, True), (AMX_ONLY, True), (ZEN4, True),
    (ZEN2_AVX2, False), (SKYLAKE_AVX512, False), (BF16_ONLY_IN_OTHER_LINE, False), ("", False)])
def test_cpu_has_native_bf16_reads_the_cpuinfo_flags(monkeypatch, cpuinfo, native):
    monkeypatch.setattr(common.train, "_read_cpuinfo", lambda: cpuinfo)
    assert cpu_has_native_bf16() is native


@pytest.mark.parametrize("torch_says", [True, False])
def test_cpu_has_native_bf16_without_cpuinfo_asks_torch(monkeypatch, torch_says):
    monkeypatch.setattr(common.train, "_read_cpuinfo", lambda: None)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: torch_says)
    assert cpu_has_native_bf16() is torch_says


def tiny_conv_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def tiny_batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 3, 16, 16), torch.randint(0, 2, (n, 4)).float()


def bce(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(outputs.float(), targets)


def test_calibrate_bf16_without_native_bf16_times_nothing(monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("nothing may be built or timed on a CPU without native bf16")

    monkeypatch.setattr(common.train, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(common.train, "measure_training_throughput", must_not_run)
    calibration = calibrate_bf16(must_not_run, must_not_run, bce, batch_size=4)
    assert calibration.use_bf16 is False and calibration.native_bf16 is False
    assert calibration.fp32_images_per_second is None and calibration.bf16_images_per_second is None
    assert calibration.bf16_speedup is None
    assert "no native bf16" in calibration.reason


@pytest.mark.parametrize("bf16_rate, chosen", [
    (100.0 * BF16_MIN_SPEEDUP, False),   # exactly at the margin: not enough
    (109.0, False), (82.0, False), (50.0, False),
    (111.0, True), (220.0, True)])
def test_calibrate_bf16_decides_by_the_margin(monkeypatch, bf16_rate, chosen):
    """fp32 at 100 img/s; bf16 is chosen only above 100 x BF16_MIN_SPEEDUP. Both timings get the
    same model and the same batch, in channels_last, on the CPU."""
    calls = []

    def fixed_timer(model, make_batch, loss_fn, *, batch_size, steps, warmup_steps, device, bf16,
                    channels_last):
        calls.append({"model": model, "batch": make_batch(batch_size), "bf16": bf16, "device": device,
                      "channels_last": channels_last, "steps": steps, "warmup_steps": warmup_steps})
        rate = bf16_rate if bf16 else 100.0
        return ThroughputResult(images_per_second=rate, seconds_per_step=batch_size / rate,
                                batch_size=batch_size, steps_timed=steps, device=device, bf16=bf16,
                                channels_last=channels_last, compiled=False)

    monkeypatch.setattr(common.train, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(common.train, "measure_training_throughput", fixed_timer)
    calibration = calibrate_bf16(tiny_conv_net, tiny_batch, bce, batch_size=4)
    assert calibration.use_bf16 is chosen
    assert calibration.fp32_images_per_second == 100.0 and calibration.bf16_images_per_second == bf16_rate
    assert calibration.bf16_speedup == pytest.approx(bf16_rate / 100.0)
    assert calibration.min_speedup == BF16_MIN_SPEEDUP
    assert [call["bf16"] for call in calls] == [False, True]
    fp32_call, bf16_call = calls
    assert fp32_call["model"] is bf16_call["model"] and fp32_call["batch"] is bf16_call["batch"]
    assert all(call["device"] == "cpu" and call["channels_last"] and call["steps"] == 3
               and call["warmup_steps"] == 1 for call in calls)


@pytest.mark.parametrize("mode", ["on", "off"])
def test_decide_bf16_takes_on_and_off_as_given_and_writes_nothing(tmp_path, mode):
    record = decide_bf16(mode, tmp_path / "bf16.json", torch.device("cpu"), tiny_conv_net, tiny_batch, bce,
                         batch_size=4)
    assert record == {"use_bf16": mode == "on", "reason": f"--bf16 {mode}"}
    assert not (tmp_path / "bf16.json").exists()


def test_decide_bf16_auto_times_once_and_a_resumed_run_reads_the_decision(monkeypatch, tmp_path):
    """The first "auto" call calibrates and stores the decision; the second (a resumed run, perhaps on
    a CPU that would decide otherwise) reads it back without timing."""
    timings = []

    def timer(model, make_batch, loss_fn, *, batch_size, steps, warmup_steps, device, bf16, channels_last):
        timings.append(bf16)
        rate = 150.0 if bf16 else 100.0
        return ThroughputResult(images_per_second=rate, seconds_per_step=batch_size / rate, batch_size=batch_size,
                                steps_timed=steps, device=device, bf16=bf16, channels_last=channels_last,
                                compiled=False)

    monkeypatch.setattr(common.train, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(common.train, "measure_training_throughput", timer)
    path = tmp_path / "run" / "bf16.json"
    first = decide_bf16("auto", path, torch.device("cpu"), tiny_conv_net, tiny_batch, bce, batch_size=4)
    assert first["use_bf16"] is True and first["bf16_speedup"] == pytest.approx(1.5) and timings == [False, True]
    assert json.loads(path.read_text()) == first and not list(path.parent.glob("*.tmp*"))
    monkeypatch.setattr(common.train, "cpu_has_native_bf16", lambda: False)
    assert decide_bf16("auto", path, torch.device("cpu"), tiny_conv_net, tiny_batch, bce, batch_size=4) == first
    assert timings == [False, True]


def test_decide_bf16_refuses_an_unknown_mode(tmp_path):
    with pytest.raises(ValueError, match="bf16 must be one of"):
        decide_bf16("fast", tmp_path / "bf16.json", torch.device("cpu"), tiny_conv_net, tiny_batch, bce,
                    batch_size=4)


def test_calibrate_bf16_quick_real_run_on_a_tiny_conv_net(monkeypatch):
    """Really timed (bf16 forced on: autocast also runs where it is emulated); positive rates, the
    decision follows the rule, and torch's random state is left as it was."""
    monkeypatch.setattr(common.train, "cpu_has_native_bf16", lambda: True)
    rng_before = torch.get_rng_state()
    calibration = calibrate_bf16(tiny_conv_net, tiny_batch, bce, steps=2, warmup_steps=1, batch_size=4)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert calibration.native_bf16 is True
    assert calibration.fp32_images_per_second > 0 and calibration.bf16_images_per_second > 0
    assert calibration.bf16_speedup == pytest.approx(
        calibration.bf16_images_per_second / calibration.fp32_images_per_second)
    assert calibration.use_bf16 is (calibration.bf16_speedup > BF16_MIN_SPEEDUP)
    assert (calibration.batch_size, calibration.steps, calibration.warmup_steps) == (4, 2, 1)
    assert calibration.channels_last is True and "cores" in calibration.cpu


class Blobs(Dataset):
    def __init__(self, n: int = 8):
        generator = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, 16, 16, generator=generator)
        self.attributes = torch.randint(0, 2, (n, 4), generator=generator).float()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "attributes": self.attributes[index]}


def test_trainer_bf16_on_cpu_computes_in_bf16_but_keeps_loss_and_metrics_fp32(tmp_path):
    seen: dict[str, torch.dtype] = {}

    def loss_fn(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch["image"])
        loss = nn.functional.binary_cross_entropy_with_logits(logits, batch["attributes"])
        seen["logits"], seen["loss"] = logits.dtype, loss.dtype
        return loss, {}

    def evaluate(model: nn.Module) -> dict[str, float]:
        seen["evaluation"] = model(Blobs().images).dtype
        return {"score": 0.5}

    config = TrainConfig(out_dir=tmp_path, max_steps=2, log_every=1, bf16=True, channels_last=True,
                         device="cpu", progress=False, tensorboard=False)
    model = tiny_conv_net()
    result = Trainer(model, torch.optim.AdamW(model.parameters()), Blobs(), config, batch_size=4,
                     loss_fn=loss_fn, evaluate_fn=evaluate).fit()
    assert seen == {"logits": torch.bfloat16, "loss": torch.float32, "evaluation": torch.float32}
    assert result.step == 2


@pytest.mark.parametrize("argv", [["--cpu", "--only", "no_such_network"], ["--quick"]])
def test_throughput_rejects_unknown_networks_and_quick_without_cpu(argv, capsys):
    from benchmarks import throughput

    with pytest.raises(SystemExit) as stop:
        throughput.main(argv)
    assert stop.value.code == 2
    assert ("no_such_network" if "--only" in argv else "--quick goes with --cpu") in capsys.readouterr().err


def test_throughput_cpu_quick_writes_its_table(tmp_path):
    """One small package network: the Markdown table names the CPU and gives fp32 and (where the
    CPU has native bf16) bf16 rates with the auto decision; the JSON holds the same record."""
    from benchmarks import throughput
    from common.train import cpu_description

    case = "cyclegan_resnet_g+patch_d@128"
    assert throughput.main(["--cpu", "--quick", "--only", case, "--out", str(tmp_path)]) == 0
    [markdown] = tmp_path.glob("throughput-cpu-*.md")
    text = markdown.read_text()
    assert cpu_description() in text and "batch 2, 1 warm-up + 2 timed steps" in text
    [row] = [line for line in text.splitlines() if line.startswith(f"| {case} |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    [record] = json.loads(markdown.with_suffix(".json").read_text())["records"]
    assert record["model"] == case and record["batch_size"] == 2 and record["fp32_images_per_second"] > 0
    assert cells[1] == f"{record['fp32_images_per_second']:.2f}"
    if cpu_has_native_bf16():
        assert record["bf16_images_per_second"] > 0
        assert record["use_bf16"] is (record["bf16_speedup"] > BF16_MIN_SPEEDUP)
        assert cells[2:] == [f"{record['bf16_images_per_second']:.2f}", f"{record['bf16_speedup']:.2f}x",
                             "bf16" if record["use_bf16"] else "fp32"]
    else:
        assert record["bf16_images_per_second"] is None and record["use_bf16"] is False
        assert cells[2:] == ["n/a: no native bf16", "n/a: no native bf16", "fp32"]
