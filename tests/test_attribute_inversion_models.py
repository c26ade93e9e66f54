"""Networks of attribute_inversion: the 1x1 skip widths of §2.2, shapes, CycleGAN parts, initialisation."""
from __future__ import annotations

import inspect

import pytest
import torch

from attribute_inversion.config import CycleGANConfig, DiscriminatorConfig, UNetConfig
from attribute_inversion.models import (AttributeJudge, AuxiliaryClassifierDiscriminator, ImagePool,
                                        PatchDiscriminator, ResnetGenerator, SkipReducedUNet)


def test_paper_unet_skip_widths_are_half_on_high_and_quarter_on_low_level_skips():
    generator = SkipReducedUNet(128, UNetConfig())
    # pix2pix unet_128: 7 stride-2 stages, encoder widths 64-128-256-512-512-512-512, 6 skips.
    assert generator.encoder_channels == (64, 128, 256, 512, 512, 512, 512)
    assert len(generator.skips) == 6
    widths = [(skip.in_channels, skip.out_channels) for skip in generator.skips]
    # The shallow half (64x64, 32x32, 16x16 maps) is low-level: a quarter; the deep half: half.
    assert widths == [(64, 16), (128, 32), (256, 64), (512, 256), (512, 256), (512, 256)]
    for skip in generator.skips:
        assert skip.kernel_size == (1, 1)


@pytest.mark.parametrize("image_size, base", [(32, 16), (64, 8)])
def test_skip_widths_follow_the_ratios_at_reduced_scales(image_size, base):
    generator = SkipReducedUNet(image_size, UNetConfig(base_channels=base, max_channels=8 * base))
    num_skips = len(generator.skips)
    assert num_skips == generator.depth - 1
    for stage, skip in enumerate(generator.skips):
        ratio = 0.25 if stage < num_skips // 2 else 0.5
        assert skip.out_channels == skip.in_channels * ratio
        assert skip.in_channels == generator.encoder_channels[stage]


def test_generator_maps_a_face_to_a_face_without_conditional_input():
    generator = SkipReducedUNet(32, UNetConfig(base_channels=8, max_channels=32)).eval()
    assert list(inspect.signature(generator.forward).parameters) == ["image"]
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    output = generator(image)
    assert output.shape == image.shape
    assert output.abs().max() <= 1.0


def test_unet_rejects_sizes_that_are_not_powers_of_two():
    with pytest.raises(ValueError, match="power of two"):
        SkipReducedUNet(48, UNetConfig())


def test_discriminator_has_source_and_attribute_heads_and_exposes_layer_features():
    discriminator = AuxiliaryClassifierDiscriminator(64, DiscriminatorConfig(base_channels=8, max_channels=64))
    source, attribute, features = discriminator(torch.zeros(3, 3, 64, 64))
    assert source.shape == (3, 1, 2, 2)  # StarGAN-style patch map over the final 2x2 features
    assert attribute.shape == (3,)
    assert len(features) == 5  # log2(64) - 1 layers, one feature map each for L_fm
    assert [f.shape[-1] for f in features] == [32, 16, 8, 4, 2]


def test_cyclegan_generator_and_patch_discriminator_shapes():
    config = CycleGANConfig(generator_channels=4, discriminator_channels=4, num_residual_blocks=2)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    assert ResnetGenerator(config)(image).shape == image.shape
    # 70x70 PatchGAN: three stride-2 convolutions, then two stride-1 4x4 convolutions.
    assert PatchDiscriminator(config)(image).shape == (2, 1, 2, 2)


def test_image_pool_fills_then_mixes_history_and_round_trips_its_state():
    torch.manual_seed(0)
    pool = ImagePool(4, (3, 2, 2))
    first = torch.arange(4 * 12, dtype=torch.float32).view(4, 3, 2, 2)
    assert torch.equal(pool.query(first), first)  # not yet full: images pass through and are stored
    assert int(pool.count) == 4
    newer = -torch.ones(64, 3, 2, 2)
    returned = pool.query(newer)
    from_history = (returned != -1).flatten(1).any(dim=1)
    assert 0 < int(from_history.sum()) < 64  # about half come from the history
    restored = ImagePool(4, (3, 2, 2))
    restored.load_state_dict(pool.state_dict())
    assert torch.equal(restored.images, pool.images) and int(restored.count) == 4


def test_image_pool_returns_the_dtype_it_is_given():
    torch.manual_seed(0)
    pool = ImagePool(2, (3, 2, 2))
    pool.query(torch.zeros(2, 3, 2, 2))
    returned = pool.query(torch.ones(16, 3, 2, 2, dtype=torch.bfloat16))
    assert returned.dtype == torch.bfloat16 and (returned == 0).any()


def test_judge_outputs_one_logit_per_attribute():
    assert AttributeJudge(2, channels=4)(torch.zeros(5, 3, 32, 32)).shape == (5, 2)


def _weighted_layers(network):
    return [layer for layer in network.modules()
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]


def test_cyclegan_networks_are_initialised_from_n_0_002_with_zero_biases():
    """Zhu et al. [5] §7.1 / their init_weights("normal", 0.02); at full width (ngf = ndf = 64)."""
    torch.manual_seed(0)
    networks = [ResnetGenerator(CycleGANConfig()), PatchDiscriminator(CycleGANConfig())]
    assert any(isinstance(layer, torch.nn.ConvTranspose2d) for layer in _weighted_layers(networks[0]))
    for network in networks:
        layers = _weighted_layers(network)
        for layer in layers:
            weight = layer.weight.detach()
            if weight.numel() >= 1000:  # std of >= 1,000 draws: within 10 % of 0.02 (4.5 sigma)
                assert abs(weight.std().item() - 0.02) < 0.002, (layer, weight.std().item())
                assert abs(weight.mean().item()) < 0.002
            assert layer.bias is None or torch.count_nonzero(layer.bias) == 0
        assert not [layer for layer in network.modules()  # [5]'s InstanceNorm has no affine parameters
                    if isinstance(layer, torch.nn.InstanceNorm2d) and layer.affine]
    # Seed-deterministic: torch's global generator at construction.
    torch.manual_seed(0)
    again = ResnetGenerator(CycleGANConfig())
    assert all(torch.equal(a, b) for a, b in zip(networks[0].state_dict().values(), again.state_dict().values()))


def test_paper_networks_keep_pytorchs_default_initialisation():
    """The paper (Tu et al.) gives no initialisation: G and D keep torch's default, weights and
    biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (std bound/sqrt(3)), BatchNorm weight 1 and bias 0."""
    torch.manual_seed(0)
    networks = [SkipReducedUNet(128, UNetConfig()), AuxiliaryClassifierDiscriminator(128, DiscriminatorConfig())]
    for network in networks:
        biases = []
        for layer in _weighted_layers(network):
            weight = layer.weight.detach()
            bound = 1 / weight[0].numel() ** 0.5  # torch's fan_in: size(1) x receptive field
            assert weight.abs().max() <= bound
            if weight.numel() >= 1000:
                assert abs(weight.std().item() - bound / 3 ** 0.5) < 0.1 * bound / 3 ** 0.5
            if layer.bias is not None:
                biases.append(layer.bias.detach())
        assert biases and all(torch.count_nonzero(bias) > 0 for bias in biases if bias.numel() > 1)
        for layer in network.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                assert torch.all(layer.weight == 1) and torch.all(layer.bias == 0)
