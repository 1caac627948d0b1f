"""Planners (CEM/iCEM, MPPI, Adam) on mock costs: minima of known quadratics for several envs at
once, bounds, the returned cost is the returned plan's, default CEM = the reference algorithm,
iCEM options (kept elites, sample decay, early stop, coloured noise), and the dispatcher."""

import pytest
import torch

from lewm_agent.config import CEMConfig, GradConfig, MPPIConfig, PlanConfig
from lewm_agent.planning import PlanResult, cem_plan, grad_plan, latent_goal_cost, mppi_plan, plan
from lewm_agent.planning.cem import samples_at
from lewm_agent.planning.noise import coloured_noise

E, H, Ad = 4, 3, 2
TARGET = torch.linspace(-0.8, 0.8, E * H * Ad).reshape(E, H, Ad)


def _quadratic(target):
    def cost(actions):  # (E, S, H, Ad) -> (E, S)
        return (actions - target[:, None]).pow(2).sum(dim=(-1, -2))
    return cost


class Recorder:
    """Wraps a cost function, keeping every batch it scored."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, actions):
        self.calls.append(actions.detach().clone())
        return self.fn(actions)

    @property
    def rows(self):  # sequences scored per env, per call
        return [c.shape[1] for c in self.calls]


PLANNERS = {
    "cem": (cem_plan, CEMConfig(samples=200, iterations=15, elites=20)),
    "cem-icem": (cem_plan, CEMConfig(samples=200, iterations=15, elites=20, noise_beta=2.0, keep_elites=5,
                                     sample_decay=1.2, min_std=0.01)),
    "mppi": (mppi_plan, MPPIConfig(samples=200, iterations=15, min_std=0.01)),
    "adam": (grad_plan, GradConfig(samples=8, iterations=60, lr=0.1)),
}


def _gen():
    return torch.Generator().manual_seed(0)


@pytest.mark.parametrize("name", list(PLANNERS))
def test_every_planner_finds_the_minimum_of_a_quadratic_for_every_env_at_once(name):
    planner, cfg = PLANNERS[name]
    result = planner(_quadratic(TARGET), torch.zeros(E, H, Ad), cfg, generator=_gen())
    assert isinstance(result, PlanResult)
    assert result.actions.shape == (E, H, Ad) and result.std.shape == (E, H, Ad) and result.cost.shape == (E,)
    assert torch.allclose(result.actions, TARGET, atol=0.05), (result.actions - TARGET).abs().max()
    assert set(result.diagnostics) == {"elite_cost", "best_cost", "std", "samples"}
    assert all(len(v) == result.iterations for v in result.diagnostics.values())


@pytest.mark.parametrize("name", list(PLANNERS))
@pytest.mark.parametrize("select", ["mean", "best"])
def test_bounds_are_respected_and_cost_is_the_cost_of_the_returned_plan(name, select):
    planner, cfg = PLANNERS[name]
    if hasattr(cfg, "select"):
        cfg = type(cfg)(**{**cfg.__dict__, "select": select})
    elif select == "best":
        pytest.skip("the Adam planner always returns its best sequence")
    target = TARGET * 3  # partly outside [-1, 1]
    low, high = torch.full((Ad,), -1.0), torch.full((Ad,), 1.0)
    cost = Recorder(_quadratic(target))
    result = planner(cost, torch.zeros(E, H, Ad), cfg, low, high, _gen())
    for batch in cost.calls:
        assert batch.min() >= -1.0 and batch.max() <= 1.0
    assert result.actions.min() >= -1.0 and result.actions.max() <= 1.0
    assert torch.allclose(result.actions, target.clamp(-1, 1), atol=0.05)
    assert torch.allclose(result.cost, _quadratic(target)(result.actions[:, None])[:, 0])


def _reference_cem(cost_fn, mean, cfg, low=None, high=None, generator=None):
    """The pre-iCEM cem_plan, verbatim (returns the final clamped mean)."""
    E, H, Ad = mean.shape
    S, K = cfg.samples, cfg.elites
    mean = mean.clone()
    std = torch.full_like(mean, cfg.init_std)

    def clamp(x):
        if low is None or high is None:
            return x
        return torch.maximum(torch.minimum(x, high), low)

    for _ in range(cfg.iterations):
        noise = torch.randn((E, S, H, Ad), device=mean.device, generator=generator)
        samples = clamp(mean.unsqueeze(1) + std.unsqueeze(1) * noise)
        samples[:, 0] = clamp(mean)
        costs = cost_fn(samples)
        elite_idx = torch.topk(costs, K, dim=1, largest=False).indices
        elites = torch.gather(samples, 1, elite_idx[:, :, None, None].expand(E, K, H, Ad))
        mean = elites.mean(dim=1)
        std = elites.std(dim=1, unbiased=False).clamp_min(cfg.min_std) if K > 1 else std
    return clamp(mean)


@pytest.mark.parametrize("bounded", [False, True])
def test_default_cem_reproduces_the_reference_algorithm_exactly(bounded):
    cfg = CEMConfig(samples=50, iterations=6, elites=7, min_std=0.02)
    low, high = (torch.full((Ad,), -0.5), torch.full((Ad,), 0.5)) if bounded else (None, None)
    old, new = Recorder(_quadratic(TARGET)), Recorder(_quadratic(TARGET))
    ref = _reference_cem(old, torch.zeros(E, H, Ad), cfg, low, high, _gen())
    result = cem_plan(new, torch.zeros(E, H, Ad), cfg, low, high, _gen())
    assert len(new.calls) == cfg.iterations + 1 and new.rows[-1] == 1  # + scoring the returned mean
    for a, b in zip(old.calls, new.calls):
        assert torch.equal(a, b)
    assert torch.equal(result.actions, ref)
    # a PlanConfig is cut down to its CEM part
    pc = PlanConfig(samples=50, iterations=6, elites=7, min_std=0.02, horizon=H, receding_horizon=H)
    assert torch.equal(cem_plan(_quadratic(TARGET), torch.zeros(E, H, Ad), pc, low, high, _gen()).actions, ref)


def test_sample_zero_is_the_mean_so_a_perfect_warm_start_is_kept():
    target = torch.randn(2, 3, 2)
    cost = Recorder(_quadratic(target))
    cfg = CEMConfig(samples=16, iterations=1, elites=1)
    result = cem_plan(cost, target.clone(), cfg, generator=_gen())
    assert torch.equal(cost.calls[0][:, 0], target)
    assert torch.allclose(result.actions, target) and torch.all(result.cost == 0)


def test_kept_elites_are_not_scored_again():
    cfg = CEMConfig(samples=40, iterations=5, elites=10, keep_elites=4)
    cost = Recorder(_quadratic(TARGET))
    result = cem_plan(cost, torch.zeros(E, H, Ad), cfg, generator=_gen())
    assert cost.rows == [40] * 5 + [1]  # only the new samples (and the final mean) reach cost_fn
    assert result.diagnostics["samples"] == [40.0] * 5
    # the kept elites are in the population: the best cost never gets worse between iterations
    best = result.diagnostics["best_cost"]
    assert all(b <= a + 1e-6 for a, b in zip(best, best[1:]))


def test_kept_elites_carry_their_true_costs_into_select_best():
    cfg = CEMConfig(samples=30, iterations=6, elites=5, keep_elites=5, select="best")
    result = cem_plan(_quadratic(TARGET), torch.zeros(E, H, Ad), cfg, generator=_gen())
    assert torch.allclose(result.cost, _quadratic(TARGET)(result.actions[:, None])[:, 0])
    assert abs(result.cost.mean().item() - min(result.diagnostics["best_cost"])) < 1e-6


def test_sample_decay_shrinks_the_sample_counts_as_specified():
    cfg = CEMConfig(samples=100, iterations=8, elites=10, sample_decay=1.5)
    cost = Recorder(_quadratic(TARGET))
    result = cem_plan(cost, torch.zeros(E, H, Ad), cfg, generator=_gen())
    expected = [max(20, int(100 / 1.5 ** i)) for i in range(8)]
    assert expected[:4] == [100, 66, 44, 29] and expected[-1] == 20
    assert cost.rows[:-1] == expected and [samples_at(cfg, i) for i in range(8)] == expected
    assert result.diagnostics["samples"] == [float(n) for n in expected]


def test_early_stop_stops_early_on_an_easy_problem():
    cfg = CEMConfig(samples=100, iterations=50, elites=10, early_stop_std=0.01)
    cost = Recorder(_quadratic(TARGET))
    result = cem_plan(cost, torch.zeros(E, H, Ad), cfg, generator=_gen())
    assert 1 <= result.iterations < cfg.iterations
    assert len(cost.calls) == result.iterations + 1
    assert all(len(v) == result.iterations for v in result.diagnostics.values())
    assert torch.allclose(result.actions, TARGET, atol=0.05)
    no_stop = cem_plan(_quadratic(TARGET), torch.zeros(E, H, Ad), CEMConfig(samples=100, iterations=7, elites=10),
                       generator=_gen())
    assert no_stop.iterations == 7 and len(no_stop.diagnostics["std"]) == 7


def _lag1_autocorrelation(x):  # x (E, S, H, Ad): correlation of consecutive blocks along H
    a, b = x[:, :, :-1].flatten(), x[:, :, 1:].flatten()
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def test_coloured_noise_is_smoother_than_white_and_white_is_randn():
    shape = (8, 256, 16, 2)
    white = coloured_noise(shape, 0.0, torch.device("cpu"), _gen())
    assert torch.equal(white, torch.randn(shape, generator=_gen()))
    pink = coloured_noise(shape, 2.0, torch.device("cpu"), _gen())
    assert abs(pink.var().item() - 1.0) < 0.1  # unit variance per element
    assert abs(_lag1_autocorrelation(white)) < 0.05
    assert _lag1_autocorrelation(pink) > 0.5


def test_grad_plan_works_inside_no_grad():
    with torch.no_grad():
        result = grad_plan(_quadratic(TARGET), torch.zeros(E, H, Ad), GradConfig(samples=4, iterations=60),
                           generator=_gen())
    assert torch.allclose(result.actions, TARGET, atol=0.05)
    assert torch.all(result.std == 0) and not result.actions.requires_grad


def test_grad_plan_leaves_parameter_grads_alone():
    w = torch.nn.Parameter(torch.ones(()))

    def cost(actions):
        return w * _quadratic(TARGET)(actions)

    grad_plan(cost, torch.zeros(E, H, Ad), GradConfig(samples=4, iterations=3), generator=_gen())
    assert w.grad is None


def test_grad_plan_is_reproducible():
    cfg = GradConfig(samples=6, iterations=5, lr=0.05)
    a = grad_plan(_quadratic(TARGET), torch.zeros(E, H, Ad), cfg, generator=_gen())
    b = grad_plan(_quadratic(TARGET), torch.zeros(E, H, Ad), cfg, generator=_gen())
    assert torch.equal(a.actions, b.actions) and torch.equal(a.cost, b.cost)


def test_mppi_weights_are_scale_free():
    from lewm_agent.planning.mppi import mppi_weights

    c = torch.rand(3, 50)
    assert torch.allclose(mppi_weights(c, 0.1), mppi_weights(1000 * c + 7, 0.1), atol=1e-6)
    assert torch.allclose(mppi_weights(torch.ones(2, 5), 0.1), torch.full((2, 5), 0.2))


@pytest.mark.parametrize("name", ["cem", "mppi", "adam"])
def test_dispatcher_runs_each_planner_from_a_plan_config(name):
    pc = PlanConfig(planner=name, samples=64, iterations=20 if name != "adam" else 60, elites=8,
                    min_std=0.01, horizon=H, receding_horizon=H)
    cost = Recorder(_quadratic(TARGET))
    result = plan(cost, torch.zeros(E, H, Ad), pc, generator=_gen())
    assert torch.allclose(result.actions, TARGET, atol=0.05)
    assert cost.rows[0] == 64


def test_dispatcher_rejects_an_unknown_planner():
    with pytest.raises(ValueError, match="planner='random-shooting'.*cem.*mppi.*adam"):
        PlanConfig(planner="random-shooting")  # refused where it enters
    pc = PlanConfig()
    pc.planner = "random-shooting"  # and if assigned afterwards, by the dispatcher
    with pytest.raises(ValueError, match="cem.*mppi|adam"):
        plan(_quadratic(TARGET), torch.zeros(E, H, Ad), pc)


def test_latent_goal_cost_modes():
    z = torch.zeros(2, 3, 4)
    z[:, -1] = 1.0
    goal = torch.zeros(2, 4)
    assert torch.equal(latent_goal_cost(z, goal, "terminal"), torch.full((2,), 4.0))
    assert torch.equal(latent_goal_cost(z, goal, "all"), torch.full((2,), 4.0))
    z[:, 0] = 1.0
    assert torch.equal(latent_goal_cost(z, goal, "all"), torch.full((2,), 8.0))


def test_shift_plan_drops_executed_env_steps_even_within_a_block():
    from lewm_agent.planning import shift_plan

    fs, A = 3, 2
    blocks = torch.arange(2 * 4 * fs * A, dtype=torch.float32).reshape(2, 4, fs * A)  # (E, H, Ad)
    whole = shift_plan(blocks, 2 * fs, fs)  # two whole blocks: the old block shift
    torch.testing.assert_close(whole, torch.cat([blocks[:, 2:], torch.zeros(2, 2, fs * A)], dim=1))
    one = shift_plan(blocks, 1, fs)  # one env step: every action moves one place earlier
    flat, flat_one = blocks.reshape(2, -1, A), one.reshape(2, -1, A)
    torch.testing.assert_close(flat_one[:, :-1], flat[:, 1:])
    assert torch.all(flat_one[:, -1] == 0)
    with pytest.raises(ValueError, match="cannot drop"):
        shift_plan(blocks, 4 * fs + 1, fs)
