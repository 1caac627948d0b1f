"""Gradient planner: Adam on S action sequences per env through a differentiable cost.

    sample  S sequences: sample 0 = the mean, the others mean + init_std * N(0, 1), clamped
    score   cost_fn on all E * S sequences (with grad), once per Adam step and once after the last
    refit   one Adam step on the sum of costs, then projection into [low, high]
    select  the lowest-cost sequence per env among everything scored (the final scoring included,
            so never worse than the best after the last step), with its known cost
"""

from __future__ import annotations

import torch

from ..config import GradConfig
from .noise import clamp, coloured_noise
from .result import BestSoFar, CostFn, Diagnostics, PlanResult


def grad_plan(
    cost_fn: CostFn,
    mean: torch.Tensor,
    cfg: GradConfig,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> PlanResult:
    """Minimise ``cost_fn`` by Adam on the action sequences, for E environments at once.

    Args:
        cost_fn: scores (E, S, H, Ad) candidate sequences -> (E, S) costs; must be differentiable
            in the actions. Called with grad enabled even if the caller is under ``torch.no_grad()``
            (not under ``torch.inference_mode()``). Gradients flow only to the actions (via
            ``torch.autograd.grad``): model parameters' ``.grad`` is left untouched.
        mean: (E, H, Ad) initial mean (normalised units).
        cfg: a :class:`GradConfig` (a PlanConfig is cut down with ``.grad()``).
        low, high: (Ad,) bounds of one action block in normalised units (None = unbounded).
        generator: torch generator for the initial perturbations (on ``mean.device``).

    Returns:
        PlanResult with ``std`` zeros; cost_fn is called ``iterations + 1`` times with S = samples.
    """
    if hasattr(cfg, "grad"):
        cfg = cfg.grad()
    cfg.validate()
    if torch.is_inference_mode_enabled():
        raise RuntimeError("grad_plan needs autograd: call it outside torch.inference_mode() (no_grad is fine).")
    E, H, Ad = mean.shape
    S = cfg.samples
    mean = mean.detach()
    zeros = torch.zeros_like(mean)
    best = BestSoFar(mean)
    diag = Diagnostics()
    with torch.enable_grad():
        # sample: (E, S, H, Ad), sample 0 = the mean
        noise = coloured_noise((E, S, H, Ad), 0.0, mean.device, generator)
        x = clamp(mean.unsqueeze(1) + cfg.init_std * noise, low, high)
        x[:, 0] = clamp(mean, low, high)
        x = x.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=cfg.lr)
        for _ in range(cfg.iterations):
            # score (with grad)
            costs = cost_fn(x)  # (E, S)
            best.update(x, costs)
            diag.record(costs.detach().mean(dim=1), costs.detach().min(dim=1).values, zeros, S)
            # refit: one Adam step, then project into the bounds
            (x.grad,) = torch.autograd.grad(costs.sum(), [x])
            opt.step()
            with torch.no_grad():
                x.copy_(clamp(x, low, high))
    # score after the last step; select the best sequence scored
    with torch.no_grad():
        best.update(x.detach(), cost_fn(x.detach()))
    return PlanResult(actions=best.actions, cost=best.cost, std=zeros, iterations=cfg.iterations,
                      diagnostics=diag.as_dict())
