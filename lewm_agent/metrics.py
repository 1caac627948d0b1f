"""Collapse metrics of a batch of embeddings (logged during training, asserted in tests)."""

from __future__ import annotations

import torch


def embedding_std(z: torch.Tensor) -> float:
    """Mean over dimensions of the per-dimension std of z (N, D): ~1 for SIGReg'd latents, -> 0 on collapse."""
    z = z.reshape(-1, z.shape[-1]).float()
    return z.std(dim=0).mean().item()


def effective_rank(z: torch.Tensor, eps: float = 1e-12) -> float:
    """exp(entropy) of the normalised singular values of centred z (N, D) (Roy & Vetterli, 2007).

    D for an isotropic cloud, 1 when every embedding lies on one line, ~0 spread when collapsed to a point.
    """
    z = z.reshape(-1, z.shape[-1]).float()
    s = torch.linalg.svdvals(z - z.mean(dim=0, keepdim=True))
    if s.sum() <= eps:
        return 1.0
    p = s / s.sum()
    return torch.exp(-(p * torch.log(p + eps)).sum()).item()


def participation_ratio(z: torch.Tensor) -> float:
    """(sum of variances)^2 / sum of squared variances along the principal axes of z (N, D).

    An effective dimension weighted by variance (Gao et al., 2017): D for an isotropic cloud, ~k when
    k directions carry the variance. Unlike :func:`effective_rank` it ignores directions whose
    variance is negligible next to the leading ones, so it drops on a collapse onto a few axes.
    """
    z = z.reshape(-1, z.shape[-1]).float()
    var = torch.linalg.svdvals(z - z.mean(dim=0, keepdim=True)) ** 2
    if var.sum() <= 0:
        return 0.0
    return (var.sum() ** 2 / (var**2).sum()).item()
