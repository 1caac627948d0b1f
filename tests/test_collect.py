"""collect(): TwoRoom rollouts into a valid episode file whose rows are consistent."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lewm_agent import envs
from lewm_agent.data import collect, load_episodes


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    path = tmp_path_factory.mktemp("collect") / "tworoom.h5"
    info = collect("lewm/TwoRoom-v0", path, num_episodes=3, seed=7, env_kwargs={"image_size": 16},
                   max_steps=60, progress=False)
    return path, info


def test_collect_writes_a_valid_file_with_attrs(collected):
    path, info = collected
    assert info.num_episodes == 3 and info.image_size == (16, 16) and info.action_dim == 2 and info.state_dim == 2
    attrs = info.attrs
    assert attrs["env_id"] == "lewm/TwoRoom-v0" and attrs["policy"] == "expert" and attrs["seed"] == 7
    assert attrs["image_size"] == 16 and json.loads(attrs["env_kwargs"]) == {"image_size": 16}
    np.testing.assert_array_equal(attrs["action_low"], [-1, -1])
    np.testing.assert_array_equal(attrs["action_high"], [1, 1])
    assert attrs["max_steps"] == 60
    # the recorded success statistics are the episodes': replay each from its reset seed and ask the env
    env = envs.make_env("lewm/TwoRoom-v0", image_size=16)
    ep = load_episodes(path)
    successes = 0
    for e in range(3):
        env.reset(seed=7 + e)
        rows = ep.episode(e)
        successes += any(env.step(a)[-1]["is_success"] for a in rows["action"][:-1])
    env.close()
    assert attrs["policy_successes"] == successes and attrs["policy_success_rate"] == successes / 3
    ep = load_episodes(path)
    assert (ep.ep_len <= 61).all() and (ep.ep_len >= 2).all()
    last = ep.ep_offset + ep.ep_len - 1
    assert np.isnan(ep.action[last]).all()
    assert np.isfinite(np.delete(ep.action, last, axis=0)).all()
    assert (np.abs(np.delete(ep.action, last, axis=0)) <= 1).all()


def test_rows_states_match_pixels_and_actions_replay(collected):
    path, _ = collected
    ep = load_episodes(path)
    env = envs.make_env("lewm/TwoRoom-v0", image_size=16)
    for e in range(ep.num_episodes):
        rows = ep.episode(e)
        for t in (0, len(rows["state"]) // 2, len(rows["state"]) - 1):
            np.testing.assert_array_equal(env.unwrapped.render_state(rows["state"][t]), rows["pixels"][t])
        # replaying the stored actions from the stored start reproduces the stored states
        env.reset(options={"state": rows["state"][0], "goal_state": [0.9, 0.9]})
        for t in range(len(rows["state"]) - 1):
            state = env.step(rows["action"][t])[-1]["state"]
            np.testing.assert_allclose(state, rows["state"][t + 1], atol=1e-6)


def test_collect_is_deterministic_and_appends(tmp_path, collected):
    path, _ = collected
    again = tmp_path / "again.h5"
    collect("lewm/TwoRoom-v0", again, num_episodes=2, seed=7, env_kwargs={"image_size": 16}, max_steps=60,
            progress=False)
    a, b = load_episodes(path), load_episodes(again)
    np.testing.assert_array_equal(a.state[: b.num_frames], b.state)
    info = collect("lewm/TwoRoom-v0", again, num_episodes=1, seed=100, policy="random",
                   env_kwargs={"image_size": 16}, max_steps=5, append=True, progress=False)
    assert info.num_episodes == 3 and info.attrs["policy"] == "expert,random"
    assert load_episodes(again).ep_len[-1] == 6


def test_parallel_workers_write_the_same_file_as_one_process(tmp_path):
    kwargs = dict(num_episodes=3, seed=5, env_kwargs={"image_size": 16}, max_steps=20, progress=False)
    one = collect("lewm/TwoRoom-v0", tmp_path / "one.h5", **kwargs)
    two = collect("lewm/TwoRoom-v0", tmp_path / "two.h5", workers=2, **kwargs)
    a, b = load_episodes(one.path), load_episodes(two.path)
    np.testing.assert_array_equal(a.ep_len, b.ep_len)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.state, b.state)
    assert a.attrs["policy_success_rate"] == b.attrs["policy_success_rate"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.h5", "two.h5"]  # no shard left behind
    with pytest.raises(ValueError, match="workers"):
        collect("lewm/TwoRoom-v0", tmp_path / "bad.h5", workers=0, **kwargs)


def test_policy_kwargs_reach_the_policy_and_are_recorded(tmp_path):
    kwargs = dict(num_episodes=2, seed=3, env_kwargs={"image_size": 16}, max_steps=15, progress=False)
    calm = collect("lewm/TwoRoom-v0", tmp_path / "calm.h5", policy_kwargs={"noise_std": 0.0, "repeat_prob": 0.0},
                   **kwargs)
    wild = collect("lewm/TwoRoom-v0", tmp_path / "wild.h5", policy_kwargs={"noise_std": 2.0, "repeat_prob": 0.0},
                   **kwargs)
    assert json.loads(wild.attrs["policy_kwargs"]) == {"noise_std": 2.0, "repeat_prob": 0.0}
    a, b = load_episodes(calm.path), load_episodes(wild.path)
    # noise 2.0 saturates most action components at +-1; the noiseless expert never goes beyond its speed 0.35
    assert np.nanmax(np.abs(a.action)) <= 0.35 + 1e-6 and np.nanmean(np.abs(b.action) == 1.0) > 0.3
    with pytest.raises(ValueError, match="policy_kwargs"):
        collect("lewm/TwoRoom-v0", tmp_path / "bad.h5", policy_kwargs={"nosie_std": 1.0}, **kwargs)
