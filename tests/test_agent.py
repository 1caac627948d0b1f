"""LeWMAgent: batched acting, SB3 evaluate_policy, save/load round trip, clear errors."""

import json

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers lewm/TwoRoom-v0)
from lewm_agent import LeWMAgent
from lewm_agent.checkpoint import CheckpointError


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


def test_goal_is_encoded_once_per_episode_and_plans_are_batched(tiny_run, monkeypatch):
    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    encoded, planned = [], []
    enc, plan = agent._encode, agent._plan
    monkeypatch.setattr(agent, "_encode", lambda x: encoded.append(len(x)) or enc(x))
    monkeypatch.setattr(agent, "_plan", lambda idx: planned.append(list(idx)) or plan(idx))
    obs = _obs(4)
    fs, R = agent.model.cfg.frameskip, agent.plan_cfg.receding_horizon
    for _ in range(R * fs + 1):
        agent.act(obs)
    assert planned == [[0, 1, 2, 3], [0, 1, 2, 3]]  # all envs in one plan call, replanning after R blocks
    # goals encoded once (4 images in one call); then only observations
    assert encoded[0] == 4 and sum(encoded) == 4 + 4 * (1 + R)  # goals + a latent per block boundary (history 2)


def test_evaluate_policy_with_a_vec_env(tiny_run):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    calls = []
    plan = agent._plan
    agent._plan = lambda idx: calls.append(len(idx)) or plan(idx)
    vec_env = make_vec_env("lewm/TwoRoom-v0", n_envs=3, seed=0, env_kwargs={"image_size": 32, "max_episode_steps": 12})
    rewards, lengths = evaluate_policy(agent, vec_env, n_eval_episodes=3, return_episode_rewards=True)
    assert len(rewards) == 3 and all(1 <= n <= 12 for n in lengths)
    assert calls[0] == 3  # the first decision planned for the three envs together


def test_save_load_round_trip_gives_identical_actions(tiny_run, tmp_path):
    a1 = LeWMAgent.load(tiny_run / "agent", device="cpu")
    a1.save(tmp_path / "copy")
    a2 = LeWMAgent.load(tmp_path / "copy", device="cpu")
    obs = _obs(2, seed=3)
    for _ in range(7):
        np.testing.assert_array_equal(a1.act(obs), a2.act(obs))
    a1.reset(), a2.reset()
    np.testing.assert_array_equal(a1.act(obs), a2.act(obs))


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
