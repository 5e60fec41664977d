"""Loss terms and the loss objects families own (in the spirit of NVlabs' ``training/loss.py``).

StyleGAN2: non-saturating logistic loss, R1 on reals, path-length regularisation.
BigGAN: hinge loss.
DGL-GAN: :meth:`AdversarialLoss.dgl_term` = Adv(G, D_bar), the family's own generator loss with the frozen
teacher discriminator D_bar as the critic (Eq. 4 of the paper): softplus(-D_bar(G(z))) for StyleGAN2,
-D_bar(G(z), c) for BigGAN.  It is the only thing stage II adds.

Every function returns a scalar mean over the batch except the two regularisers, which return one
value per sample (the training loop weights and averages them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def g_nonsaturating(fake_logits: Tensor) -> Tensor:
    """StyleGAN2 generator loss: E[softplus(-D(G(z)))] = -log sigmoid(D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def d_logistic(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """StyleGAN2 discriminator loss: E[softplus(D(G(z)))] + E[softplus(-D(x))]."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def g_hinge(fake_logits: Tensor) -> Tensor:
    """BigGAN generator loss: -E[D(G(z))]."""
    return -fake_logits.mean()


def d_hinge(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """BigGAN discriminator loss: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def r1_penalty(real_img: Tensor, real_logits: Tensor) -> Tensor:
    """Per-sample ||grad_x D(x)||^2 (``real_img`` must require grad); weight it by gamma / 2."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_img, create_graph=True)
    return grad.square().sum(dim=[1, 2, 3])


def path_lengths(fake_img: Tensor, ws: Tensor) -> Tensor:
    """Per-sample ||J_w^T y||, y ~ N(0, I) / sqrt(H W): the Jacobian norms the path-length penalty
    pulls towards their running mean ``a`` as (length - a)^2."""
    noise = torch.randn_like(fake_img) / math.sqrt(fake_img.shape[2] * fake_img.shape[3])
    (grad,) = torch.autograd.grad((fake_img * noise).sum(), ws, create_graph=True)
    return grad.square().sum(dim=2).mean(dim=1).sqrt()


@dataclass(frozen=True)
class AdversarialLoss:
    """One adversarial objective: the generator and discriminator losses, both from logits.

    The training loop calls it per phase: ``g_adv`` in G's phase, ``d_adv`` in D's, and in stage II of
    DGL-GAN ``dgl_term`` beside ``g_adv`` on the same fake images.  A family sets one as its ``loss``.
    """

    name: str
    g_loss: Callable[[Tensor], Tensor]
    d_loss: Callable[[Tensor, Tensor], Tensor]

    def g_adv(self, fake_logits: Tensor) -> Tensor:
        """Adv(G, D): the generator's loss given D's logits on G(z)."""
        return self.g_loss(fake_logits)

    def d_adv(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """Adv(D): the discriminator's loss given its logits on reals and on G(z)."""
        return self.d_loss(real_logits, fake_logits)

    def dgl_term(self, D_bar: torch.nn.Module, fake_img: Tensor, c: Optional[Tensor]) -> Tensor:
        """Adv(G, D_bar): the generator loss against the frozen teacher discriminator.

        Gradients flow through D_bar into ``fake_img`` (and so into G); D_bar's own parameters are frozen
        (``requires_grad=False``, eval mode) by the caller and are never in an optimiser.
        """
        return self.g_adv(D_bar(fake_img, c))


NONSATURATING = AdversarialLoss("non-saturating logistic", g_nonsaturating, d_logistic)  # StyleGAN2
HINGE = AdversarialLoss("hinge", g_hinge, d_hinge)                                       # BigGAN

__all__ = ["AdversarialLoss", "HINGE", "NONSATURATING", "d_hinge", "d_logistic", "g_hinge", "g_nonsaturating",
           "path_lengths", "r1_penalty"]
