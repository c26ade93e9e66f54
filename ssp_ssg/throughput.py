"""Training throughput (images/s) of the attribute nets on this machine (forward, backward,
AdaGrad step), via ``common.gpu.measure_training_throughput``."""
from __future__ import annotations

import torch
from torch import nn

from common.gpu import measure_training_throughput
from ssp_ssg.config import ArchitectureConfig, OptimConfig
from ssp_ssg.losses import attribute_loss
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


def measure_models(names, image_size: tuple[int, int], width_multiplier: float, batch_size: int,
                   steps: int, device: str = "auto") -> list[dict]:
    """One row per model: img/s of a training step at ``image_size`` and the given width."""
    architecture = ArchitectureConfig(width_multiplier=width_multiplier)
    optim = OptimConfig()
    parser = SegmentationNet(architecture)
    rows = []
    for name in names:
        model = build_attribute_model(name, architecture, parser)
        if getattr(model, "uses_landmarks", False):
            model = FixedLandmarks(model, image_size)
        generator = torch.Generator().manual_seed(0)

        def make_batch(n):
            images = torch.rand(n, 3, *image_size, generator=generator)
            return images, (torch.rand(n, 40, generator=generator) > 0.5).float()

        result = measure_training_throughput(
            model, make_batch, attribute_loss, batch_size=batch_size, steps=steps,
            warmup_steps=1, device=device,
            optimizer_factory=lambda params: torch.optim.Adagrad(
                [p for p in params if p.requires_grad], lr=optim.learning_rate,
                weight_decay=optim.weight_decay))
        rows.append({"model": name, "input": f"{image_size[0]}x{image_size[1]}",
                     "width_multiplier": width_multiplier, "batch_size": batch_size,
                     "images_per_second": round(result.images_per_second, 2),
                     "device": result.device, "threads": torch.get_num_threads()})
    return rows
