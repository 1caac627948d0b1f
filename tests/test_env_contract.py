"""Every goal-conditioned task meets the GoalEnv contract, renders real frames, and runs the pipeline.

One parametrised suite over :data:`lewm_agent.envs.GOAL_ENV_IDS` (TwoRoom, Reacher, Meta-World, OGBench,
PushT): spaces and info keys, ``reset`` options, seeded determinism, dense and sparse rewards,
frames that are real images, and ``collect`` -> ``tiny`` LeWM training -> one planned action.
"""

from __future__ import annotations

import numpy as np
import pytest

from lewm_agent import envs
from lewm_agent.envs.policies import make_policy

SIZE = 32  # small frames keep the MuJoCo suites fast
IDS = list(envs.GOAL_ENV_IDS)
NO_EXPERT = {"lewm/OGBench-antmaze-medium-v0"}  # locomotion needs a learned policy: random data only


def _collection_policy(env_id: str) -> str:
    return "random" if env_id in NO_EXPERT else "expert"


def _make(env_id: str, **kwargs):
    return envs.make_env(env_id, image_size=SIZE, **kwargs)


def _random_actions(env, n: int, seed: int = 0) -> list[np.ndarray]:
    space = env.action_space
    space.seed(seed)
    return [np.asarray(space.sample(), np.float32) for _ in range(n)]


@pytest.fixture(scope="module", params=IDS)
def env_id(request):
    return request.param


@pytest.fixture(scope="module")
def env(env_id):
    e = _make(env_id)
    yield e
    e.close()


def test_spaces_dtypes_and_info_keys(env):
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    for key in ("pixels", "goal"):
        assert obs[key].dtype == np.uint8 and obs[key].shape == (SIZE, SIZE, 3)
    obs2, reward, terminated, truncated, info2 = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs2)
    assert isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
    dim = env.unwrapped.state_dim
    for inf in (info, info2):
        assert isinstance(inf["is_success"], bool) and isinstance(inf["distance"], float)
        assert inf["distance"] >= 0.0
        for key in ("state", "goal_state"):
            assert inf[key].dtype == np.float32 and inf[key].shape == (dim,)
    np.testing.assert_array_equal(env.render(), obs2["pixels"])


def test_reset_options_reproduce_states_and_goal_image_is_render_of_goal_state(env):
    _, info = env.reset(seed=1)
    start = info["state"]
    for action in _random_actions(env, 8, seed=1):
        *_, info = env.step(action)
    later = info["state"]
    obs, info = env.reset(options={"state": later, "goal_state": start})
    np.testing.assert_allclose(info["state"], later, atol=1e-4)
    np.testing.assert_allclose(info["goal_state"], start, atol=1e-6)
    live = env.unwrapped._get_state()
    np.testing.assert_array_equal(obs["goal"], env.unwrapped.render_state(start))
    np.testing.assert_array_equal(env.unwrapped._get_state(), live)  # rendering a goal leaves the live state alone
    np.testing.assert_array_equal(obs["pixels"], env.render())
    # the same start state again gives the same frame
    obs_again, _ = env.reset(options={"state": later, "goal_state": start})
    np.testing.assert_array_equal(obs_again["pixels"], obs["pixels"])


def test_reset_rejects_bad_options(env):
    dim = env.unwrapped.state_dim
    with pytest.raises(ValueError, match="shape"):
        env.reset(options={"state": np.zeros(dim + 1)})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"start": np.zeros(dim)})


def test_seeded_resets_and_trajectories_are_deterministic(env_id):
    a, b = _make(env_id), _make(env_id)
    try:
        actions = _random_actions(a, 6, seed=3)
        runs = []
        for e in (a, b):
            obs, info = e.reset(seed=11)
            frames, states = [obs["pixels"]], [info["state"]]
            for action in actions:
                obs, *_, info = e.step(action)
                frames.append(obs["pixels"])
                states.append(info["state"])
            runs.append((np.stack(frames), np.stack(states), obs["goal"]))
        for x, y in zip(*runs):
            np.testing.assert_array_equal(x, y)
        # a different seed gives a different episode
        obs_other, _ = a.reset(seed=12)
        assert (not np.array_equal(obs_other["goal"], runs[0][2])
                or not np.array_equal(obs_other["pixels"], runs[0][0][0]))
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("reward_type", ["dense", "sparse"])
def test_rewards_follow_reward_type(env_id, reward_type):
    e = _make(env_id, reward_type=reward_type)
    try:
        _, info = e.reset(seed=2)
        for action in _random_actions(e, 3, seed=2):
            _, reward, _, _, info = e.step(action)
            expected = -info["distance"] if reward_type == "dense" else float(info["is_success"])
            assert reward == pytest.approx(expected)
        # starting on the goal state is a success: sparse reward 1, dense reward ~0
        _, info = e.reset(options={"state": info["state"], "goal_state": info["state"]})
        assert info["is_success"] and info["distance"] == pytest.approx(0.0, abs=1e-4)
    finally:
        e.close()


def test_frames_are_real_images_that_follow_the_agent(env):
    obs, info = env.reset(seed=4)
    first = obs["pixels"].astype(np.float64)
    for frame in (obs["pixels"], obs["goal"]):
        assert frame.mean() > 5.0, "frame is (almost) black: the renderer is not working"
        assert frame.std() > 2.0, "frame is (almost) constant"
    start_state = info["state"]
    moved = False
    for action in _random_actions(env, 25, seed=4):
        obs, _, terminated, truncated, info = env.step(action)
        if not np.allclose(info["state"], start_state, atol=1e-3):
            moved = True
        if terminated or truncated:
            break
    assert moved, "25 random actions did not change the physical state"
    changed = np.abs(obs["pixels"].astype(np.float64) - first).mean()
    assert changed > 0.05, "the agent moved but the frame did not change"
    # two different goal states give two different goal images
    goal_a = env.unwrapped.render_state(start_state)
    goal_b = env.unwrapped.render_state(info["state"])
    assert not np.array_equal(goal_a, goal_b)


def test_random_and_expert_policies_act_in_the_action_space(env_id, env):
    obs, info = env.reset(seed=5)
    if env_id in NO_EXPERT:
        with pytest.raises(KeyError, match="random"):
            make_policy("expert", env)
    for name in sorted({"random", _collection_policy(env_id)}):
        policy = make_policy(name, env, seed=0)
        policy.reset(obs, info)
        action = np.asarray(policy(obs, info))
        assert action.shape == env.action_space.shape and np.all(np.isfinite(action))


def test_collect_train_and_plan_smoke(env_id, tmp_path):
    from lewm_agent.agent import LeWMAgent
    from lewm_agent.config import preset, replace
    from lewm_agent.data import collect, load_episodes
    from lewm_agent.train import train

    data = tmp_path / "episodes.h5"
    info = collect(env_id, data, num_episodes=3, policy=_collection_policy(env_id), seed=0,
                   env_kwargs={"image_size": SIZE}, max_steps=14, progress=False)
    assert info.num_episodes == 3 and info.image_size == (SIZE, SIZE)
    episodes = load_episodes(data)
    assert episodes.state is not None and episodes.state.shape[1] == envs.make_env(env_id).unwrapped.state_dim

    p = preset("tiny")
    train(data, tmp_path / "run", p.model, replace(p.train, steps=3, batch_size=4, log_every=1),
          replace(p.plan, samples=8, iterations=1, elites=2), progress=False)
    agent = LeWMAgent.load(tmp_path / "run" / "agent")
    e = _make(env_id)
    try:
        obs, _ = e.reset(seed=0)
        action = agent.act(obs)
        assert action.shape == e.action_space.shape and e.action_space.contains(action.astype(e.action_space.dtype))
    finally:
        e.close()
