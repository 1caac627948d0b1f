"""experiments/diagnose.py: GoalEnv.simulate, the true-state oracle planner, the latent landscape, the CLI."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from lewm_agent import envs
from lewm_agent.envs.goal import GoalEnv
from lewm_agent.envs.tworoom import TwoRoomEnv
from experiments.diagnose import DiagnoseError, OracleActor, latent_landscape, main, plot_landscape
from lewm_agent.agent import LeWMAgent
from lewm_agent.config import PlanConfig
from lewm_agent.data import load_episodes
from lewm_agent.evaluation import EvalProtocol, RandomActor, evaluate, sample_pairs

ICEM_64x3 = PlanConfig(samples=64, iterations=3, elites=8, horizon=5, receding_horizon=5, noise_beta=2.0,
                       keep_elites=2, select="best")


def _bare(image_size: int = 32):
    return envs.make_env("lewm/TwoRoom-v0", glow=0.0, image_size=image_size)


# ------------------------------------------------------------------ GoalEnv.simulate
def test_simulate_gives_the_states_step_reaches_and_leaves_the_live_episode_alone():
    env = TwoRoomEnv(image_size=16, glow=0.0)
    env.reset(options={"state": [0.3, 0.3], "goal_state": [0.9, 0.9]})
    rng = np.random.default_rng(0)
    starts = np.array([[0.3, 0.3], [0.5, 0.45], [0.43, 0.2], [0.57, 0.8], [0.5, 0.599], [0.1, 0.9]], np.float32)
    actions = rng.uniform(-1.5, 1.5, (len(starts), 30, 2)).astype(np.float32)  # beyond the bounds: clipped
    actions[:3] = np.sign(actions[:3])  # full speed into walls and along them
    sim = env.simulate(starts, actions)
    assert sim.shape == (6, 30, 2) and sim.dtype == np.float32
    np.testing.assert_array_equal(env.render(), env.render_state([0.3, 0.3]))  # live episode untouched
    # the vectorised TwoRoom hook and GoalEnv's generic one agree with stepping, bit for bit
    generic = GoalEnv._simulate(env, starts, np.clip(actions, -1, 1))
    stepper = TwoRoomEnv(image_size=16, glow=0.0, terminate_on_success=False)
    for b, s in enumerate(starts):
        stepper.reset(options={"state": s, "goal_state": [0.05, 0.05] if s[0] > 0.2 else [0.95, 0.95]})
        stepped = np.stack([stepper.step(a)[4]["state"] for a in actions[b]])
        np.testing.assert_array_equal(sim[b], stepped)
        np.testing.assert_array_equal(generic[b], stepped)
    # one start, many sequences; one sequence without a batch axis
    assert env.simulate(starts[0], actions).shape == (6, 30, 2)
    np.testing.assert_array_equal(env.simulate(starts[1], actions[1]), sim[1])
    with pytest.raises(ValueError, match="actions must have shape"):
        env.simulate(starts[0], np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="not a free position"):
        env.simulate([0.5, 0.1], np.zeros((5, 2), np.float32))  # inside the wall


# ------------------------------------------------------------------ oracle
def test_oracle_reaches_goals_on_bare_dot_tworoom_far_above_random(tiny_data):
    protocol = EvalProtocol(num_episodes=12, goal_offset=25, budget=50)
    episodes = load_episodes(tiny_data)
    pairs = sample_pairs(episodes, np.arange(episodes.num_episodes), protocol, env=_bare().unwrapped)
    oracle = OracleActor(_bare(), ICEM_64x3, frameskip=5)  # raw action units (no agent)
    result = evaluate(oracle, _bare, pairs, protocol, progress=False)
    random = evaluate(RandomActor(-np.ones(2), np.ones(2)), _bare, pairs, protocol, progress=False)
    assert result.success_rate >= 0.75, result.episodes
    assert result.success_rate >= random.success_rate + 0.4
    assert oracle.num_plans >= 12  # every env planned at least once


def test_oracle_takes_the_agents_planner_and_normaliser(tiny_run):
    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    oracle = OracleActor.from_agent(agent, _bare())
    assert oracle.plan_cfg == agent.plan_cfg and oracle.frameskip == agent.model.cfg.frameskip
    np.testing.assert_array_equal(oracle.action_std, agent.action_std)
    env = _bare()
    obs, info = env.reset(options={"state": [0.2, 0.2], "goal_state": [0.3, 0.3]})
    batch = {k: v[None] for k, v in obs.items()}
    actions = oracle.act(batch, [info])
    assert actions.shape == (1, 2) and np.all(np.abs(actions) <= 1)
    # with the agent's encoder as the cost: the same planner scores rendered true states
    seen = []
    latent = OracleActor.from_agent(agent, _bare(), latent_cost=True)
    latent.encoder = lambda images: (seen.append(images.shape), agent.encode(images))[1]
    actions = latent.act(batch, [info])
    assert actions.shape == (1, 2) and np.all(np.abs(actions) <= 1)
    assert seen[0] == (1,) + obs["goal"].shape  # the goal image first, then the rendered candidates
    assert seen[1][1:] == obs["goal"].shape and seen[1][0] == agent.plan_cfg.samples
    with pytest.raises(DiagnoseError, match="needs a GoalEnv"):
        OracleActor(gym.make("CartPole-v1"), agent.plan_cfg, frameskip=2)
    with pytest.raises(DiagnoseError, match="mode='plan' with planner 'cem' or 'mppi'"):
        OracleActor(_bare(), PlanConfig(planner="adam", samples=4), frameskip=2)


# ------------------------------------------------------------------ landscape
def test_landscape_grids_correlations_and_png(tiny_run, tmp_path):
    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    env = envs.make_env(agent.metadata["env_id"], **agent.metadata["env_kwargs"])
    land = latent_landscape(agent, env, grid=9)  # odd: the middle column crosses the wall
    assert land.latent_cost.shape == land.distance.shape == (3, 9, 9)
    assert land.free.shape == (9, 9) and 0 < land.free.sum() < 81  # the wall is masked
    for grid in (land.latent_cost, land.distance):
        assert np.isnan(grid[:, ~land.free]).all() and np.isfinite(grid[:, land.free]).all()
    assert all(-1 <= r <= 1 for r in land.rank_corr)
    summary = land.summary()
    assert set(summary["goals"]) == {"left room", "right room", "door"}
    path = plot_landscape(land, tmp_path / "landscape.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(DiagnoseError, match="--no-landscape"):
        latent_landscape(agent, gym.make("CartPole-v1"))


# ------------------------------------------------------------------ CLI
def test_cli_writes_the_table_and_the_landscape(tiny_run, tiny_data, tmp_path, capsys):
    out = tmp_path / "diag"
    main([str(tiny_run / "agent"), "--eval-data", str(tiny_data), "--out", str(out), "--episodes", "3",
          "--plan", "samples=8,iterations=2,elites=2", "--grid", "6", "--no-progress"])
    result = json.loads((out / "diagnose.json").read_text())
    names = [r["name"] for r in result["results"]]
    assert names == ["agent", "oracle", "true dynamics, latent cost", "agent samples=8,iterations=2,elites=2",
                     "oracle samples=8,iterations=2,elites=2", "random"]
    assert all(r["episodes"] == 3 and len(r["ci95"]) == 2 for r in result["results"])
    assert result["results"][3]["plan"]["samples"] == 8
    assert set(result["landscape"]["goals"]) == {"left room", "right room", "door"}
    ranking = result["ranking"]
    assert ranking["pairs"] == 3 and ranking["samples"] == 64
    assert all(-1 <= v <= 1 for k, v in ranking.items() if "~" in k)
    assert all(0 <= v <= 1 for k, v in ranking.items() if k.startswith("top-10"))
    assert (out / "landscape.png").is_file()
    assert "oracle" in capsys.readouterr().out


def test_ranking_only_evaluates_no_actor(tiny_run, tiny_data, tmp_path, capsys):
    out = tmp_path / "rank"
    main([str(tiny_run / "agent"), "--eval-data", str(tiny_data), "--out", str(out), "--episodes", "3",
          "--no-landscape", "--ranking", "8", "--ranking-only", "--no-progress"])
    result = json.loads((out / "diagnose.json").read_text())
    assert result["results"] == [] and "pairs_oracle_only" not in result
    assert result["ranking"]["pairs"] == 3 and result["ranking"]["samples"] == 8
    assert "predicted~true latent" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="leaves nothing to measure"):
        main([str(tiny_run / "agent"), "--eval-data", str(tiny_data), "--out", str(out), "--ranking", "0",
              "--ranking-only"])


def test_cli_bad_input_gets_a_one_line_error(tiny_data, tiny_run, tmp_path):
    with pytest.raises(SystemExit, match="error: no agent at .*lewm train"):
        main([str(tmp_path / "nope"), "--eval-data", str(tiny_data), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="has no field 'sample'"):
        main([str(tiny_run / "agent"), "--eval-data", str(tiny_data), "--out", str(tmp_path / "o"),
              "--plan", "sample=3"])
    with pytest.raises(SystemExit, match="--ranking -1: pass the candidates per pair"):
        main([str(tiny_run / "agent"), "--eval-data", str(tiny_data), "--out", str(tmp_path / "o"), "--ranking", "-1"])
    with pytest.raises(SystemExit, match="cannot read --eval-data"):
        main([str(tiny_run / "agent"), "--eval-data", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "o")])


def test_oracle_averages_running_plans_like_the_agent(monkeypatch):
    """plan.ensemble: the oracle executes, per env step, the mean of every running plan's proposal (plan d proposes
    the constant action d here), as LeWMAgent does."""
    import torch

    import experiments.diagnose as diagnose
    from lewm_agent.planning import PlanResult

    calls = []

    def constant_plan(cost_fn, mean, cfg, low, high, generator):
        actions = torch.full_like(mean, float(len(calls)))
        calls.append(1)
        return PlanResult(actions=actions, cost=torch.zeros(len(mean)), std=torch.zeros_like(mean))

    monkeypatch.setattr(diagnose, "plan", constant_plan)
    pc = PlanConfig(samples=4, iterations=1, elites=2, horizon=1, receding_horizon=1, replan_every=1, ensemble=True)
    oracle = OracleActor(_bare(), pc, frameskip=3, action_low=np.full(2, -100.0), action_high=np.full(2, 100.0))
    oracle.reset(1)
    obs = {"pixels": np.zeros((1, 32, 32, 3), np.uint8), "goal": np.zeros((1, 32, 32, 3), np.uint8)}
    infos = [{"state": np.zeros(2, np.float32), "goal_state": np.zeros(2, np.float32)}]
    executed = [float(oracle.act(obs, infos)[0, 0]) for _ in range(6)]
    assert executed == [0.0, 0.5, 1.0, 2.0, 3.0, 4.0]
