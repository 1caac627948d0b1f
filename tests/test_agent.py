"""LeWMAgent: batched acting, SB3 evaluate_policy, save/load round trip, clear errors."""

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import lewm_agent.envs  # noqa: F401  (registers lewm/TwoRoom-v0)
from lewm_agent import LeWMAgent
from lewm_agent.checkpoint import CheckpointError
from lewm_agent.planning import latent_goal_cost


def _obs(n=None, size=32, seed=0):
    env = gym.make("lewm/TwoRoom-v0", image_size=size)
    obs, _ = env.reset(seed=seed)
    if n is None:
        return obs
    return {k: np.stack([v] * n) for k, v in obs.items()}


def test_act_single_and_batched(tiny_run):
    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    a = agent.act(_obs())
    assert a.shape == (2,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)
    agent.reset()
    b = agent.act(_obs(3))
    assert b.shape == (3, 2)


def test_goal_is_encoded_once_per_episode_and_plans_are_batched(tiny_run):
    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    obs = _obs(4)
    fs, R = agent.model.cfg.frameskip, agent.plan_cfg.receding_horizon
    for _ in range(R * fs + 1):
        agent.act(obs)
    # all four envs decided in one call, then again together after R blocks
    assert agent.decide_calls == 2 and agent.num_plans == 8
    # goals encoded once (4 images); then a latent per env and block boundary (history 2)
    assert agent.encoded_images == 4 + 4 * (1 + R)
    assert agent.last_plan["envs"] == 4 and agent.last_plan["iterations"] == agent.plan_cfg.iterations


def test_evaluate_policy_with_a_vec_env(tiny_run):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    vec_env = make_vec_env("lewm/TwoRoom-v0", n_envs=3, seed=0, env_kwargs={"image_size": 32, "max_episode_steps": 12})
    rewards, lengths = evaluate_policy(agent, vec_env, n_eval_episodes=3, return_episode_rewards=True)
    assert len(rewards) == 3 and all(1 <= n <= 12 for n in lengths)
    assert agent.num_plans / agent.decide_calls == 3  # the three envs always decided together


def test_save_load_round_trip_gives_identical_actions(tiny_run, tmp_path):
    a1 = LeWMAgent.load(tiny_run / "agent", device="cpu")
    a1.save(tmp_path / "copy")
    a2 = LeWMAgent.load(tmp_path / "copy", device="cpu")
    obs = _obs(2, seed=3)
    for _ in range(7):
        np.testing.assert_array_equal(a1.act(obs), a2.act(obs))
    a1.reset(), a2.reset()
    np.testing.assert_array_equal(a1.act(obs), a2.act(obs))


def test_the_same_planner_seed_gives_the_same_actions_and_another_seed_others(tiny_run):
    """Two agents loaded separately act identically over an episode's decisions; the planner's seed matters."""
    obs = _obs(2, seed=4)
    same = [LeWMAgent.load(tiny_run / "agent", device="cpu", seed=7) for _ in range(2)]
    other = LeWMAgent.load(tiny_run / "agent", device="cpu", seed=8)
    for _ in range(6):  # two plans of 3 steps each (tiny's receding horizon)
        a, b, c = (agent.act(obs) for agent in (*same, other))
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c), "the planner seed changes the sampled plans"


def test_reset_reseeds_the_planner(tiny_run):
    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    obs = _obs(seed=5)
    first = agent.act(obs)
    agent.reset()
    np.testing.assert_array_equal(first, agent.act(obs))


def test_truncated_weights_give_a_clear_error(tiny_run, tmp_path):
    LeWMAgent.load(tiny_run / "agent", device="cpu").save(tmp_path / "ckpt")
    w = tmp_path / "ckpt" / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        LeWMAgent.load(tmp_path / "ckpt")


def test_corrupt_config_and_missing_files_give_clear_errors(tiny_run, tmp_path):
    LeWMAgent.load(tiny_run / "agent", device="cpu").save(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        LeWMAgent.load(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        LeWMAgent.load(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="No checkpoint directory"):
        LeWMAgent.load(tmp_path / "nowhere")


def test_checkpoint_for_another_image_size(tiny_run, tmp_path):
    LeWMAgent.load(tiny_run / "agent", device="cpu").save(tmp_path / "ckpt")
    cfg_file = tmp_path / "ckpt" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["model"]["image_size"] = 64  # config says 64 px, weights were trained at 32 px
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="pos_embed.*another image size"):
        LeWMAgent.load(tmp_path / "ckpt")


def test_observation_of_the_wrong_shape_or_dtype(tiny_run):
    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    with pytest.raises(ValueError, match=r"\(32, 32, 3\).*image_size=32"):
        agent.act(_obs(size=64))
    obs = _obs()
    with pytest.raises(ValueError, match="must be uint8"):
        agent.act({"pixels": obs["pixels"] / 255.0, "goal": obs["goal"]})
    with pytest.raises(ValueError, match="'pixels' and 'goal'"):
        agent.act(obs["pixels"])


def _latents(agent, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    D, Ad, h = agent.model.cfg.latent_dim, agent.model.cfg.action_block_dim, agent.model.cfg.history
    return torch.randn(n, h, D, generator=g), torch.randn(n, h - 1, Ad, generator=g), torch.randn(n, D, generator=g)


def test_bf16_and_fp32_plans_agree(tiny_run):
    """Same seed, same latents: the bf16 plan scores within 5% of the fp32 plan (both scored in fp32)."""
    fp32 = LeWMAgent.load(tiny_run / "agent", device="cpu", precision="fp32")
    bf16 = LeWMAgent.load(tiny_run / "agent", device="cpu", precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    z, a, goal = _latents(fp32, n=3)
    plan32, plan16 = fp32.plan_latents(z, a, goal), bf16.plan_latents(z, a, goal)
    with torch.no_grad():
        def score(actions):  # fp32 terminal cost of (E, H, Ad) plans
            return latent_goal_cost(fp32.model.rollout(z, a, actions), goal)
        c32, c16 = score(plan32.actions), score(plan16.actions)
    torch.testing.assert_close(c32, plan32.cost, rtol=1e-4, atol=1e-5)  # PlanResult.cost scores the returned plan
    assert torch.all((c16 - c32).abs() <= 0.05 * c32 + 1e-3), (c16, c32)


@pytest.mark.parametrize("planner", ["cem", "mppi", "adam"])
def test_every_planner_acts_and_lowers_the_cost(tiny_run, planner):
    agent = LeWMAgent.load(tiny_run / "agent", device="cpu", planner=planner, samples=32, iterations=4)
    z, a, goal = _latents(agent)
    result = agent.plan_latents(z, a, goal)
    zero = torch.zeros_like(result.actions)
    with torch.no_grad():
        zero_cost = latent_goal_cost(agent.model.rollout(z, a, zero), goal)
    assert torch.all(result.cost <= zero_cost + 1e-5)  # never worse than its initial mean
    assert len(result.diagnostics["best_cost"]) == result.iterations
    assert agent.act(_obs(2)).shape == (2, 2)


def test_plan_diagnostics_go_to_tensorboard(tiny_run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    writer = SummaryWriter(str(tmp_path / "tb"))
    agent.log_to(writer)
    obs = _obs(2)
    for _ in range(agent.plan_cfg.receding_horizon * agent.model.cfg.frameskip + 1):
        agent.act(obs)
    writer.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"plan/best_cost", "plan/elite_cost", "plan/std", "plan/iterations", "plan/seconds"} <= set(tags)
    assert len(acc.Scalars("plan/best_cost")) == 2  # one point per decision call


def test_encode_is_public_and_batched(tiny_run):
    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    obs = _obs(3)
    z = agent.encode(obs["pixels"])
    assert z.shape == (3, agent.model.cfg.latent_dim) and z.dtype == torch.float32
    torch.testing.assert_close(z[0], agent.encode(obs["pixels"][:1])[0], atol=1e-5, rtol=1e-5)


def test_bad_plan_settings_are_named(tiny_run):
    with pytest.raises(ValueError, match="planner='nope'"):
        LeWMAgent.load(tiny_run / "agent", device="cpu", planner="nope")
    with pytest.raises(ValueError, match="precision='fp8'"):
        LeWMAgent.load(tiny_run / "agent", device="cpu", precision="fp8")
    with pytest.raises(ValueError, match="needs a latent policy"):
        LeWMAgent.load(tiny_run / "agent", device="cpu", mode="policy")


def test_agent_normalises_actions_with_the_training_normaliser(tiny_run, tiny_data):
    from lewm_agent.data import ActionNormalizer, load_episodes, split_episodes
    from lewm_agent.config import preset

    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    episodes = load_episodes(tiny_data)
    train_ids, _ = split_episodes(episodes.num_episodes, preset("tiny").train.val_fraction, 0)
    trained = ActionNormalizer.from_actions(episodes.action[episodes.transition_rows(train_ids)])
    assert isinstance(agent.normalizer, ActionNormalizer)
    np.testing.assert_array_equal(agent.normalizer.mean, trained.mean)
    np.testing.assert_array_equal(agent.normalizer.std, trained.std)
    a = agent.act(_obs())  # an env action, the normaliser's inverse of a clamped plan
    assert np.all(a >= agent.action_low) and np.all(a <= agent.action_high)
    with pytest.raises(ValueError, match="LeWMAgent: action_mean must be finite"):
        LeWMAgent(agent.model, np.array([np.nan, 0.0]), agent.action_std, agent.action_low, agent.action_high,
                  agent.obs_shape, device="cpu")


def test_an_agent_set_to_act_with_a_policy_it_lacks_says_so_when_asked_to_act(tiny_run):
    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    bare = LeWMAgent(agent.model, agent.action_mean, agent.action_std, agent.action_low, agent.action_high,
                     agent.obs_shape, plan=dataclasses.replace(agent.plan_cfg, mode="policy"), device="cpu")
    with pytest.raises(ValueError, match="needs a latent policy"):
        bare.act(_obs(1))


@pytest.mark.parametrize("history,frameskip", [(2, 2), (3, 3)])
def test_replanning_every_step_plans_from_the_frames_and_blocks_behind_the_current_one(history, frameskip):
    """replan_every=1: a decision at every env step, whose context is the latents of the frames frameskip steps
    apart up to the current one, and the normalised actions executed between them."""
    from lewm_agent.config import PlanConfig, preset, replace
    from lewm_agent.model import LeWM

    p = preset("tiny")
    torch.manual_seed(0)
    model = LeWM(replace(p.model, history=history, frameskip=frameskip))
    agent = LeWMAgent(model, np.full(2, 0.1), np.full(2, 0.5), -np.ones(2), np.ones(2), (32, 32, 3),
                      plan=replace(p.plan, horizon=2, receding_horizon=1, replan_every=1), device="cpu")
    assert isinstance(agent.plan_cfg, PlanConfig) and agent.steps_per_decision == 1
    fs, contexts = frameskip, []
    plan_latents = agent.plan_latents

    def spy(z_context, a_context, z_goal, mean=None):
        contexts.append((z_context.clone(), None if a_context is None else a_context.clone()))
        return plan_latents(z_context, a_context, z_goal, mean)

    agent.plan_latents = spy
    env = gym.make("lewm/TwoRoom-v0", image_size=32)
    obs, _ = env.reset(seed=5)
    frames, actions = [], []
    for _ in range(history * fs + 3):
        frames.append(obs["pixels"])
        actions.append(agent.act(obs))
        obs, *_ = env.step(actions[-1])
    assert agent.decide_calls == len(frames)
    for t, (z_ctx, a_ctx) in enumerate(contexts):
        steps = [s for s in range(t - (history - 1) * fs, t + 1, fs) if s >= 0]
        assert z_ctx.shape[1] == len(steps)
        torch.testing.assert_close(z_ctx[0], agent.encode(np.stack([frames[s] for s in steps])), atol=1e-5, rtol=1e-5)
        if len(steps) == 1:
            assert a_ctx is None
            continue
        blocks = [agent.normalizer.normalize(np.stack(actions[s:s + fs])).reshape(-1) for s in steps[:-1]]
        np.testing.assert_allclose(a_ctx[0].numpy(), np.stack(blocks), rtol=1e-6)


def test_replanning_after_the_whole_receding_horizon_in_steps_is_the_default(tiny_run):
    agent_blocks = LeWMAgent.load(tiny_run / "agent", device="cpu")
    k = agent_blocks.plan_cfg.receding_horizon * agent_blocks.model.cfg.frameskip
    agent_steps = LeWMAgent.load(tiny_run / "agent", device="cpu", replan_every=k)
    obs = _obs(2, seed=6)
    for _ in range(2 * k + 1):
        np.testing.assert_array_equal(agent_blocks.act(obs), agent_steps.act(obs))
    assert agent_blocks.decide_calls == agent_steps.decide_calls == 3


def test_replanning_beyond_the_plan_is_refused(tiny_run):
    with pytest.raises(ValueError, match="replan_every=100 exceeds"):
        LeWMAgent.load(tiny_run / "agent", device="cpu", replan_every=100)
    with pytest.raises(ValueError, match="replan_every must be >= 0"):
        LeWMAgent.load(tiny_run / "agent", device="cpu", replan_every=-1)


def test_temporal_ensembling_executes_the_mean_of_every_running_plan():
    """ensemble=True, replan_every=1, plans of 3 steps: step t executes the mean of the plans decided at t-2, t-1
    and t for step t (here plan d proposes the constant action d)."""
    from lewm_agent.config import preset, replace
    from lewm_agent.model import LeWM
    from lewm_agent.planning import PlanResult

    p = preset("tiny")
    model = LeWM(replace(p.model, history=1, frameskip=3))
    agent = LeWMAgent(model, np.zeros(2), np.ones(2), np.full(2, -100.0), np.full(2, 100.0), (32, 32, 3),
                      plan=replace(p.plan, horizon=1, receding_horizon=1, replan_every=1, ensemble=True), device="cpu")

    def constant_plan(z_context, a_context, z_goal, mean=None):
        d = float(agent.decide_calls)  # the decision's step: one decision per step
        actions = torch.full((len(z_context), 1, 6), d)
        return PlanResult(actions=actions, cost=torch.zeros(len(z_context)), std=torch.zeros_like(actions))

    agent.plan_latents = constant_plan
    obs = _obs(size=32)
    executed = [float(agent.act(obs)[0]) for _ in range(6)]
    assert executed == [0.0, 0.5, 1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="ensemble averages overlapping plans"):
        LeWMAgent(model, np.zeros(2), np.ones(2), -np.ones(2), np.ones(2), (32, 32, 3),
                  plan=replace(p.plan, horizon=1, receding_horizon=1, ensemble=True), device="cpu")
