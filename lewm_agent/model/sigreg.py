"""SIGReg: the Sketched Isotropic Gaussian Regulariser of LeJEPA / LeWM.

Cramer-Wold: a distribution is N(0, I) iff every 1-D projection is N(0, 1). For embeddings
Z (T, B, D) (T time steps, each a batch of B embeddings):

1. draw M unit directions u_m in R^D, fresh at every call;
2. project, h = Z u (T, B, M);
3. Epps-Pulley per projection: with phi_B(t) = mean_b exp(i t h_b) and phi_0(t) = exp(-t^2/2),
   T_m = B * integral w(t) |phi_B(t) - phi_0(t)|^2 dt,  w(t) = exp(-t^2/2),
   by the trapezoid rule on [0, t_max], doubled by symmetry;
4. SIGReg = mean over projections and time steps.

Under the null (Z ~ N(0, I)) the expected statistic is about 1.06 whatever B is (the
empirical characteristic function's variance, (1 - exp(-t^2)) / B, times B); a collapsed
batch scores about 0.4 * B.

Distributed: the characteristic-function sums and the batch size are all-reduced over the
process group (differentiably), so every rank computes the statistic of the *global* batch,
and the directions are broadcast from rank 0 so all ranks project alike. The LeWM reference
computes it per rank, which its users report works worse on several GPUs.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn as nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks. Every rank's loss uses the global sum, so the gradient w.r.t. a rank's input
    is the sum over ranks of the incoming gradients: all-reduce again on the way back."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def _all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Differentiable all-reduce (sum); identity outside torch.distributed."""
    return _AllReduceSum.apply(x) if _distributed() else x


class _EmpiricalCF(torch.autograd.Function):
    """Sums over the batch of cos(t_k h) and sin(t_k h): h (T, B, M), t (K,) -> two (T, M, K).

    The same values and gradients as autograd through ``h[..., None] * t``, ``cos``, ``sin`` and
    ``sum(dim=1)``, at about half the cost: cos and sin of the (T, B, M, K) angles are evaluated
    once and kept for the backward pass, where autograd would evaluate sin and cos again and
    build more (T, B, M, K) temporaries, the largest tensors of SIGReg.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        th = h.unsqueeze(-1) * t  # (T, B, M, K)
        cos, sin = torch.cos(th), torch.sin(th)
        del th
        ctx.save_for_backward(cos, sin, t)
        return cos.sum(dim=1), sin.sum(dim=1)

    @staticmethod
    def backward(ctx, grad_cos: torch.Tensor, grad_sin: torch.Tensor):
        cos, sin, t = ctx.saved_tensors
        # d/dh sum_k g_cos,k cos(t_k h) + g_sin,k sin(t_k h) = sum_k t_k (g_sin,k cos - g_cos,k sin)
        grad_h = (cos * (grad_sin * t).unsqueeze(1)).sum(-1)
        grad_h -= (sin * (grad_cos * t).unsqueeze(1)).sum(-1)
        return grad_h, None


class SIGReg(nn.Module):
    """Epps-Pulley SIGReg over random projections; ``forward(z)`` with z (B, D) or (T, B, D) -> scalar."""

    def __init__(self, num_projections: int = 1024, num_knots: int = 17, t_max: float = 3.0):
        super().__init__()
        if num_projections < 1 or num_knots < 2 or t_max <= 0:
            raise ValueError("SIGReg needs num_projections >= 1, num_knots >= 2 and t_max > 0.")
        self.num_projections = num_projections
        t = torch.linspace(0.0, t_max, num_knots)
        dt = t_max / (num_knots - 1)
        trapezoid = torch.full((num_knots,), dt)
        trapezoid[0] = trapezoid[-1] = dt / 2
        # weights: trapezoid x window w(t) x 2 (the integral over [-t_max, t_max] is symmetric)
        self.register_buffer("t", t, persistent=False)
        self.register_buffer("weights", 2.0 * trapezoid * torch.exp(-0.5 * t**2), persistent=False)
        self.register_buffer("phi0", torch.exp(-0.5 * t**2), persistent=False)

    def directions(self, dim: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        """M unit vectors (D, M), identical on every rank (broadcast from rank 0)."""
        u = torch.randn(dim, self.num_projections, device=device, generator=generator)
        u = u / u.norm(dim=0, keepdim=True)
        if _distributed():
            dist.broadcast(u, src=0)
        return u

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if z.dim() == 2:
            z = z.unsqueeze(0)  # (1, B, D)
        z = z.float()  # the statistic is computed in fp32 even under autocast
        T, B, D = z.shape
        u = self.directions(D, z.device, generator)  # (D, M)
        h = z @ u  # (T, B, M)
        # The knot t = 0 adds exactly nothing (cos 0 = 1 = phi_0(0), sin 0 = 0): skip it.
        t, phi0, weights = self.t[1:], self.phi0[1:], self.weights[1:]
        # sums over the local batch, then over all ranks: the global batch's characteristic function
        cos_sum, sin_sum = _EmpiricalCF.apply(h, t)  # (T, M, K-1) each
        cos_sum, sin_sum = _all_reduce_sum(cos_sum), _all_reduce_sum(sin_sum)
        n = B
        if _distributed():
            count = torch.tensor([float(B)], device=z.device)
            dist.all_reduce(count)
            n = count.item()
        err = (cos_sum / n - phi0) ** 2 + (sin_sum / n) ** 2  # |phi_B - phi_0|^2, (T, M, K-1)
        statistic = n * (err @ weights)  # (T, M)
        return statistic.mean()


def epps_pulley_null_mean() -> float:
    """Expected SIGReg value for perfect N(0, I) samples: integral of w(t)(1 - e^{-t^2}) over the line.

    Closed form sqrt(2 pi) - sqrt(2 pi / 3) ~ 1.06; truncating the integral at t_max = 3 barely changes it.
    """
    return math.sqrt(2 * math.pi) - math.sqrt(2 * math.pi / 3)
