"""Objectives of Tu et al. §2.1 (Eqs. 1-7) and of the CycleGAN baseline [5] §4.

Probabilities are handled as logits (``binary_cross_entropy_with_logits``) for numerical
stability; each function says which equation it implements.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import CycleGANConfig, InversionLossConfig


def discriminator_adversarial_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-L_adv of Eq. 1: D maximises E[log D_s(x)] + E[log(1 - D_s(G(x)))]."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_adversarial_loss(fake_logits: torch.Tensor, form: str = "non_saturating") -> torch.Tensor:
    """G's part of Eq. 1. ``"minimax"``: E[log(1 - D_s(G(x)))] as written; ``"non_saturating"``:
    -E[log D_s(G(x))] (Goodfellow et al. [2] §3), same fixed point, useful gradients early on."""
    if form == "minimax":
        return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    if form == "non_saturating":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    raise ValueError(f"unknown generator adversarial form {form!r} (minimax | non_saturating)")


def attribute_classification_loss(attribute_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """E[-log D_cls(c | x)] for a binary attribute: Eq. 2 with the true labels c (real images,
    trains D) and Eq. 3 with the inverted labels c' = 1 - c (generated images, trains G)."""
    return F.binary_cross_entropy_with_logits(attribute_logits, labels.to(attribute_logits.dtype))


def reconstruction_loss(image: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Eq. 4, L_rec = E_x ||x - G(G(x))||_1, averaged over pixels and channels."""
    return (image - reconstruction).abs().mean()


def feature_matching_loss(real_features: Sequence[torch.Tensor],
                          reconstructed_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Eq. 5, L_fm = E_x sum_i (1/N_i) ||D_i(x) - D_i(G(G(x)))||_1 over D's layers.

    N_i is taken as the number of elements of layer i (pixels x channels), as in pix2pixHD [9],
    whose feature-matching loss the paper uses. Real features are targets (no gradient)."""
    if len(real_features) != len(reconstructed_features) or not real_features:
        raise ValueError("feature_matching_loss needs the same non-zero number of layers on both sides")
    return sum((real.detach() - reconstructed).abs().mean()
               for real, reconstructed in zip(real_features, reconstructed_features))


@dataclass
class InversionGeneratorTerms:
    adversarial: torch.Tensor
    classification_fake: torch.Tensor
    reconstruction: torch.Tensor
    feature_matching: torch.Tensor

    def total(self, weights: InversionLossConfig) -> torch.Tensor:
        """Eq. 6: L_G = L_adv + lambda_1 L_cls_fake + lambda_2 L_rec + lambda_3 L_fm."""
        return (self.adversarial + weights.lambda_cls_fake * self.classification_fake
                + weights.lambda_rec * self.reconstruction + weights.lambda_fm * self.feature_matching)


def discriminator_objective(adversarial: torch.Tensor, classification_real: torch.Tensor,
                            weights: InversionLossConfig) -> torch.Tensor:
    """Eq. 7: L_D = -L_adv + lambda_4 L_cls_real (``adversarial`` is already -L_adv)."""
    return adversarial + weights.lambda_cls_real * classification_real


# --------------------------------------------------------------------------- CycleGAN [5]


def lsgan_loss(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss used by [5] §4 (Mao et al.) in place of the log-likelihood."""
    target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
    return F.mse_loss(logits, target)


def cyclegan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """[5] §7.1: the discriminator objective is halved to slow D relative to G."""
    return 0.5 * (lsgan_loss(real_logits, True) + lsgan_loss(fake_logits, False))


def cyclegan_generator_loss(fake_b_logits: torch.Tensor, fake_a_logits: torch.Tensor,
                            real_a: torch.Tensor, real_b: torch.Tensor,
                            reconstructed_a: torch.Tensor, reconstructed_b: torch.Tensor,
                            identity_a: torch.Tensor | None, identity_b: torch.Tensor | None,
                            config: CycleGANConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """[5] Eq. 3 plus the identity loss of §5.2: LSGAN terms for G_AB and G_BA, cycle L1 weighted
    by lambda_cycle, identity L1 weighted by lambda_identity x lambda_cycle (as in [5]'s code).
    ``identity_a = G_BA(a)`` and ``identity_b = G_AB(b)``; ``None`` when lambda_identity is 0."""
    terms = {
        "adversarial": lsgan_loss(fake_b_logits, True) + lsgan_loss(fake_a_logits, True),
        "cycle": F.l1_loss(reconstructed_a, real_a) + F.l1_loss(reconstructed_b, real_b),
    }
    total = terms["adversarial"] + config.lambda_cycle * terms["cycle"]
    if identity_a is not None and identity_b is not None:
        terms["identity"] = F.l1_loss(identity_a, real_a) + F.l1_loss(identity_b, real_b)
        total = total + config.lambda_identity * config.lambda_cycle * terms["identity"]
    return total, terms
