"""Training throughput of every model the packages train (``make bench``).

GPU (the default): steady state, forward + backward + AdamW step, warm-up excluded, the device
synchronised before the clock is read (``common.gpu.measure_training_throughput``), in three modes:
fp32 eager, bf16 autocast + channels_last, and bf16 + channels_last + ``torch.compile``. The input
pipeline is measured alone (PIL decode + resize per core, and ``torchvision.io.decode_jpeg`` on the
GPU). Without a GPU it says so and exits 0. Reference figures for one H100 (bf16 + channels_last,
eager, batch 128, AdamW) are in ``H100_REFERENCE_IMAGES_PER_SECOND``; the goal is that the
packages' own loops reach 1.1x them.

CPU (``--cpu``, also on a GPU machine): whether bf16 autocast speeds up a CPU train step depends on
the network and the CPU (``shared/FINDINGS.md``: 2.2x for ResNet50, 0.82x for the SSP basic net on
an AVX-512/AMX Xeon; CPUs without native bf16 only emulate it). For every network, the fp32 and
the bf16-autocast step are timed back to back on the same model and batch, both channels_last, by
``common.train.calibrate_bf16``, which also gives the choice a package's ``bf16="auto"`` would
make; on a CPU without native bf16 only fp32 is timed. Written as a Markdown table (and JSON)
naming the CPU. ``--quick`` (batch 2, 1 warm-up + 2 timed steps) makes it cheap enough for a test.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torchvision
from torch import nn

from common.gpu import measure_training_throughput
from common.train import BF16_MIN_SPEEDUP, calibrate_bf16, cpu_description, cpu_has_native_bf16

#: Measured on one H100, bf16 autocast + channels_last, eager, batch 128, AdamW (issue #9).
H100_REFERENCE_IMAGES_PER_SECOND = {
    "seresnext101_32x4d@224": 1135.0,
    "resnet50@224": 3691.0,
    "densenet121@224": 1687.0,
    "inception_v3@299": 2067.0,
    "ssp_basic_net@218x178": 2428.0,
    "ssp_segmentation_net@218x178": 1150.0,
}


def _multilabel_batch(size: tuple[int, int], classes: int = 40) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    return lambda n: (torch.randn(n, 3, *size), torch.randint(0, 2, (n, classes)).float())


def _bce(outputs, targets):
    if isinstance(outputs, tuple):  # InceptionV3 with aux logits, SSP's (logits, extras)
        outputs = outputs[0]
    return nn.functional.binary_cross_entropy_with_logits(outputs.float(), targets)


def classifier_cases() -> dict[str, tuple[Callable[[], nn.Module], Callable, Callable]]:
    """name -> (model factory, batch factory, loss) for the torchvision / timm classifiers."""
    import timm

    return {
        "seresnext101_32x4d@224": (lambda: timm.create_model("seresnext101_32x4d", pretrained=False, num_classes=40),
                                   _multilabel_batch((224, 224)), _bce),
        "resnet50@224": (lambda: torchvision.models.resnet50(num_classes=40), _multilabel_batch((224, 224)), _bce),
        "densenet121@224": (lambda: torchvision.models.densenet121(num_classes=40), _multilabel_batch((224, 224)), _bce),
        "inception_v3@299": (lambda: torchvision.models.inception_v3(num_classes=2, aux_logits=True, init_weights=False),
                             _multilabel_batch((299, 299), classes=2), _bce),
    }


def input_pipeline(image_dir: Path | None, n: int = 256) -> dict[str, float]:
    """Decode + resize to 218x178 in images/s: PIL on one core, and nvJPEG on the GPU if present."""
    from PIL import Image

    paths = sorted(image_dir.glob("*.jpg"))[:n] if image_dir and image_dir.is_dir() else []
    if not paths:
        return {}
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            image.convert("RGB").resize((178, 218), Image.BILINEAR)
    rates = {"PIL decode+resize, 1 core": len(paths) / (time.perf_counter() - start)}
    if torch.cuda.is_available():
        data = [torchvision.io.read_file(str(p)) for p in paths]
        torchvision.io.decode_jpeg(data[:8], device="cuda")
        torch.cuda.synchronize()
        start = time.perf_counter()
        images = torchvision.io.decode_jpeg(data, device="cuda")
        resized = [nn.functional.interpolate(img[None].float(), size=(218, 178), mode="bilinear") for img in images]
        torch.cuda.synchronize()
        rates["torchvision.io.decode_jpeg on GPU + resize"] = len(resized) / (time.perf_counter() - start)
    return rates


def all_cases() -> dict[str, tuple[Callable[[], nn.Module], Callable, Callable]]:
    """Every network measured: the common classifiers and the packages' own networks."""
    from benchmarks.package_models import package_throughput_cases

    return {**classifier_cases(), **package_throughput_cases()}


def cpu_bf16_rows(cases: dict[str, tuple[Callable[[], nn.Module], Callable, Callable]], *, batch_size: int,
                  steps: int, warmup_steps: int) -> list[dict]:
    """One record per network: fp32 and bf16-autocast train-step rates on this CPU, both
    channels_last, and the ``calibrate_bf16`` decision. Without native bf16 the calibration times
    nothing, so fp32 is timed here alone (same settings) and the bf16 fields stay ``None``."""
    records = []
    for name, (make_model, make_batch, loss_fn) in cases.items():
        calibration = calibrate_bf16(make_model, make_batch, loss_fn, steps, warmup_steps, channels_last=True,
                                     batch_size=batch_size)
        record = {"model": name, **asdict(calibration)}
        if calibration.fp32_images_per_second is None:
            record["fp32_images_per_second"] = measure_training_throughput(
                make_model(), make_batch, loss_fn, batch_size=batch_size, steps=steps, warmup_steps=warmup_steps,
                device="cpu", channels_last=True).images_per_second
        records.append(record)
        bf16 = (f"bf16 {calibration.bf16_images_per_second:9.2f} img/s  {calibration.bf16_speedup:.2f}x"
                if calibration.native_bf16 else "bf16 not timed (no native bf16)")
        print(f"{name:34s} fp32 {record['fp32_images_per_second']:9.2f} img/s  {bf16}", flush=True)
    return records


def _rate(value: float | None) -> str:
    """A rate cell; ``None`` (bf16 not timed) as the reason why."""
    return "n/a: no native bf16" if value is None else f"{value:.2f}"


def cpu_bf16_markdown(records: list[dict], *, cpu: str, batch_size: int, steps: int, warmup_steps: int,
                      load_average: tuple[float, float, float], date: str) -> str:
    """The CPU table: conditions first (a rate means little without the CPU and its load)."""
    lines = [
        "# CPU train step: fp32 vs bf16 autocast",
        "",
        f"- CPU: {cpu}; torch {torch.__version__}, {torch.get_num_threads()} threads; load average "
        f"{', '.join(f'{value:.2f}' for value in load_average)} at the start; {date}",
        f"- step: forward + backward + AdamW, batch {batch_size}, {warmup_steps} warm-up + {steps} timed "
        "steps, channels_last both ways, same model and batch (`common.train.calibrate_bf16`)",
        f"- auto: bf16 when bf16 / fp32 > {BF16_MIN_SPEEDUP:.2f} (`common.train.BF16_MIN_SPEEDUP`); on a CPU "
        "without native bf16 (avx512_bf16 / amx_bf16) bf16 is not timed and auto is fp32",
        "",
        "| network | fp32 img/s | bf16 img/s | bf16 / fp32 | auto |",
        "|---|---:|---:|---:|---|",
    ]
    for record in records:
        speedup = record["bf16_speedup"]
        lines.append(f"| {record['model']} | {_rate(record['fp32_images_per_second'])} | "
                     f"{_rate(record['bf16_images_per_second'])} | "
                     f"{'n/a: no native bf16' if speedup is None else f'{speedup:.2f}x'} | "
                     f"{'bf16' if record['use_bf16'] else 'fp32'} |")
    return "\n".join(lines) + "\n"


def measure_cpu(cases: dict, *, batch_size: int, steps: int, warmup_steps: int, out_dir: Path,
                loop_packages: list[str] | None = None, loop_steps: int = 20, loop_rounds: int = 3,
                data_root: Path | None = None) -> Path:
    """Time fp32 vs bf16 on this CPU for ``cases`` and, for ``loop_packages``, each package's own
    training loop against a plain eager step and its input pipeline (:mod:`benchmarks.package_loops`,
    ``loop_rounds`` interleaved rounds, on ``data_root`` when it holds CelebA (and MTFL for
    mtfl_compare), else synthetic faces);
    write ``throughput-cpu-<stamp>.md`` and ``.json`` under ``out_dir``; returns the Markdown path."""
    from benchmarks.package_loops import as_records, loops_markdown, measure_loops

    load_average, now, cpu = os.getloadavg(), dt.datetime.now(), cpu_description()
    print(f"CPU: {cpu}; native bf16: {cpu_has_native_bf16()}", flush=True)
    records = cpu_bf16_rows(cases, batch_size=batch_size, steps=steps, warmup_steps=warmup_steps)
    root = str(data_root) if data_root is not None and (data_root / "celeba").is_dir() else None
    loops = measure_loops(root, loop_steps, loop_packages, loop_rounds) if loop_packages else []
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"throughput-cpu-{now.strftime('%Y%m%d-%H%M%S')}"
    markdown = stem.with_suffix(".md")
    text = cpu_bf16_markdown(records, cpu=cpu, batch_size=batch_size, steps=steps, warmup_steps=warmup_steps,
                             load_average=load_average, date=now.isoformat(timespec="seconds"))
    if loops:
        text += ("\n## Each package's own training loop vs a plain eager step, and its input pipeline\n\n"
                 + loops_markdown(loops))
    markdown.write_text(text)
    stem.with_suffix(".json").write_text(json.dumps({
        "date": now.isoformat(timespec="seconds"), "device": "cpu", "cpu": cpu,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "load_average": load_average,
        "batch_size": batch_size, "steps": steps, "warmup_steps": warmup_steps, "records": records,
        "package_loops": as_records(loops)}, indent=1))
    print(f"wrote {markdown}")
    return markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true",
                        help="time fp32 vs bf16 autocast on this CPU (small batch) and write a Markdown table")
    parser.add_argument("--quick", action="store_true", help="with --cpu: batch 2, 1 warm-up + 2 timed steps")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default 128 on GPU, 8 on CPU (2 with --quick)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps; default 30 on GPU, 3 on CPU (2 with --quick)")
    parser.add_argument("--only", nargs="*", help="model names to measure (default all)")
    parser.add_argument("--loops", nargs="*", default=None, metavar="PACKAGE",
                        help="with --cpu: packages whose own training loop to time against a plain eager step "
                             "(default: every package the bench knows; none when --only is given; "
                             "--loops with no name: none)")
    parser.add_argument("--loop-steps", type=int, default=None, help="steps per loop measurement (default 20; 2 with --quick)")
    parser.add_argument("--loop-rounds", type=int, default=None,
                        help="interleaved rounds of each loop measurement; ratios are medians over them "
                             "(default 3; 1 with --quick)")
    parser.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data",
                        help="CelebA for the loop measurements (synthetic faces when it is absent)")
    parser.add_argument("--modes", nargs="*", default=["fp32", "bf16_cl", "bf16_cl_compile"], help="GPU modes")
    parser.add_argument("--images", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "celeba" / "img_align_celeba_89x109")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "throughput")
    args = parser.parse_args(argv)
    if args.quick and not args.cpu:
        parser.error("--quick goes with --cpu")
    if not args.cpu and not torch.cuda.is_available():
        print("no GPU here: GPU throughput not measured (--cpu times fp32 vs bf16 on this CPU)")
        return 0
    cases = all_cases()
    unknown = sorted(set(args.only or ()) - set(cases))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(cases)}")
    if args.only:
        cases = {name: case for name, case in cases.items() if name in args.only}
    if args.cpu:
        from benchmarks.package_loops import MEASUREMENTS

        loops = args.loops if args.loops is not None else ([] if args.only else list(MEASUREMENTS))
        unknown_loops = sorted(set(loops) - set(MEASUREMENTS))
        if unknown_loops:
            parser.error(f"no loop measurement for {', '.join(unknown_loops)}; known: {', '.join(MEASUREMENTS)}")
        measure_cpu(cases, batch_size=args.batch_size or (2 if args.quick else 8),
                    steps=args.steps or (2 if args.quick else 3), warmup_steps=1, out_dir=args.out,
                    loop_packages=loops, loop_steps=args.loop_steps or (2 if args.quick else 20),
                    loop_rounds=args.loop_rounds or (1 if args.quick else 3),
                    data_root=args.data_root)
        return 0
    batch_size = args.batch_size or 128
    steps = args.steps or 30
    modes = {"fp32": (False, False, False), "bf16_cl": (True, True, False), "bf16_cl_compile": (True, True, True)}
    records = []
    for name, (make_model, make_batch, loss_fn) in cases.items():
        for mode in args.modes:
            bf16, channels_last, compiled = modes[mode]
            result = measure_training_throughput(
                make_model(), make_batch, loss_fn, batch_size=batch_size, steps=steps,
                warmup_steps=3, device="cuda", bf16=bf16, channels_last=channels_last,
                compile_model=compiled)
            reference = H100_REFERENCE_IMAGES_PER_SECOND.get(name)
            records.append({"model": name, "mode": mode, **asdict(result), "h100_reference": reference})
            print(f"{name:34s} {mode:16s} {result.images_per_second:9.1f} img/s"
                  + (f"  (H100 reference {reference:.0f})" if reference else ""), flush=True)
    pipeline = input_pipeline(args.images)
    for name, rate in pipeline.items():
        print(f"{name:51s} {rate:9.1f} img/s")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (args.out / f"throughput-cuda-{stamp}.json").write_text(json.dumps({
        "date": dt.datetime.now().isoformat(timespec="seconds"), "device": torch.cuda.get_device_name(),
        "torch": torch.__version__, "batch_size": batch_size,
        "records": records, "input_pipeline_images_per_second": pipeline}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
