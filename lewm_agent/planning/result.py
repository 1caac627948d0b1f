"""What every planner returns, and the bookkeeping the planners share (diagnostics, best-so-far)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

CostFn = Callable[[torch.Tensor], torch.Tensor]
"""``cost_fn(actions (E, S, H, Ad)) -> costs (E, S)``; S may differ between calls."""

DIAGNOSTICS = ("elite_cost", "best_cost", "std", "samples")


@dataclass
class PlanResult:
    actions: torch.Tensor
    """(E, H, Ad) planned action blocks (normalised units), inside [low, high]."""
    cost: torch.Tensor
    """(E,) cost of exactly ``actions`` as scored by cost_fn."""
    std: torch.Tensor
    """(E, H, Ad) final sampling std (normalised units; zeros for the gradient planner)."""
    iterations: int = 0
    """Iterations actually run (fewer than configured after an early stop)."""
    diagnostics: dict[str, list[float]] = field(default_factory=dict)
    """One value per iteration run, each a mean over envs: ``elite_cost`` (mean cost of the elites,
    or the planner's analogue), ``best_cost`` (lowest cost of the iteration), ``std`` (mean sampling
    std after the refit), ``samples`` (sequences scored per env, i.e. cost_fn rows / E)."""


class Diagnostics:
    """Collects per-iteration diagnostics as tensors (no device sync per iteration) -> lists of floats."""

    def __init__(self) -> None:
        self._rows: list[torch.Tensor] = []

    def record(self, elite_cost: torch.Tensor, best_cost: torch.Tensor, std: torch.Tensor, samples: int) -> None:
        """elite_cost, best_cost: (E,); std: (E, H, Ad); samples: sequences scored per env."""
        self._rows.append(torch.stack([
            elite_cost.detach().float().mean(), best_cost.detach().float().mean(),
            std.detach().float().mean(), torch.tensor(float(samples), device=std.device),
        ]))

    def as_dict(self) -> dict[str, list[float]]:
        if not self._rows:
            return {k: [] for k in DIAGNOSTICS}
        cols = torch.stack(self._rows).cpu().T.tolist()  # one sync for the whole plan
        return dict(zip(DIAGNOSTICS, cols))


class BestSoFar:
    """The lowest-cost sequence scored so far per env, with its (known) cost."""

    def __init__(self, mean: torch.Tensor) -> None:
        E = mean.shape[0]
        self.actions = mean.detach().clone()  # (E, H, Ad), replaced at the first update
        self.cost = torch.full((E,), float("inf"), device=mean.device)

    def update(self, samples: torch.Tensor, costs: torch.Tensor) -> None:
        """samples: (E, S, H, Ad) sequences as scored; costs: (E, S)."""
        c, i = costs.detach().min(dim=1)  # (E,)
        better = c < self.cost
        picked = samples.detach()[torch.arange(len(i), device=i.device), i]  # (E, H, Ad)
        self.actions = torch.where(better[:, None, None], picked.to(self.actions.dtype), self.actions)
        self.cost = torch.where(better, c.to(self.cost.dtype), self.cost)
