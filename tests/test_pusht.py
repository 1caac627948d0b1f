"""PushT task: the GoalEnv contract, exact state reproduction, success, rendering, the expert."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import lewm_agent.envs  # noqa: F401  (registers lewm/PushT-v0 and -v1)
from lewm_agent.envs.policies import PushTExpert, make_policy
from lewm_agent.envs.pusht import (
    AGENT_RADIUS,
    ANGLE_WEIGHT,
    GOAL_POSE,
    SUCCESS_ANGLE,
    SUCCESS_POS,
    RELATIVE_SCALE,
    PushTGoalEnv,
    t_overlaps_disc,
)

# Agent in the top-left corner, block far from it: nothing moves while the agent holds still.
AGENT = [60.0, 60.0]
HOLD = np.array(AGENT, np.float32)  # action = the agent's own position


def state(agent=AGENT, block=(300.0, 300.0, 0.5), vel=(0.0,) * 5) -> np.ndarray:
    return np.array([*agent, *block, *vel], np.float32)


def make(**kwargs) -> PushTGoalEnv:
    return PushTGoalEnv(image_size=kwargs.pop("image_size", 32), **kwargs)


def pushing_rollout(env: PushTGoalEnv, steps: int, seed: int = 0):
    """Actions aimed at the block (so there are contacts); returns actions, infos, frames."""
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    actions, infos, frames = [], [info], [obs["pixels"]]
    for _ in range(steps):
        action = np.clip(info["state"][2:4] + rng.normal(0, 25, 2), 0, 512).astype(np.float32)
        obs, _, _, _, info = env.step(action)
        actions.append(action)
        infos.append(info)
        frames.append(obs["pixels"])
    return actions, infos, frames


def test_spaces_dtypes_info_and_registration():
    env = gym.make("lewm/PushT-v0", image_size=32)
    assert env.spec.max_episode_steps == 300
    assert env.action_space == gym.spaces.Box(0, 512, (2,), np.float32)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info2 = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert isinstance(reward, float) and reward == -info2["distance"] and terminated is False
    for inf in (info, info2):
        assert isinstance(inf["is_success"], bool) and isinstance(inf["distance"], float)
        assert inf["state"].dtype == np.float32 and inf["state"].shape == (10,)
        assert inf["goal_state"].dtype == np.float32 and inf["goal_state"].shape == (10,)
    env.close()


def test_default_start_and_goal_follow_gym_pusht():
    env = make()
    for seed in range(20):
        _, info = env.reset(seed=seed)
        s, g = info["state"], info["goal_state"]
        np.testing.assert_allclose(g[2:5], GOAL_POSE, atol=1e-6)  # the T-target
        np.testing.assert_array_equal(g[:2], s[:2])  # the agent stays where it starts
        assert not g[5:].any() and not s[5:].any()  # at rest
        assert np.all((s[:2] >= 50) & (s[:2] < 450)) and 0 <= s[4] < 2 * np.pi
        assert not t_overlaps_disc(s[2:5], s[:2], AGENT_RADIUS)
        assert not t_overlaps_disc(g[2:5], g[:2], AGENT_RADIUS)
        assert not info["is_success"]


def test_reset_options_and_goal_image_is_render_of_goal_state():
    env = make()
    start, goal = state(), state(agent=(400.0, 100.0), block=(200.0, 250.0, 2.0))
    obs, info = env.reset(options={"state": start, "goal_state": goal})
    np.testing.assert_array_equal(info["state"], start)
    np.testing.assert_array_equal(info["goal_state"], goal)
    np.testing.assert_array_equal(obs["goal"], env.render_state(goal))
    np.testing.assert_array_equal(obs["pixels"], env.render_state(start))
    assert not np.array_equal(obs["goal"], obs["pixels"])


def test_state_reproduces_the_episode_exactly_and_velocities_matter():
    env = make()
    actions, infos, frames = pushing_rollout(env, 40)
    moving = [k for k in range(40) if np.abs(infos[k]["state"][7:]).sum() > 0]  # block being pushed
    assert moving, "the rollout never pushed the block"
    # render_state of another state mid-episode leaves the live physics untouched
    env2 = make()
    env2.reset(options={"state": infos[0]["state"], "goal_state": infos[0]["goal_state"]})
    for t, action in enumerate(actions):
        if t == 20:
            env2.render_state(state())
        *_, info = env2.step(action)
    np.testing.assert_array_equal(info["state"], infos[-1]["state"])
    for k in (moving[0], 25):
        _, info = env2.reset(options={"state": infos[k]["state"], "goal_state": infos[k]["goal_state"]})
        np.testing.assert_array_equal(info["state"], infos[k]["state"])
        for action in actions[k:]:
            obs, *_, info = env2.step(action)
        np.testing.assert_array_equal(info["state"], infos[-1]["state"])
        np.testing.assert_array_equal(obs["pixels"], frames[-1])
    # Without the agent's or the block's velocities (gym-pusht's 5-d state), the next state differs.
    k = moving[0]
    for dims in (slice(5, 7), slice(7, 10)):
        partial = infos[k]["state"].copy()
        assert partial[dims].any()
        partial[dims] = 0.0
        env2.reset(options={"state": partial})
        *_, info = env2.step(actions[k])
        assert not np.allclose(info["state"][:5], infos[k + 1]["state"][:5], atol=1e-3), dims


def test_same_seed_same_expert_trajectory():
    def rollout(seed):
        env = make()
        obs, info = env.reset(seed=seed)
        policy = make_policy("expert", env, seed=seed)
        policy.reset(obs, info)
        states, frames = [info["state"]], [obs["pixels"]]
        for _ in range(15):
            obs, *_, info = env.step(policy(obs, info))
            states.append(info["state"])
            frames.append(obs["pixels"])
        return np.stack(states), np.stack(frames)

    (s1, f1), (s2, f2), (s3, _) = rollout(3), rollout(3), rollout(4)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(f1, f2)
    assert not np.array_equal(s1[0], s3[0])


@pytest.mark.parametrize("image_size", [16, 64])
def test_success_thresholds_in_world_units_whatever_the_image_size(image_size):
    env = make(image_size=image_size, reward_type="sparse")
    x, y, angle = 300.0, 300.0, 0.2
    goal = state(block=(x, y, angle))
    cases = [  # (block pose, success?)
        ((x + 0.95 * SUCCESS_POS, y, angle), True),
        ((x + 1.05 * SUCCESS_POS, y, angle), False),
        ((x, y - 0.7 * SUCCESS_POS, angle - 0.95 * SUCCESS_ANGLE), True),
        ((x, y, angle + 1.05 * SUCCESS_ANGLE), False),
        ((x, y, angle - 0.1 + 2 * np.pi), True),  # angles wrap
    ]
    for block, success in cases:
        env.reset(options={"state": state(block=block), "goal_state": goal})
        _, reward, terminated, _, info = env.step(HOLD)
        assert info["is_success"] is success and terminated is success and reward == float(success), block


def test_dense_reward_is_position_error_plus_weighted_angle_error():
    env = make()
    env.reset(options={"state": state(block=(330.0, 260.0, 0.5)), "goal_state": state(block=(300.0, 300.0, 0.3))})
    _, reward, terminated, _, info = env.step(HOLD)
    expected = 50.0 + ANGLE_WEIGHT * 0.2  # 30-40-50 triangle, 0.2 rad = 11.46 "degrees"
    assert info["distance"] == pytest.approx(expected, abs=1e-3) and reward == -info["distance"]
    assert not terminated


def test_a_given_goal_fixes_the_agent_as_in_the_reference_and_the_default_goal_does_not():
    block = (300.0, 300.0, 0.5)
    for agent_in_goal, success, distance in ((True, False, 30.0), (False, True, 0.0)):
        env = make(agent_in_goal=agent_in_goal)
        # block exactly at its goal pose, agent 30 units (> SUCCESS_POS) from the goal's agent position
        env.reset(options={"state": state(block=block), "goal_state": state(agent=(60.0, 90.0), block=block)})
        assert env.goal_fixes_agent is agent_in_goal
        _, _, terminated, _, info = env.step(HOLD)
        assert info["is_success"] is success and terminated is success
        assert info["distance"] == pytest.approx(distance, abs=1e-3)
    # the norm of the 4-D (agent, block) position error: 12 and 16 units make 20, just a failure
    env = make()
    env.reset(options={"state": state(block=block), "goal_state": state(agent=(60.0, 72.0), block=(300, 316, 0.5))})
    _, _, _, _, info = env.step(HOLD)
    assert info["distance"] == pytest.approx(20.0, abs=1e-3) and not info["is_success"]
    # the default goal (gym-pusht's T-target) says nothing of the agent: only the block counts
    env.reset(seed=0)
    assert not env.goal_fixes_agent
    with pytest.raises(ValueError, match="agent_in_goal must be a bool"):
        make(agent_in_goal="yes")


def test_expert_parks_the_agent_where_a_given_goal_shows_it():
    env = gym.make("lewm/PushT-v1", image_size=16)
    block = (300.0, 300.0, 0.5)  # already at its goal pose; the goal's agent is on the far side of the T
    obs, info = env.reset(options={"state": state(block=block), "goal_state": state(agent=(420.0, 420.0),
                                                                                      block=block)})
    policy = make_policy("expert", env, seed=0)
    policy.reset(obs, info)
    for _ in range(60):
        obs, _, terminated, _, info = env.step(policy(obs, info))
        if terminated:
            break
    assert info["is_success"], info["state"]
    assert PushTGoalEnv.goal_errors(info["state"], info["goal_state"], with_agent=False)[0] < SUCCESS_POS


def test_frames_are_gym_pusht_images_without_the_fixed_target():
    env = make(image_size=64)
    obs, _ = env.reset(seed=0)
    sim = env._sim
    sim.goal_pose = np.array([-1000.0, -1000.0, 0.0])  # gym-pusht's own drawing, target off-canvas
    np.testing.assert_array_equal(obs["pixels"], sim._get_img(sim._draw(), 64, 64))
    green = (obs["pixels"][..., 1].astype(int) - obs["pixels"][..., 0] > 60).sum()
    assert green == 0  # no LightGreen target area
    # draw_goal_zone=True: gym-pusht's frame exactly, for its default goal
    zone = make(image_size=64, draw_goal_zone=True)
    obs, _ = zone.reset(seed=0)
    zone._sim.goal_pose = np.array(GOAL_POSE)
    np.testing.assert_array_equal(obs["pixels"], zone._sim._get_img(zone._sim._draw(), 64, 64))


def test_frames_show_the_agent_and_change_when_it_moves():
    env = make(image_size=64)
    obs, _ = env.reset(options={"state": state(agent=(100.0, 400.0)), "goal_state": state()})
    assert obs["pixels"].std() > 5 and obs["pixels"].min() < 200  # real image, not blank
    blue = lambda img, x, y: img[int(y / 8), int(x / 8)]  # noqa: E731  (64 px for 512 units)
    assert blue(obs["pixels"], 100, 400)[2] > 150 > blue(obs["pixels"], 100, 400)[0]  # RoyalBlue disc
    for _ in range(10):
        obs, *_, info = env.step([400.0, 400.0])
    assert info["state"][0] > 390
    assert blue(obs["pixels"], 400, 400)[2] > 150 > blue(obs["pixels"], 400, 400)[0]
    assert (blue(obs["pixels"], 100, 400) > 240).all()  # background where it was


@pytest.mark.parametrize(
    "options, match",
    [
        ({"state": np.zeros(5)}, r"shape \(10,\)"),  # gym-pusht's own 5-d state: add velocities
        ({"state": state(block=(0.5, 0.5, 0.1)) * 2000}, "world units"),
        ({"goal_state": state(agent=(np.nan, 1.0))}, "finite"),
    ],
)
def test_reset_rejects_bad_states(options, match):
    with pytest.raises(ValueError, match=match):
        make().reset(options=options)


def test_bad_constructor_arguments_and_actions():
    with pytest.raises(ValueError, match="draw_goal_zone"):
        PushTGoalEnv(draw_goal_zone="yes")
    with pytest.raises(ValueError, match="relative"):
        PushTGoalEnv(relative="yes")
    with pytest.raises(ValueError, match="image_size"):
        PushTGoalEnv(image_size=4)
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        env.step(np.zeros(3))
    with pytest.raises(TypeError, match="PushTGoalEnv"):
        PushTExpert(gym.make("lewm/TwoRoom-v0"))


def test_relative_actions_offset_the_target_from_the_agent_wherever_it_is():
    env = gym.make("lewm/PushT-v1", image_size=16)
    assert env.action_space == gym.spaces.Box(-1, 1, (2,), np.float32)
    absolute = make()
    moves = []
    for agent in ([60.0, 60.0], [120.0, 420.0]):  # far from the block: no contacts
        start = state(agent=agent)
        env.reset(options={"state": start})
        _, _, _, _, info = env.step(np.array([0.5, -0.25], np.float32))
        moves.append(info["state"][:2] - start[:2])
        # the same step as gym-pusht's absolute target agent + 100 * action
        absolute.reset(options={"state": start})
        target = np.array(agent, np.float32) + RELATIVE_SCALE * np.array([0.5, -0.25], np.float32)
        _, _, _, _, info_abs = absolute.step(target)
        np.testing.assert_allclose(info["state"], info_abs["state"], atol=1e-4)
    np.testing.assert_allclose(moves[0], moves[1], atol=1e-4)  # the same action moves the agent the same way
    assert moves[0][0] > 5.0 and moves[0][1] < -2.5  # toward +x, -y
    env.reset(options={"state": state()})
    _, _, _, _, info = env.step(np.zeros(2, np.float32))  # zero offset: the agent holds still
    np.testing.assert_allclose(info["state"][:2], AGENT, atol=1e-4)


@pytest.mark.parametrize("env_id", ["lewm/PushT-v0", "lewm/PushT-v1"])
def test_expert_beats_random(env_id):
    env = gym.make(env_id, image_size=16)
    results = {}
    for name in ("expert", "random"):
        successes, distances = 0, []
        for seed in range(3):
            obs, info = env.reset(seed=seed)
            policy = make_policy(name, env, seed=seed)
            policy.reset(obs, info)
            terminated = truncated = False
            while not (terminated or truncated):
                obs, _, terminated, truncated, info = env.step(policy(obs, info))
            successes += info["is_success"]
            distances.append(info["distance"])
        results[name] = (successes, np.mean(distances))
    assert results["expert"][0] >= 2 and results["random"][0] == 0, results
    assert results["expert"][1] < results["random"][1] / 2, results
