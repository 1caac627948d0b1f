"""TwoRoom task: the GoalEnv contract, walls and door, rendering, the expert."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from lewm_agent import envs
from lewm_agent.envs.policies import RandomPolicy, TwoRoomExpert, make_policy
from lewm_agent.envs.tworoom import (
    AGENT_RADIUS, DOOR_Y_MAX, DOOR_Y_MIN, MAX_SPEED, SUCCESS_RADIUS, WALL_X_MAX, WALL_X_MIN, TwoRoomEnv,
)

LEFT, RIGHT = 0.25, 0.75


def make(**kwargs) -> TwoRoomEnv:
    return TwoRoomEnv(image_size=kwargs.pop("image_size", 32), **kwargs)


def run_actions(env: gym.Env, actions) -> list[dict]:
    infos = []
    for a in actions:
        *_, info = env.step(np.asarray(a, np.float32))
        infos.append(info)
    return infos


def test_spaces_dtypes_and_info_keys():
    env = make()
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.action_space == gym.spaces.Box(-1, 1, (2,), np.float32)
    for key in ("pixels", "goal"):
        assert obs[key].dtype == np.uint8 and obs[key].shape == (32, 32, 3)
    obs, reward, terminated, truncated, info2 = env.step(env.action_space.sample())
    assert isinstance(reward, float) and isinstance(terminated, bool) and truncated is False
    for inf in (info, info2):
        assert set(inf) >= {"is_success", "state", "goal_state", "distance"}
        assert isinstance(inf["is_success"], bool) and isinstance(inf["distance"], float)
        assert inf["state"].dtype == np.float32 and inf["state"].shape == (2,)
        assert inf["goal_state"].dtype == np.float32 and inf["goal_state"].shape == (2,)
    np.testing.assert_array_equal(env.render(), obs["pixels"])
    assert env.image_size == 32 and env.goal_state.shape == (2,)


def test_reset_options_are_honoured_and_goal_image_is_render_of_goal_state():
    env = make()
    obs, info = env.reset(options={"state": [0.2, 0.3], "goal_state": [0.8, 0.7]})
    np.testing.assert_allclose(info["state"], [0.2, 0.3], atol=1e-6)
    np.testing.assert_allclose(info["goal_state"], [0.8, 0.7], atol=1e-6)
    np.testing.assert_array_equal(obs["goal"], env.render_state([0.8, 0.7]))
    np.testing.assert_array_equal(obs["pixels"], env.render_state([0.2, 0.3]))
    # only the start given: the goal is sampled
    _, info = env.reset(seed=1, options={"state": [0.2, 0.3]})
    np.testing.assert_allclose(info["state"], [0.2, 0.3], atol=1e-6)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"state": [0.1, 0.2, 0.3]}, r"shape \(2,\)"),
        ({"goal_state": [0.5, 0.1]}, "not a free position"),  # inside the wall
        ({"state": [np.nan, 0.1]}, "finite"),
        ({"start": [0.1, 0.1]}, "unknown reset option"),
    ],
)
def test_reset_rejects_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        make().reset(options=options)


def test_same_seed_same_observations_and_trajectory():
    def rollout(seed):
        env = make()
        obs, info = env.reset(seed=seed)
        policy = make_policy("expert", env, seed=seed)
        policy.reset(obs, info)
        frames, states = [obs["pixels"]], [info["state"]]
        for _ in range(20):
            obs, _, term, _, info = env.step(policy(obs, info))
            frames.append(obs["pixels"])
            states.append(info["state"])
            if term:
                break
        return np.stack(frames), np.stack(states), obs["goal"]

    a, b, c = rollout(3), rollout(3), rollout(4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1][0], c[1][0])


def test_dense_and_sparse_rewards_and_termination():
    start, goal = [0.2, 0.5], [0.2 + 0.5 * SUCCESS_RADIUS, 0.5]
    dense = make(reward_type="dense")
    dense.reset(options={"state": [0.2, 0.2], "goal_state": [0.2, 0.8]})
    _, reward, terminated, _, info = dense.step([0.0, 0.0])
    assert reward == pytest.approx(-0.6, abs=1e-6) and reward == -info["distance"] and not terminated

    sparse = make(reward_type="sparse")
    sparse.reset(options={"state": start, "goal_state": goal})
    _, reward, terminated, _, info = sparse.step([0.0, 0.0])
    assert info["is_success"] and reward == 1.0 and terminated

    keep_going = make(reward_type="sparse", terminate_on_success=False)
    keep_going.reset(options={"state": start, "goal_state": goal})
    _, reward, terminated, _, _ = keep_going.step([0.0, 0.0])
    assert reward == 1.0 and not terminated
    keep_going.reset(options={"state": [0.2, 0.2], "goal_state": [0.2, 0.8]})
    assert keep_going.step([0.0, 0.0])[1] == 0.0


@pytest.mark.parametrize("kwargs, match", [({"reward_type": "shaped"}, "reward_type"),
                                           ({"image_size": 4}, "image_size"),
                                           ({"render_mode": "human"}, "render_mode"),
                                           ({"dot": "square"}, "dot")])
def test_constructor_validates_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TwoRoomEnv(**kwargs)


def test_step_action_errors_and_clipping():
    env = make()
    with pytest.raises(RuntimeError, match="reset"):
        env.step([0.0, 0.0])
    env.reset(options={"state": [0.2, 0.5], "goal_state": [0.8, 0.8]})
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        env.step([np.inf, 0.0])
    info = run_actions(env, [[5.0, 0.0]])[-1]  # clipped to 1: one full step
    np.testing.assert_allclose(info["state"], [0.2 + MAX_SPEED, 0.5], atol=1e-6)


def test_wall_blocks_outside_the_door():
    env = make()
    for y in (0.15, 0.85):  # below and above the door
        env.reset(options={"state": [LEFT, y], "goal_state": [RIGHT, 0.5]})
        infos = run_actions(env, [[1.0, 0.0]] * 60)
        x_max = max(i["state"][0] for i in infos)
        assert x_max <= WALL_X_MIN - AGENT_RADIUS + 1e-5
        assert infos[-1]["state"][1] == pytest.approx(y, abs=1e-6)


def in_door(y: float) -> bool:
    return DOOR_Y_MIN + AGENT_RADIUS - 1e-5 <= y <= DOOR_Y_MAX - AGENT_RADIUS + 1e-5


def test_random_motion_never_enters_or_tunnels_through_the_wall():
    env = make()
    rng = np.random.default_rng(0)
    for ep in range(4):
        _, info = env.reset(seed=ep)
        prev = info["state"]
        for _ in range(150):
            state = env.step(rng.uniform(-1, 1, 2).astype(np.float32))[-1]["state"]
            assert TwoRoomEnv.is_free(state), state
            if (prev[0] < 0.5) != (state[0] < 0.5):  # crossed the middle: only through the door
                assert in_door(prev[1]) and in_door(state[1]), (prev, state)
            prev = state


def test_diagonal_push_slides_along_the_wall_into_the_door():
    env = make()
    env.reset(options={"state": [LEFT, 0.1], "goal_state": [RIGHT, 0.5]})
    infos = run_actions(env, [[1.0, 0.3]] * 80)
    for i in infos:
        x, y = i["state"]
        if WALL_X_MIN - AGENT_RADIUS < x < WALL_X_MAX + AGENT_RADIUS:
            assert in_door(y)
    assert infos[-1]["state"][0] > 0.5  # got through the door


def test_door_lets_the_agent_through_and_walls_slide():
    env = make()
    env.reset(options={"state": [LEFT, 0.5], "goal_state": [0.95, 0.95]})
    infos = run_actions(env, [[1.0, 0.0]] * 20)
    assert infos[-1]["state"][0] == pytest.approx(LEFT + 20 * MAX_SPEED, abs=1e-4)  # straight through
    # sliding: pushing diagonally along the wall face moves the agent along it
    env.reset(options={"state": [WALL_X_MIN - AGENT_RADIUS - 0.01, 0.1], "goal_state": [RIGHT, 0.5]})
    infos = run_actions(env, [[1.0, 1.0]] * 40)
    assert infos[-1]["state"][0] > WALL_X_MAX  # slid up to the door and through
    # arena edges
    env.reset(options={"state": [0.1, 0.1], "goal_state": [RIGHT, 0.5]})
    state = run_actions(env, [[-1.0, -1.0]] * 10)[-1]["state"]
    np.testing.assert_allclose(state, [AGENT_RADIUS, AGENT_RADIUS], atol=1e-6)


def test_sampled_states_are_free_and_cover_both_rooms():
    env = make()
    states = np.array([env.reset(seed=s)[1]["state"] for s in range(60)])
    assert all(TwoRoomEnv.is_free(s) for s in states)
    assert (states[:, 0] < 0.5).any() and (states[:, 0] > 0.5).any()


def test_pixels_change_when_the_agent_moves():
    env = make(image_size=64)
    obs, _ = env.reset(options={"state": [LEFT, 0.5], "goal_state": [RIGHT, 0.5]})
    assert obs["pixels"].std() > 10  # not a constant image: walls and dot are visible
    moved, _, _, _, _ = env.step([1.0, 0.0])
    assert np.abs(moved["pixels"].astype(int) - obs["pixels"]).sum() > 0
    far = env.render_state([LEFT, 0.8])
    assert (np.abs(far.astype(int) - obs["pixels"]).sum(-1) > 50).sum() > 10
    np.testing.assert_array_equal(moved["goal"], obs["goal"])  # the goal image is fixed


def test_render_224_and_gym_make():
    env = gym.make("lewm/TwoRoom-v0", image_size=224)
    obs, info = env.reset(seed=0)
    assert obs["pixels"].shape == (224, 224, 3) and obs["goal"].shape == (224, 224, 3)
    assert env.spec.max_episode_steps == 200
    assert not np.array_equal(obs["pixels"], obs["goal"])
    env.close()
    assert envs.make_env("lewm/TwoRoom-v0").unwrapped.image_size == 64
    with pytest.raises(ValueError, match="lewm/TwoRoom-v0"):
        envs.make_env("lewm/ThreeRoom-v0")
    assert "lewm/TwoRoom-v0" in envs.ENV_IDS


def test_time_limit_truncates():
    env = envs.make_env("lewm/TwoRoom-v0", image_size=16)
    env.reset(options={"state": [0.1, 0.1], "goal_state": [0.9, 0.9]})
    for t in range(200):
        _, _, terminated, truncated, _ = env.step(np.zeros(2, np.float32))
        assert not terminated
    assert truncated


def test_expert_reaches_the_goal():
    env = envs.make_env("lewm/TwoRoom-v0", image_size=16)
    policy = make_policy("expert", env, seed=0)
    assert isinstance(policy, TwoRoomExpert)
    successes = 0
    for ep in range(20):
        obs, info = env.reset(seed=ep)
        policy.reset(obs, info)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy(obs, info))
            done = terminated or truncated
        successes += info["is_success"]
    assert successes / 20 >= 0.8


def test_policy_registry():
    env = make()
    assert isinstance(make_policy("random", env, seed=0), RandomPolicy)
    with pytest.raises(KeyError, match="expert"):
        make_policy("planner", env, seed=0)
    a1, a2 = make_policy("random", env, seed=5), make_policy("random", env, seed=5)
    np.testing.assert_array_equal(a1({}, {}), a2({}, {}))


def test_gaussian_dot_is_the_reference_blob_with_soft_edges():
    from lewm_agent.envs.tworoom import AGENT_RGB, BACKGROUND_RGB, GAUSSIAN_DOT_STD

    state = np.array([0.25, 0.25], np.float32)
    frames = {}
    for dot in ("disc", "gaussian"):
        env = TwoRoomEnv(image_size=64, glow=0.0, dot=dot)
        frames[dot] = env.reset(options={"state": state, "goal_state": [0.75, 0.75]})[0]["pixels"].astype(int)
    centre = (16, 16)  # the pixel whose centre is nearest (0.25, 0.25) * 64 - 0.5
    assert np.abs(frames["gaussian"][centre] - np.array(AGENT_RGB)).max() <= 25  # near full opacity at the centre
    off = (16, 16 + 3)  # pixel centre (19.5, 16.5) px, 3.54 px from the dot centre (16, 16): outside the disc
    assert np.array_equal(frames["disc"][off], BACKGROUND_RGB)  # (radius 2.56 px), inside the blob's soft edge
    alpha = np.exp(-(3.5**2 + 0.5**2) / 64**2 / (2 * GAUSSIAN_DOT_STD**2))
    expected = np.rint(np.array(BACKGROUND_RGB) * (1 - alpha) + np.array(AGENT_RGB) * alpha)
    assert np.abs(frames["gaussian"][off] - expected).max() <= 1


def test_v1_is_the_papers_drawing_and_v0_keeps_the_glow():
    from lewm_agent.envs.tworoom import BACKGROUND_RGB

    v1, v0 = envs.make_env("lewm/TwoRoom-v1").unwrapped, TwoRoomEnv()
    assert (v1.glow, v1.dot) == (0.0, "gaussian") and (v0.glow, v0.dot) == (0.2, "disc")
    start = {"state": np.array([0.2, 0.2], np.float32), "goal_state": np.array([0.8, 0.8], np.float32)}
    row, col = int(0.2 * 64), int(0.35 * 64)  # 0.15 arena widths right of the dot: inside v0's halo only
    assert np.array_equal(v1.reset(options=start)[0]["pixels"][row, col], BACKGROUND_RGB)
    assert not np.array_equal(v0.reset(options=start)[0]["pixels"][row, col], BACKGROUND_RGB)
