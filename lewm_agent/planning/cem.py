"""Cross-entropy method over action sequences, batched over many environments at once.

The planner knows nothing of the model: it takes a cost function that scores candidate
sequences for every environment in one call,

    cost_fn(actions (E, S, H, Ad)) -> costs (E, S)

where E is the number of environments, S samples per environment, H the horizon (action
blocks) and Ad the dimension of one action block (normalised units). One CEM iteration:

    sample  S sequences ~ N(mean, std^2), clamped to [low, high]; sample 0 = the current mean
    score   cost_fn on all E*S sequences at once
    refit   mean, std <- mean and std of the ``elites`` lowest-cost samples (std >= min_std)

The plan is the final mean (clamped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..config import PlanConfig

CostFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class PlanResult:
    actions: torch.Tensor
    """(E, H, Ad) planned action blocks (normalised units)."""
    cost: torch.Tensor
    """(E,) cost of the returned plan (from the last iteration's scoring of the mean)."""
    std: torch.Tensor
    """(E, H, Ad) final sampling std."""


def cem_plan(
    cost_fn: CostFn,
    mean: torch.Tensor,
    cfg: PlanConfig,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> PlanResult:
    """Minimise ``cost_fn`` over action sequences by CEM, for E environments at once.

    Args:
        cost_fn: scores (E, S, H, Ad) candidate sequences -> (E, S) costs.
        mean: (E, H, Ad) initial mean (zeros, or the warm-started tail of the last plan).
        cfg: samples, iterations, elites, init_std, min_std.
        low, high: (Ad,) bounds of one action block in normalised units (None = unbounded).
        generator: torch generator for reproducible sampling (on ``mean.device``).
    """
    E, H, Ad = mean.shape
    S, K = cfg.samples, cfg.elites
    mean = mean.clone()
    std = torch.full_like(mean, cfg.init_std)
    best_cost = torch.full((E,), float("inf"), device=mean.device)

    def clamp(x: torch.Tensor) -> torch.Tensor:
        if low is None or high is None:
            return x
        return torch.maximum(torch.minimum(x, high), low)

    for _ in range(cfg.iterations):
        # sample: (E, S, H, Ad); sample 0 is the current mean, so the plan never gets worse than it
        noise = torch.randn((E, S, H, Ad), device=mean.device, generator=generator)
        samples = clamp(mean.unsqueeze(1) + std.unsqueeze(1) * noise)
        samples[:, 0] = clamp(mean)
        # score: one call for every sample of every environment
        costs = cost_fn(samples)  # (E, S)
        best_cost = costs[:, 0]
        # refit on the elites
        elite_idx = torch.topk(costs, K, dim=1, largest=False).indices  # (E, K)
        elites = torch.gather(samples, 1, elite_idx[:, :, None, None].expand(E, K, H, Ad))  # (E, K, H, Ad)
        mean = elites.mean(dim=1)
        std = elites.std(dim=1, unbiased=False).clamp_min(cfg.min_std) if K > 1 else std
    return PlanResult(actions=clamp(mean), cost=best_cost, std=std)
