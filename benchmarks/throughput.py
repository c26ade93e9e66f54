"""Training throughput of every model the packages train (``make bench``, GPU part).

Steady state: forward + backward + AdamW step, warm-up excluded, the device synchronised before
the clock is read (``common.gpu.measure_training_throughput``), in three modes: fp32 eager,
bf16 autocast + channels_last, and bf16 + channels_last + ``torch.compile``. The input pipeline
is measured alone (PIL decode + resize per core, and ``torchvision.io.decode_jpeg`` on the GPU).

Without a GPU it says so and exits 0, unless ``--cpu`` asks for a (slow, small-batch) CPU run.
Reference figures for one H100 (bf16 + channels_last, eager, batch 128, AdamW) are in
``H100_REFERENCE_IMAGES_PER_SECOND``; the goal is that the packages' own loops reach 1.1x them.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torchvision
from torch import nn

from common.gpu import measure_training_throughput

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="measure on CPU (small batch) when there is no GPU")
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 on GPU, 8 on CPU")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--only", nargs="*", help="model names to measure (default all)")
    parser.add_argument("--modes", nargs="*", default=["fp32", "bf16_cl", "bf16_cl_compile"])
    parser.add_argument("--images", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "celeba" / "img_align_celeba_89x109")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "throughput")
    args = parser.parse_args(argv)
    on_gpu = torch.cuda.is_available()
    if not on_gpu and not args.cpu:
        print("no GPU here: GPU throughput not measured (use --cpu for a small CPU measurement)")
        return 0
    device = "cuda" if on_gpu else "cpu"
    batch_size = args.batch_size or (128 if on_gpu else 8)
    steps = args.steps or (30 if on_gpu else 3)
    from benchmarks.package_models import package_throughput_cases

    cases = {**classifier_cases(), **package_throughput_cases()}
    modes = {"fp32": (False, False, False), "bf16_cl": (True, True, False), "bf16_cl_compile": (True, True, True)}
    records = []
    for name, (make_model, make_batch, loss_fn) in cases.items():
        if args.only and name not in args.only:
            continue
        for mode in args.modes:
            bf16, channels_last, compiled = modes[mode]
            result = measure_training_throughput(
                make_model(), make_batch, loss_fn, batch_size=batch_size, steps=steps,
                warmup_steps=3 if on_gpu else 1, device=device, bf16=bf16, channels_last=channels_last,
                compile_model=compiled)
            reference = H100_REFERENCE_IMAGES_PER_SECOND.get(name)
            records.append({"model": name, "mode": mode, **asdict(result), "h100_reference": reference})
            print(f"{name:34s} {mode:16s} {result.images_per_second:9.1f} img/s"
                  + (f"  (H100 reference {reference:.0f})" if reference and on_gpu else ""), flush=True)
    pipeline = input_pipeline(args.images)
    for name, rate in pipeline.items():
        print(f"{name:51s} {rate:9.1f} img/s")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (args.out / f"throughput-{device}-{stamp}.json").write_text(json.dumps({
        "date": dt.datetime.now().isoformat(timespec="seconds"), "device": torch.cuda.get_device_name() if on_gpu
        else platform.processor() or platform.machine(), "torch": torch.__version__, "batch_size": batch_size,
        "records": records, "input_pipeline_images_per_second": pipeline}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
