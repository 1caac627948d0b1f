"""Pick a planner by name: ``plan(cost_fn, mean, PlanConfig)`` -> PlanResult."""

from __future__ import annotations

from typing import Callable

import torch

from ..config import PlanConfig
from .cem import cem_plan
from .grad import grad_plan
from .mppi import mppi_plan
from .result import CostFn, PlanResult

PLANNERS: dict[str, tuple[Callable[..., PlanResult], Callable[[PlanConfig], object]]] = {
    "cem": (cem_plan, PlanConfig.cem),
    "mppi": (mppi_plan, PlanConfig.mppi),
    "adam": (grad_plan, PlanConfig.grad),
}
"""Planner name (``PlanConfig.planner``) -> (planner function, cutter of its config from a PlanConfig)."""


def plan(
    cost_fn: CostFn,
    mean: torch.Tensor,
    cfg: PlanConfig,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> PlanResult:
    """Run the planner ``cfg.planner`` on its cut of ``cfg``; arguments as for :func:`cem_plan`."""
    if cfg.planner not in PLANNERS:
        raise ValueError(f"Unknown planner {cfg.planner!r}; known planners: {sorted(PLANNERS)}.")
    planner, cut = PLANNERS[cfg.planner]
    return planner(cost_fn, mean, cut(cfg), low, high, generator)
