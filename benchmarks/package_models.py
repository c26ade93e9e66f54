"""The paper packages' own networks for ``benchmarks.throughput``, built through their public
constructors at paper size. Each case: (model factory, batch factory, loss on the model output)."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _images(size: tuple[int, int], targets: Callable[[int], torch.Tensor]):
    return lambda n: (torch.randn(n, 3, *size), targets(n))


def _sum_of_means(outputs, _targets) -> torch.Tensor:
    """A loss touching every output (deep-supervision dicts, GAN heads): throughput only."""
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if isinstance(outputs, (list, tuple)):
        return sum(_sum_of_means(o, None) for o in outputs)
    return outputs.float().logsumexp(dim=1).mean() if outputs.dim() > 1 else outputs.float().mean()


def package_throughput_cases() -> dict[str, tuple[Callable[[], nn.Module], Callable, Callable]]:
    import dataclasses

    from attribute_inversion.models import (
        AuxiliaryClassifierDiscriminator, DiscriminatorOnGenerator, PatchDiscriminator, ResnetGenerator, SkipReducedUNet)
    from ssp_ssg.config import ArchitectureConfig
    from celeba_ffhq_labels.config import MODELS as FFHQ_MODELS
    from celeba_ffhq_labels.models import build_classifier as build_ffhq_classifier
    from ssp_ssg.models import SegmentationNet, build_attribute_model

    multilabel = lambda n: torch.randint(0, 2, (n, 40)).float()  # noqa: E731
    bce = lambda logits, targets: nn.functional.binary_cross_entropy_with_logits(logits.float(), targets)  # noqa: E731
    architecture = ArchitectureConfig()
    return {
        "ssp_basic_net@218x178": (lambda: build_attribute_model("avgpool", architecture),
                                  _images((218, 178), multilabel), bce),
        "ssp_segmentation_net@218x178": (lambda: SegmentationNet(architecture),
                                         _images((218, 178), multilabel), _sum_of_means),
        "ssp_ssp_net@218x178": (lambda: build_attribute_model("ssp", architecture, SegmentationNet(architecture)),
                                _images((218, 178), multilabel), bce),
        "inversion_unet_g+d@128": (lambda: DiscriminatorOnGenerator(SkipReducedUNet(128),
                                                                   AuxiliaryClassifierDiscriminator(128)),
                                   _images((128, 128), multilabel), _sum_of_means),
        "cyclegan_resnet_g+patch_d@128": (lambda: DiscriminatorOnGenerator(ResnetGenerator(), PatchDiscriminator()),
                                          _images((128, 128), multilabel), _sum_of_means),
        # celeba_ffhq_labels' candidates for its CPU scale, at the shared images' native 109x89
        **{f"ffhq_{name}@109x89": (
            lambda config=dataclasses.replace(FFHQ_MODELS[name], input_size=(109, 89)): build_ffhq_classifier(config),
            _images((109, 89), multilabel), bce) for name in ("reduced", "reduced-x2", "seresnext26d")},
    }
