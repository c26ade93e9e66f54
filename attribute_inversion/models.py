"""Networks of Tu et al. "Face Attribute Inversion" (§2.2, Fig. 1) and of the CycleGAN baseline (§3.1).

- :class:`SkipReducedUNet`: the single generator G of Fig. 1(b): pix2pix's U-Net [4] whose skip
  connections pass through 1x1 convolutions (half the channels on high-level skips, a quarter on
  low-level ones). No conditional input: G(x) is the same face with the attribute inverted.
- :class:`AuxiliaryClassifierDiscriminator`: D of Fig. 1(a) with the real/fake head D_s, the
  attribute head D_cls and the per-layer features used by the feature-matching loss (Eq. 5).
- :class:`ResnetGenerator`, :class:`PatchDiscriminator`, :class:`ImagePool`: CycleGAN [5] (two of
  each network; domain A = without the attribute, B = with it), initialised from N(0, 0.02) as [5]
  §7.1 (:func:`init_cyclegan_weights_`). Ours keep PyTorch's default initialisation: the paper
  gives none.
- :class:`AttributeJudge`: a small classifier that measures the attribute success rate (not in the paper).
- :class:`DiscriminatorOnGenerator`: a GAN pair as one network ``D(G(x))``, for timing.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import CycleGANConfig, DiscriminatorConfig, UNetConfig


def _log2_size(image_size: int) -> int:
    depth = int(round(math.log2(image_size)))
    if 2 ** depth != image_size:
        raise ValueError(f"image_size must be a power of two, got {image_size}")
    return depth


# --------------------------------------------------------------------------- ours: generator


class SkipReducedUNet(nn.Module):
    """Modified U-Net of §2.2 / Fig. 1(b).

    Encoder and decoder are pix2pix's [4] (4x4 stride-2 convolutions, LeakyReLU 0.2 / ReLU,
    BatchNorm, dropout in the innermost 512-channel decoder stages, tanh output). Skip ``i``
    carries the encoder features of stage ``i`` (``C_i`` channels) through a 1x1 convolution
    with ``C_i / 4`` filters for the low-level (shallow) skips and ``C_i / 2`` for the
    high-level (deep) ones before they are concatenated to the decoder input.

    Args:
        image_size: side of the square input (a power of two).
        config: widths, depth and skip ratios.
    """

    def __init__(self, image_size: int, config: UNetConfig | None = None) -> None:
        super().__init__()
        config = config or UNetConfig()
        depth = config.num_downsamplings or _log2_size(image_size)
        if image_size % (2 ** depth):
            raise ValueError(f"{depth} stride-2 stages do not divide image_size {image_size}")
        num_skips = depth - 1
        num_low = num_skips // 2 if config.num_low_level_skips is None else config.num_low_level_skips
        if not 0 <= num_low <= num_skips:
            raise ValueError(f"num_low_level_skips={num_low} outside 0..{num_skips}")
        channels = [min(config.base_channels * 2 ** i, config.max_channels) for i in range(depth)]
        self.depth = depth
        self.encoder_channels = tuple(channels)

        self.encoder = nn.ModuleList()
        for stage in range(depth):
            in_channels = 3 if stage == 0 else channels[stage - 1]
            layers: list[nn.Module] = [] if stage == 0 else [nn.LeakyReLU(0.2, inplace=False)]
            innermost = stage == depth - 1
            outermost = stage == 0
            layers.append(nn.Conv2d(in_channels, channels[stage], 4, 2, 1,
                                    bias=outermost or innermost))
            if not (outermost or innermost):
                layers.append(nn.BatchNorm2d(channels[stage]))
            self.encoder.append(nn.Sequential(*layers))

        # skips[i] reduces encoder stage i (i = 0 .. depth-2); stages < num_low are low-level.
        self.skip_ratios = tuple(config.low_level_skip_ratio if stage < num_low
                                 else config.high_level_skip_ratio for stage in range(num_skips))
        self.skips = nn.ModuleList(
            nn.Conv2d(channels[stage], max(1, int(round(channels[stage] * ratio))), kernel_size=1)
            for stage, ratio in enumerate(self.skip_ratios))

        # decoder[i] produces the resolution of encoder stage i-1 (3 output channels for i = 0).
        self.decoder = nn.ModuleList()
        for stage in range(depth):
            if stage == depth - 1:
                in_channels = channels[stage]
            else:
                in_channels = channels[stage] + self.skips[stage].out_channels
            outermost = stage == 0
            out_channels = 3 if outermost else channels[stage - 1]
            layers = [nn.ReLU(inplace=False),
                      nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=outermost)]
            if outermost:
                layers.append(nn.Tanh())
            else:
                layers.append(nn.BatchNorm2d(out_channels))
                # pix2pix: dropout in the blocks between the 4 outer stages and the innermost one.
                if config.dropout > 0 and 4 <= stage < depth - 1:
                    layers.append(nn.Dropout(config.dropout))
            self.decoder.append(nn.Sequential(*layers))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` (B,3,H,W) in [-1,1] -> the attribute-inverted image (B,3,H,W) in [-1,1]."""
        features = []
        hidden = image
        for stage in self.encoder:
            hidden = stage(hidden)
            features.append(hidden)
        hidden = self.decoder[-1](features[-1])
        for stage in range(self.depth - 2, -1, -1):
            hidden = self.decoder[stage](torch.cat([hidden, self.skips[stage](features[stage])], dim=1))
        return hidden


# --------------------------------------------------------------------------- ours: discriminator


class AuxiliaryClassifierDiscriminator(nn.Module):
    """D of Fig. 1(a): shared body, real/fake head D_s (Eq. 1), attribute head D_cls (Eqs. 2-3).

    ``forward`` returns ``(source_logits (B,1,h,w), attribute_logit (B,), features)`` where
    ``features`` lists the output of every body layer, D_i of the feature-matching loss (Eq. 5).
    D_s is a patch map as in StarGAN [8]; D_cls a convolution over the whole final map.
    """

    def __init__(self, image_size: int, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        config = config or DiscriminatorConfig()
        num_layers = config.num_layers or _log2_size(image_size) - 1
        final_size = image_size // 2 ** num_layers
        if final_size < 1 or image_size % 2 ** num_layers:
            raise ValueError(f"{num_layers} stride-2 layers do not fit image_size {image_size}")
        layers = []
        in_channels = 3
        for index in range(num_layers):
            out_channels = min(config.base_channels * 2 ** index, config.max_channels)
            layers.append(nn.Sequential(nn.Conv2d(in_channels, out_channels, 4, 2, 1),
                                        nn.LeakyReLU(0.01)))
            in_channels = out_channels
        self.body = nn.ModuleList(layers)
        self.source_head = nn.Conv2d(in_channels, 1, 3, 1, 1, bias=False)
        self.attribute_head = nn.Conv2d(in_channels, 1, final_size, bias=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        features = []
        hidden = image
        for layer in self.body:
            hidden = layer(hidden)
            features.append(hidden)
        return self.source_head(hidden), self.attribute_head(hidden).flatten(), features


# --------------------------------------------------------------------------- CycleGAN [5]


def init_cyclegan_weights_(network: nn.Module, std: float = 0.02) -> nn.Module:
    """Zhu et al. [5] §7.1: "Weights are initialized from a Gaussian distribution N(0, 0.02)".

    As the reference implementation's ``init_weights(net, init_type="normal", init_gain=0.02)``:
    convolution, transposed-convolution and linear weights from N(0, std), their biases 0; affine
    norm layers (none in [5]'s networks: InstanceNorm without affine) weight N(1, std), bias 0.
    Draws from torch's global generator in module order, in place; returns ``network``.
    """
    for layer in network.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2d, nn.InstanceNorm2d)) and layer.affine:
            nn.init.normal_(layer.weight, 1.0, std)
            nn.init.zeros_(layer.bias)
    return network


class ResnetBlock(nn.Module):
    """Residual block of [5]'s generator: reflection pad, 3x3 conv, InstanceNorm, ReLU, twice."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.block(hidden)


class ResnetGenerator(nn.Module):
    """CycleGAN generator [5] §7.2 (Johnson et al.): c7s1-64, d128, d256, R256 x n, u128, u64, c7s1-3;
    weights N(0, ``config.init_std``), biases 0 ([5] §7.1)."""

    def __init__(self, config: CycleGANConfig | None = None) -> None:
        super().__init__()
        config = config or CycleGANConfig()
        width = config.generator_channels
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, width, 7),
                                   nn.InstanceNorm2d(width), nn.ReLU(inplace=True)]
        for multiplier in (1, 2):
            layers += [nn.Conv2d(width * multiplier, width * multiplier * 2, 3, 2, 1),
                       nn.InstanceNorm2d(width * multiplier * 2), nn.ReLU(inplace=True)]
        layers += [ResnetBlock(width * 4) for _ in range(config.num_residual_blocks)]
        for multiplier in (4, 2):
            layers += [nn.ConvTranspose2d(width * multiplier, width * multiplier // 2, 3, 2, 1,
                                          output_padding=1),
                       nn.InstanceNorm2d(width * multiplier // 2), nn.ReLU(inplace=True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_cyclegan_weights_(self, config.init_std)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN of [5] §7.2 (C64-C128-C256-C512, InstanceNorm, LeakyReLU 0.2, 1-channel map);
    weights N(0, ``config.init_std``), biases 0 ([5] §7.1)."""

    def __init__(self, config: CycleGANConfig | None = None) -> None:
        super().__init__()
        config = config or CycleGANConfig()
        width = config.discriminator_channels
        layers: list[nn.Module] = [nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        multiplier = 1
        for index in range(1, config.discriminator_layers + 1):
            previous, multiplier = multiplier, min(2 ** index, 8)
            stride = 2 if index < config.discriminator_layers else 1
            layers += [nn.Conv2d(width * previous, width * multiplier, 4, stride, 1),
                       nn.InstanceNorm2d(width * multiplier), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(nn.Conv2d(width * multiplier, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)
        init_cyclegan_weights_(self, config.init_std)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)


class ImagePool(nn.Module):
    """History of generated images of [5] §4 (Shrivastava et al.): the discriminator sees a
    generated image from the pool with probability 1/2 once the pool is full.

    The pool lives in buffers, so it is saved and restored with the model's state dict and a
    resumed run is exactly the uninterrupted one. Random draws use torch's global generator,
    whose state the trainer checkpoints.
    """

    def __init__(self, pool_size: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.pool_size = pool_size
        self.register_buffer("images", torch.zeros(pool_size, *image_shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.pool_size == 0:
            return images
        returned = []
        for image in images.detach():
            count = int(self.count)
            if count < self.pool_size:
                self.images[count] = image
                self.count += 1
                returned.append(image)
            elif torch.rand(()) < 0.5:
                slot = int(torch.randint(0, self.pool_size, ()))
                returned.append(self.images[slot].to(image.dtype, copy=True))  # a copy, in bf16 under autocast
                self.images[slot] = image
            else:
                returned.append(image)
        return torch.stack(returned)


# --------------------------------------------------------------------------- timing


class DiscriminatorOnGenerator(nn.Module):
    """``D(G(x))`` as one network: every layer of a GAN pair, forward and backward, in one module,
    for timing a training step with ``common.gpu.measure_training_throughput`` (the ``--bf16
    auto`` calibration of ``train.decide_precision``, ``benchmarks.throughput``)."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module) -> None:
        super().__init__()
        self.generator, self.discriminator = generator, discriminator

    def forward(self, image: torch.Tensor):
        return self.discriminator(self.generator(image))


# --------------------------------------------------------------------------- evaluation judge


class AttributeJudge(nn.Module):
    """Small CNN scoring the attributes under study; used only for the attribute success rate
    (how often G(x) is classified with the inverted label), an extra column beside Table 1."""

    def __init__(self, num_attributes: int, channels: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for multiplier in (1, 2, 4, 8):
            layers += [nn.Conv2d(in_channels, channels * multiplier, 3, 2, 1, bias=False),
                       nn.BatchNorm2d(channels * multiplier), nn.ReLU(inplace=True)]
            in_channels = channels * multiplier
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(in_channels, num_attributes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` (B,3,H,W) in [-1,1] -> attribute logits (B, num_attributes)."""
        return self.classifier(self.features(image))
