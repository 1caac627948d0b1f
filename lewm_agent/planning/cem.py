"""Cross-entropy method over action sequences with the iCEM options, batched over environments.

The planner knows nothing of the model: it takes a cost function that scores candidate
sequences for every environment in one call,

    cost_fn(actions (E, S, H, Ad)) -> costs (E, S)

where E is the number of environments, S samples per environment (varies between calls), H the
horizon (action blocks) and Ad the dimension of one action block (normalised units). Iteration i:

    sample  n_i new sequences ~ N(mean, std^2) (white or 1/f^beta noise along H), clamped to
            [low, high]; sample 0 = the current mean; n_i = max(min(2K, S), int(S / decay**i))
    score   cost_fn on the E * n_i new sequences at once; the ``keep_elites`` best elites of the
            last iteration join the population with their known costs (not scored again)
    refit   mean, std <- mean and std of the K lowest-cost members (std >= min_std); stop early
            once every env's mean elite std < early_stop_std
    select  ``mean``: the final mean, scored once more (S=1) for its cost; ``best``: the
            lowest-cost sequence scored during the search, with its known cost

Plain CEM (LeWM reference) is the default CEMConfig: white noise, no kept elites, constant sample
count, no early stop, select mean; it draws the same samples as the pre-iCEM code for one seed.
iCEM: Pinneri et al. 2020, "Sample-efficient cross-entropy method for real-time planning".
"""

from __future__ import annotations

import torch

from ..config import CEMConfig
from .noise import clamp, sample_around
from .result import BestSoFar, CostFn, Diagnostics, PlanResult


def samples_at(cfg: CEMConfig, i: int) -> int:
    """New sequences scored per env at iteration i (0-based): ``max(min(2K, S), int(S / decay**i))``.

    The floor is ``min(2 * elites, samples)`` so that iteration 0 always scores ``samples``."""
    return max(min(2 * cfg.elites, cfg.samples), int(cfg.samples / cfg.sample_decay ** i))


def cem_plan(
    cost_fn: CostFn,
    mean: torch.Tensor,
    cfg: CEMConfig,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> PlanResult:
    """Minimise ``cost_fn`` over action sequences by (i)CEM, for E environments at once.

    Args:
        cost_fn: scores (E, S, H, Ad) candidate sequences -> (E, S) costs.
        mean: (E, H, Ad) initial mean (zeros, or the warm-started tail of the last plan).
        cfg: a :class:`CEMConfig` (a PlanConfig is cut down with ``.cem()``).
        low, high: (Ad,) bounds of one action block in normalised units (None = unbounded).
        generator: torch generator for reproducible sampling (on ``mean.device``).

    Returns:
        PlanResult; cost_fn is called once per iteration, plus once with S=1 for select="mean".
    """
    if hasattr(cfg, "cem"):
        cfg = cfg.cem()
    cfg.validate()
    E, H, Ad = mean.shape
    K = cfg.elites
    mean = mean.clone()
    std = torch.full_like(mean, cfg.init_std)
    kept: tuple[torch.Tensor, torch.Tensor] | None = None  # (E, k, H, Ad) sequences, (E, k) costs
    best = BestSoFar(mean)
    diag = Diagnostics()
    it = 0
    while it < cfg.iterations:
        n = samples_at(cfg, it)
        # sample: (E, n, H, Ad); sample 0 is the current mean, so a perfect warm start is kept
        samples = sample_around(mean, std, n, cfg.noise_beta, low, high, generator)
        # score: one call for every new sample of every env; kept elites bring their known costs
        costs = cost_fn(samples)  # (E, n)
        best.update(samples, costs)
        if kept is not None:
            samples, costs = torch.cat([samples, kept[0]], dim=1), torch.cat([costs, kept[1]], dim=1)
        # refit on the K lowest-cost members of the population
        elite_cost, elite_idx = torch.topk(costs, K, dim=1, largest=False)  # (E, K), ascending
        elites = torch.gather(samples, 1, elite_idx[:, :, None, None].expand(E, K, H, Ad))  # (E, K, H, Ad)
        mean = elites.mean(dim=1)
        elite_std = elites.std(dim=1, unbiased=False) if K > 1 else std
        std = elite_std.clamp_min(cfg.min_std) if K > 1 else std
        if cfg.keep_elites > 0:
            k = cfg.keep_elites
            kept = (elites[:, :k], elite_cost[:, :k])
        it += 1
        diag.record(elite_cost.mean(dim=1), costs.min(dim=1).values, std, n)
        if cfg.early_stop_std > 0 and bool((elite_std.mean(dim=(1, 2)) < cfg.early_stop_std).all()):
            break
    # select
    if cfg.select == "best":
        actions, cost = best.actions, best.cost
    else:
        actions = clamp(mean, low, high)
        cost = cost_fn(actions.unsqueeze(1))[:, 0]
    return PlanResult(actions=actions, cost=cost, std=std, iterations=it, diagnostics=diag.as_dict())
