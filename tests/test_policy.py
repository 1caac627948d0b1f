"""The latent policy: behaviour cloning with hindsight goals on frozen LeWM latents, saved with the agent."""

import json
import shutil

import numpy as np
import pytest
import torch

from lewm_agent.agent import LeWMAgent
from lewm_agent.cli import main
from lewm_agent.data import Episodes
from lewm_agent.policy import LatentPolicy, PolicyConfig, fit_policy, policy_samples, train_policy


def moving_square_episodes(n_eps=24, T=16, size=32, seed=0) -> Episodes:
    """A square moves with a constant velocity per episode (the action): only the goal tells which."""
    rng = np.random.default_rng(seed)
    pixels, actions = [], []
    for _ in range(n_eps):
        v = rng.choice([-1.0, 1.0], size=2).astype(np.float32)
        p = size / 2 - v * T / 2
        frames = np.zeros((T, size, size, 3), np.uint8)
        for t in range(T):
            x, y = (p + v * t).astype(int)
            frames[t, max(y - 3, 0):y + 3, max(x - 3, 0):x + 3] = 255
        a = np.tile(v, (T, 1))
        a[-1] = np.nan
        pixels.append(frames)
        actions.append(a)
    return Episodes(pixels=np.concatenate(pixels), action=np.concatenate(actions).astype(np.float32), state=None,
                    ep_len=np.full(n_eps, T, np.int64), ep_offset=np.arange(n_eps, dtype=np.int64) * T)


@pytest.fixture(scope="module")
def agent(tiny_run):
    return LeWMAgent.load(tiny_run / "agent", device="cpu")


@pytest.fixture
def agent_copy(tiny_run, tmp_path):
    dst = tmp_path / "agent"
    shutil.copytree(tiny_run / "agent", dst)
    return dst


def test_policy_learns_goal_dependent_actions(agent):
    eps = moving_square_episodes()
    mean, std = np.nanmean(eps.action, 0), np.nanstd(eps.action, 0)
    cfg = PolicyConfig(steps=300, hidden=128, depth=2, batch_size=256, lr=1e-2)
    policy, m = train_policy(agent.model, eps, np.arange(eps.num_episodes), mean, std, horizon=3, cfg=cfg,
                             progress=False)
    assert m["train_zero_loss"] > 0.9 and m["zero_loss"] > 0.9  # z-scored actions: predicting zeros costs ~1
    assert m["train_loss"] < 0.2 * m["train_zero_loss"], m
    assert m["val_loss"] < 0.3 * m["zero_loss"], m  # held-out episodes
    assert m["episodes"] + m["val_episodes"] == eps.num_episodes and m["samples"] > 0 and m["seconds"] > 0
    assert not policy.training
    # the same seed gives the same policy
    policy2, m2 = train_policy(agent.model, eps, np.arange(eps.num_episodes), mean, std, horizon=3, cfg=cfg,
                               progress=False)
    assert m2["train_loss"] == m["train_loss"]
    assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(), policy2.state_dict().values()))


def test_shapes_and_config_dict_round_trip():
    torch.manual_seed(0)
    policy = LatentPolicy(latent_dim=16, block_dim=4, horizon=3, hidden=32, depth=2)
    policy.set_input_transform(torch.randn(100, 16) * 3 + 1)
    with torch.no_grad():  # a non-zero head, so the round trip is tested on real outputs
        policy.head.weight.normal_()
    z, g = torch.randn(5, 16), torch.randn(5, 16)
    out = policy(z, g)
    assert out.shape == (5, 3, 4)
    d = json.loads(json.dumps(policy.config_dict()))
    assert d == {"latent_dim": 16, "block_dim": 4, "horizon": 3, "hidden": 32, "depth": 2}
    clone = LatentPolicy.from_config_dict(d)
    clone.load_state_dict(policy.state_dict())
    assert torch.equal(clone(z, g), out)
    with pytest.raises(ValueError, match="missing keys \\['depth'\\]"):
        LatentPolicy.from_config_dict({k: v for k, v in d.items() if k != "depth"})
    with pytest.raises(ValueError, match="unknown keys \\['width'\\]"):
        LatentPolicy.from_config_dict({**d, "width": 3})
    with pytest.raises(ValueError, match="z and z_goal must both be"):
        policy(torch.randn(5, 8), torch.randn(5, 8))


def test_untrained_policy_proposes_zeros():
    policy = LatentPolicy(latent_dim=8, block_dim=4, horizon=2, hidden=16, depth=1)
    assert torch.equal(policy(torch.randn(3, 8), torch.randn(3, 8)), torch.zeros(3, 2, 4))


@pytest.mark.parametrize("field, value", [
    ("hidden", 0), ("depth", -1), ("steps", 0), ("batch_size", 0), ("lr", 0.0), ("weight_decay", -1.0),
    ("max_goal_blocks", -1), ("val_fraction", 1.0), ("whiten_floor", 0.0),
])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"PolicyConfig.{field}"):
        PolicyConfig(**{field: value}).validate()


def test_samples_stay_inside_episodes_and_skip_nan_actions():
    ep_len = np.array([10, 3, 8])
    finite = np.ones(21, bool)
    finite[[9, 12, 20]] = False  # last rows
    finite[15] = False  # a NaN inside episode 2 (row 2 of it)
    start, kmax = policy_samples(ep_len, finite, horizon=2, frameskip=2, max_goal_blocks=3)
    # episode 0: starts 0..5 (4 actions, last action row 8); episode 1 too short; episode 2: starts 16
    # (rows 16-19; earlier windows hit row 15)
    assert start.tolist() == [0, 1, 2, 3, 4, 5, 16]
    assert kmax.tolist() == [3, 3, 3, 3, 2, 2, 2]  # goal frame start + k*fs within the episode


def test_fit_policy_saves_an_agent_with_a_policy(agent_copy, capsys):
    m = fit_policy(agent_copy, PolicyConfig(steps=20, hidden=32, depth=1, batch_size=64), device="cpu", progress=False)
    assert {"train_loss", "val_loss", "seconds", "samples"} <= set(m)
    loaded = LeWMAgent.load(agent_copy, device="cpu")
    assert loaded.policy is not None and loaded.policy.horizon == loaded.plan_cfg.horizon
    policy_params = sum(p.numel() for p in loaded.policy.parameters())
    assert policy_params > 0 and loaded.num_params == sum(p.numel() for p in loaded.model.parameters()) + policy_params
    assert loaded.metadata["policy_training"]["config"]["steps"] == 20
    z = loaded.encode(np.zeros((2, *loaded.obs_shape), np.uint8))
    assert loaded.policy(z, z).shape == (2, loaded.plan_cfg.horizon, loaded.model.cfg.action_block_dim)
    # it acts alone
    acting = LeWMAgent.load(agent_copy, device="cpu", mode="policy")
    obs = {"pixels": np.zeros(loaded.obs_shape, np.uint8), "goal": np.full(loaded.obs_shape, 255, np.uint8)}
    assert acting.act(obs).shape == (loaded.model.cfg.action_dim,)


def test_fit_policy_checks_inputs_before_working(agent_copy, tmp_path):
    stamp = (agent_copy / "model.safetensors").stat().st_mtime_ns
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        fit_policy(agent_copy, data_path=tmp_path / "missing.h5", device="cpu", progress=False)
    config = json.loads((agent_copy / "config.json").read_text())
    config["plan"]["horizon"] = config["plan"]["receding_horizon"] = 500
    (agent_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="horizon \\* frameskip"):
        fit_policy(agent_copy, device="cpu", progress=False)
    with pytest.raises(ValueError, match="PolicyConfig.steps"):
        fit_policy(agent_copy, PolicyConfig(steps=0), device="cpu", progress=False)
    assert (agent_copy / "model.safetensors").stat().st_mtime_ns == stamp


def test_lewm_policy_command(agent_copy, capsys):
    assert main(["policy", str(agent_copy), "--steps", "10", "--set", "hidden=32", "--set", "depth=1",
                 "--device", "cpu"]) == 0
    assert "train loss" in capsys.readouterr().out
    assert LeWMAgent.load(agent_copy, device="cpu").policy.hidden == 32
    assert main(["policy", str(agent_copy), "--set", "width=3"]) == 2
    assert "no field 'width'" in capsys.readouterr().err
    assert main(["policy", str(agent_copy), "--data", str(agent_copy / "missing.h5")]) == 2
    assert "missing.h5" in capsys.readouterr().err


def test_a_preset_with_a_latent_policy_trains_it_with_lewm_train(tiny_data, tmp_path, monkeypatch, capsys):
    """`lewm train --preset P` also fits P's latent policy, so the saved agent plans as the preset means."""
    from lewm_agent import config

    tiny = config.PRESETS["tiny"]

    def with_policy():
        p = tiny()
        p.latent_policy = PolicyConfig(steps=5, hidden=16, depth=1, batch_size=32)
        return p

    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--data", str(tiny_data), "--out", str(out), "--steps", "4",
                 "--device", "cpu"]) == 0
    assert LeWMAgent.load(out / "agent", device="cpu").policy is None, "a preset without one trains none"
    monkeypatch.setitem(config.PRESETS, "tiny", with_policy)
    out = tmp_path / "run2"
    assert main(["train", "--preset", "tiny", "--data", str(tiny_data), "--out", str(out), "--steps", "4",
                 "--device", "cpu"]) == 0
    assert "latent policy of preset 'tiny' trained" in capsys.readouterr().out
    agent = LeWMAgent.load(out / "agent", device="cpu")
    assert agent.policy is not None and agent.policy.hidden == 16
    assert agent.metadata["policy_training"]["config"]["steps"] == 5


def test_a_preset_that_acts_with_its_policy_trains_one_and_cannot_be_made_without_it(tiny_data, tmp_path,
                                                                                      monkeypatch):
    """plan.mode='policy' in a preset: `lewm train` saves the agent first, then its policy, and the agent acts."""
    import dataclasses

    from lewm_agent import config

    tiny = config.PRESETS["tiny"]
    with pytest.raises(ValueError, match="latent_policy is None"):
        config.Preset(tiny().model, tiny().train, dataclasses.replace(tiny().plan, mode="policy"))

    def acting_with_policy():
        p = tiny()
        return config.Preset(p.model, p.train, dataclasses.replace(p.plan, mode="policy", horizon=1,
                                                                   receding_horizon=1),
                             latent_policy=PolicyConfig(steps=5, hidden=16, depth=1, batch_size=32))

    monkeypatch.setitem(config.PRESETS, "tiny", acting_with_policy)
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--data", str(tiny_data), "--out", str(out), "--steps", "4",
                 "--device", "cpu"]) == 0
    agent = LeWMAgent.load(out / "agent", device="cpu")
    assert agent.plan_cfg.mode == "policy" and agent.policy is not None and agent.policy.horizon == 1
    size = agent.obs_shape[0]
    obs = {"pixels": np.zeros((size, size, 3), np.uint8), "goal": np.full((size, size, 3), 255, np.uint8)}
    action = agent.act(obs)
    assert action.shape == (agent.model.cfg.action_dim,) and np.all(np.isfinite(action))
