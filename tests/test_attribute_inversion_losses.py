"""Objectives of attribute_inversion against Eqs. 1-7 written out by hand, and CycleGAN's."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from attribute_inversion import losses
from attribute_inversion.config import CycleGANConfig, InversionLossConfig


def test_reconstruction_loss_is_zero_for_an_identity_pair():
    image = torch.rand(4, 3, 16, 16) * 2 - 1
    identity = nn.Identity()
    assert losses.reconstruction_loss(image, identity(identity(image))).item() == 0.0
    shifted = image + 0.25
    assert losses.reconstruction_loss(image, shifted).item() == pytest.approx(0.25)


def test_feature_matching_is_normalised_by_the_size_of_each_layer():
    real = [torch.zeros(2, 4, 8, 8), torch.zeros(2, 16, 2, 2)]
    assert losses.feature_matching_loss(real, [r.clone() for r in real]).item() == 0.0
    # A difference of 0.5 everywhere costs 0.5 per layer whatever the layer's size (Eq. 5, 1/N_i).
    assert losses.feature_matching_loss(real, [r + 0.5 for r in real]).item() == pytest.approx(1.0)


def test_feature_matching_treats_real_features_as_targets():
    real = torch.ones(1, 2, 2, 2, requires_grad=True)
    reconstructed = torch.zeros(1, 2, 2, 2, requires_grad=True)
    losses.feature_matching_loss([real], [reconstructed]).backward()
    assert real.grad is None and reconstructed.grad is not None


def test_adversarial_losses_match_equation_1():
    real_logits, fake_logits = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sigmoid = torch.sigmoid
    l_adv = torch.log(sigmoid(real_logits)).mean() + torch.log(1 - sigmoid(fake_logits)).mean()
    assert losses.discriminator_adversarial_loss(real_logits, fake_logits).item() == pytest.approx(-l_adv.item())
    assert losses.generator_adversarial_loss(fake_logits, "minimax").item() == pytest.approx(
        torch.log(1 - sigmoid(fake_logits)).mean().item())
    assert losses.generator_adversarial_loss(fake_logits, "non_saturating").item() == pytest.approx(
        -torch.log(sigmoid(fake_logits)).mean().item())
    with pytest.raises(ValueError):
        losses.generator_adversarial_loss(fake_logits, "wasserstein")


def test_classification_loss_uses_the_given_labels():
    logits = torch.tensor([3.0, -3.0])
    labels = torch.tensor([1.0, 0.0])
    right = losses.attribute_classification_loss(logits, labels).item()
    inverted = losses.attribute_classification_loss(logits, 1 - labels).item()
    assert right == pytest.approx(-math.log(torch.sigmoid(torch.tensor(3.0)).item()))
    assert inverted > right  # Eq. 3 asks G(x) to carry c' = 1 - c


def test_generator_and_discriminator_objectives_use_the_paper_weights():
    weights = InversionLossConfig()
    assert (weights.lambda_cls_fake, weights.lambda_rec, weights.lambda_fm, weights.lambda_cls_real) == (1, 10, 1, 1)
    terms = losses.InversionGeneratorTerms(*(torch.tensor(v) for v in (1.0, 2.0, 3.0, 4.0)))
    assert terms.total(weights).item() == pytest.approx(1 + 2 + 10 * 3 + 4)
    assert losses.discriminator_objective(torch.tensor(1.5), torch.tensor(0.5), weights).item() == 2.0


def test_cyclegan_losses_are_lsgan_with_cycle_and_identity_weights():
    config = CycleGANConfig()
    ones, zeros = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    assert losses.cyclegan_discriminator_loss(ones, zeros).item() == 0.0
    assert losses.cyclegan_discriminator_loss(zeros, ones).item() == 1.0  # 0.5 * (1 + 1)
    image = torch.zeros(1, 3, 4, 4)
    off = image + 1.0
    total, terms = losses.cyclegan_generator_loss(ones, ones, image, image, off, image, off, image, config)
    assert terms["adversarial"].item() == 0.0
    assert terms["cycle"].item() == 1.0 and terms["identity"].item() == 1.0
    assert total.item() == pytest.approx(10 * 1.0 + 0.5 * 10 * 1.0)
    no_identity, terms = losses.cyclegan_generator_loss(ones, ones, image, image, off, image, None, None, config)
    assert "identity" not in terms and no_identity.item() == pytest.approx(10.0)
