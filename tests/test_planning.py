"""CEM: finds the minimum of a known quadratic, batched over envs, clamps, sample 0 = mean."""

import torch

from lewm_agent.config import PlanConfig
from lewm_agent.planning import cem_plan, latent_goal_cost


def _quadratic(target):
    def cost(actions):  # (E, S, H, Ad) -> (E, S)
        return (actions - target[:, None]).pow(2).sum(dim=(-1, -2))
    return cost


def test_cem_finds_the_minimum_of_a_quadratic_for_every_env_at_once():
    E, H, Ad = 4, 3, 2
    target = torch.linspace(-0.8, 0.8, E * H * Ad).reshape(E, H, Ad)
    calls = []

    def cost(actions):
        calls.append(actions.shape)
        return _quadratic(target)(actions)

    cfg = PlanConfig(samples=200, iterations=15, elites=20, horizon=H, receding_horizon=H)
    result = cem_plan(cost, torch.zeros(E, H, Ad), cfg, generator=torch.Generator().manual_seed(0))
    assert result.actions.shape == (E, H, Ad)
    assert torch.allclose(result.actions, target, atol=0.05)
    assert len(calls) == cfg.iterations and calls[0] == (E, cfg.samples, H, Ad)  # one batched call per iteration


def test_actions_are_clamped_to_bounds():
    target = torch.full((1, 2, 2), 5.0)
    cfg = PlanConfig(samples=64, iterations=5, elites=8, horizon=2, receding_horizon=2)
    low, high = torch.full((2,), -1.0), torch.full((2,), 1.0)
    result = cem_plan(_quadratic(target), torch.zeros(1, 2, 2), cfg, low, high, torch.Generator().manual_seed(0))
    assert result.actions.max() <= 1.0 and torch.allclose(result.actions, torch.ones(1, 2, 2), atol=0.05)


def test_sample_zero_is_the_mean_so_a_perfect_warm_start_is_kept():
    target = torch.randn(2, 3, 2)
    seen = []

    def cost(actions):
        seen.append(actions[:, 0].clone())
        return _quadratic(target)(actions)

    cfg = PlanConfig(samples=16, iterations=1, elites=1, horizon=3, receding_horizon=3)
    result = cem_plan(cost, target.clone(), cfg, generator=torch.Generator().manual_seed(0))
    assert torch.equal(seen[0], target)
    assert torch.allclose(result.actions, target)  # the single elite is the mean itself (cost 0)


def test_latent_goal_cost_modes():
    z = torch.zeros(2, 3, 4)
    z[:, -1] = 1.0
    goal = torch.zeros(2, 4)
    assert torch.equal(latent_goal_cost(z, goal, "terminal"), torch.full((2,), 4.0))
    assert torch.equal(latent_goal_cost(z, goal, "all"), torch.full((2,), 4.0))
    z[:, 0] = 1.0
    assert torch.equal(latent_goal_cost(z, goal, "all"), torch.full((2,), 8.0))
