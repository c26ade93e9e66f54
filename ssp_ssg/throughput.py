"""Training throughput (images/s) of the attribute nets and the face parser on this machine
(forward, backward, AdaGrad step), in fp32 or bf16 autocast, NCHW or channels_last, via
``common.gpu.measure_training_throughput``: ``python -m ssp_ssg throughput``."""
from __future__ import annotations

import torch
from torch import nn

from common.gpu import measure_training_throughput
from ssp_ssg.config import ArchitectureConfig, OptimConfig
from ssp_ssg.losses import attribute_loss, deep_supervision_loss
from ssp_ssg.models import SegmentationNet, build_attribute_model


class FixedLandmarks(nn.Module):
    """Feeds the BBox baseline the same 5 landmarks for every image (for timing: throughput and
    the ``--bf16 auto`` calibration)."""

    def __init__(self, model: nn.Module, image_size: tuple[int, int]):
        super().__init__()
        self.model = model
        height, width = image_size
        self.register_buffer("landmarks", torch.tensor(
            [[0.35 * width, 0.45 * height], [0.65 * width, 0.45 * height],
             [0.5 * width, 0.6 * height], [0.38 * width, 0.75 * height],
             [0.62 * width, 0.75 * height]]))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image, self.landmarks.expand(image.shape[0], -1, -1))


def timing_model(model: nn.Module, image_size: tuple[int, int]) -> nn.Module:
    """``model`` as a timed network takes it: BBox wrapped in :class:`FixedLandmarks`, others as they are."""
    return FixedLandmarks(model, image_size) if getattr(model, "uses_landmarks", False) else model


def timing_batch_and_loss(segmentation: bool, image_size: tuple[int, int], num_regions: int, num_attributes: int,
                          generator: torch.Generator | None = None):
    """``(make_batch, loss_fn)`` for timing one network's training step: random images with random
    region labels under the deep-supervision loss (§3.2) for the parser, random 0/1 attributes under
    the attribute loss otherwise. Used by ``--bf16 auto``'s calibration (``jobs``) and ``throughput``."""
    height, width = image_size

    def make_batch(n: int):
        images = torch.rand(n, 3, height, width, generator=generator)
        if segmentation:
            return images, torch.randint(0, num_regions, (n, height, width), generator=generator)
        return images, (torch.rand(n, num_attributes, generator=generator) > 0.5).float()

    def loss_fn(outputs, targets):
        return deep_supervision_loss(outputs, targets)[0] if segmentation else attribute_loss(outputs, targets)

    return make_batch, loss_fn


#: ``--modes`` of ``python -m ssp_ssg throughput``: precision and memory format of a timed step.
MODES: dict[str, tuple[bool, bool]] = {"fp32": (False, False), "fp32-cl": (False, True),
                                       "bf16": (True, False), "bf16-cl": (True, True)}
#: The face parser's name in ``--models`` (the other names are ``build_attribute_model``'s).
PARSER = "parser"


def measure_models(names, image_size: tuple[int, int], width_multiplier: float, batch_size: int,
                   steps: int, device: str = "auto", modes=("fp32",)) -> list[dict]:
    """One row per model and mode (:data:`MODES`: fp32 or bf16 autocast, NCHW or channels_last):
    img/s of a training step (AdaGrad, §4.1) at ``image_size`` and the given width. ``names``:
    attribute nets (``build_attribute_model``; BBox gets fixed landmarks) or :data:`PARSER`, the
    segmentation net under its deep-supervision loss (§3.2) on random region labels."""
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ValueError(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    architecture = ArchitectureConfig(width_multiplier=width_multiplier)
    optim = OptimConfig()

    def make_model(name: str) -> nn.Module:
        torch.manual_seed(0)  # the same initial weights in every mode
        parser = SegmentationNet(architecture)
        return parser if name == PARSER else timing_model(build_attribute_model(name, architecture, parser), image_size)

    rows = []
    for name in names:
        make_batch, loss_fn = timing_batch_and_loss(name == PARSER, image_size, architecture.num_regions,
                                                    architecture.num_attributes, torch.Generator().manual_seed(0))
        for mode in modes:
            bf16, channels_last = MODES[mode]
            result = measure_training_throughput(
                make_model(name), make_batch, loss_fn, batch_size=batch_size, steps=steps,
                warmup_steps=1, device=device, bf16=bf16, channels_last=channels_last,
                optimizer_factory=lambda params: torch.optim.Adagrad(
                    [p for p in params if p.requires_grad], lr=optim.learning_rate,
                    weight_decay=optim.weight_decay))
            rows.append({"model": name, "mode": mode, "input": f"{image_size[0]}x{image_size[1]}",
                         "width_multiplier": width_multiplier, "batch_size": batch_size,
                         "images_per_second": round(result.images_per_second, 2),
                         "device": result.device, "threads": torch.get_num_threads()})
    return rows
