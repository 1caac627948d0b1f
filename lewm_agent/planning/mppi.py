"""MPPI over action sequences: a softmax-weighted mean of all samples, batched over environments.

Iteration:

    sample  S sequences ~ N(mean, std^2), clamped to [low, high]; sample 0 = the current mean
    score   cost_fn on all E * S sequences at once
    refit   w = softmax(-(c - c_min) / (temperature * (c_median - c_min) + eps)) per env (scale-free),
            mean <- sum w x, std <- sqrt(sum w (x - mean)^2) floored at min_std
    select  ``mean``: the final weighted mean, scored once more (S=1); ``best``: the lowest-cost
            sequence scored during the search, with its known cost
"""

from __future__ import annotations

import torch

from ..config import MPPIConfig
from .noise import clamp, sample_around
from .result import BestSoFar, CostFn, Diagnostics, PlanResult


def mppi_weights(costs: torch.Tensor, temperature: float) -> torch.Tensor:
    """(E, S) costs -> (E, S) weights summing to 1 per env; the spread c_median - c_min sets the scale."""
    c_min = costs.min(dim=1, keepdim=True).values
    c_med = costs.median(dim=1, keepdim=True).values
    eps = torch.finfo(costs.dtype).tiny  # all costs equal -> 0/eps = 0 -> uniform weights
    return torch.softmax(-(costs - c_min) / (temperature * (c_med - c_min) + eps), dim=1)


def mppi_plan(
    cost_fn: CostFn,
    mean: torch.Tensor,
    cfg: MPPIConfig,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> PlanResult:
    """Minimise ``cost_fn`` over action sequences by MPPI, for E environments at once.

    Args:
        cost_fn: scores (E, S, H, Ad) candidate sequences -> (E, S) costs.
        mean: (E, H, Ad) initial mean (normalised units).
        cfg: an :class:`MPPIConfig` (a PlanConfig is cut down with ``.mppi()``).
        low, high: (Ad,) bounds of one action block in normalised units (None = unbounded).
        generator: torch generator for reproducible sampling (on ``mean.device``).

    Diagnostics: ``elite_cost`` is the weight-averaged cost (the soft elites' cost).
    """
    if hasattr(cfg, "mppi"):
        cfg = cfg.mppi()
    cfg.validate()
    S = cfg.samples
    mean = mean.clone()
    std = torch.full_like(mean, cfg.init_std)
    best = BestSoFar(mean)
    diag = Diagnostics()
    for _ in range(cfg.iterations):
        # sample: (E, S, H, Ad), sample 0 = the mean
        samples = sample_around(mean, std, S, 0.0, low, high, generator)
        # score
        costs = cost_fn(samples)  # (E, S)
        best.update(samples, costs)
        # refit: softmax-weighted mean and std
        w = mppi_weights(costs, cfg.temperature).to(samples.dtype)  # (E, S)
        wx = w[:, :, None, None]
        mean = (wx * samples).sum(dim=1)  # (E, H, Ad)
        std = (wx * (samples - mean.unsqueeze(1)).pow(2)).sum(dim=1).sqrt().clamp_min(cfg.min_std)
        diag.record((w * costs).sum(dim=1), costs.min(dim=1).values, std, S)
    # select
    if cfg.select == "best":
        actions, cost = best.actions, best.cost
    else:
        actions = clamp(mean, low, high)
        cost = cost_fn(actions.unsqueeze(1))[:, 0]
    return PlanResult(actions=actions, cost=cost, std=std, iterations=cfg.iterations,
                      diagnostics=diag.as_dict())
