"""Meta-World goal tasks: state round trips, success = Meta-World's flag, images, the noisy expert."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import lewm_agent.envs  # noqa: F401  (registers lewm/ ids, sets MUJOCO_GL before mujoco is imported)


from lewm_agent.envs.metaworld import UNSUPPORTED_TASKS, MetaWorldGoalEnv, mt1_task_names
from lewm_agent.envs.policies import MetaWorldExpert, RandomPolicy, make_policy

OBJ_QPOS = slice(9, 12)  # the puck's free-joint position in push-v3 / pick-place-v3 (Meta-World's _set_obj_xyz)
SUCCESS_RADIUS = {"reach-v3": 0.05, "push-v3": 0.05, "pick-place-v3": 0.07}  # Meta-World's thresholds, metres


@pytest.fixture(scope="module")
def reach():
    env = gym.make("lewm/MetaWorld-reach-v3", image_size=32)
    yield env
    env.close()


@pytest.fixture(scope="module")
def push():
    env = gym.make("lewm/MetaWorld-push-v3", image_size=16)
    yield env
    env.close()


def steps(env, actions):
    """Apply actions; return the list of (obs, info)."""
    out = []
    for a in actions:
        obs, _, _, _, info = env.step(np.asarray(a, np.float32))
        out.append((obs, info))
    return out


def red_row(image: np.ndarray) -> float:
    """Mean image row of the (red) robot arm's pixels."""
    img = image.astype(int)
    rows = np.nonzero((img[..., 0] > 100) & (img[..., 1] < 60) & (img[..., 2] < 60))[0]
    return float(rows.mean())


def test_spaces_state_layout_and_info(reach):
    obs, info = reach.reset(seed=0)
    env = reach.unwrapped
    assert reach.observation_space.contains(obs)
    assert reach.action_space == gym.spaces.Box(-1, 1, (4,), np.float32)
    assert env.state_dim == 38 and info["state"].shape == (38,) and info["state"].dtype == np.float32
    assert {k: (s.stop - s.start) for k, s in env.state_layout.items()} == {
        "qpos": 16, "qvel": 15, "mocap_pos": 3, "mocap_quat": 4, "fixture_pos": 0}
    assert isinstance(info["is_success"], bool) and not info["is_success"]
    # reach: the achieved goal is the hand; distance in metres between hands
    np.testing.assert_allclose(env.target_pos, env.achieved_goal(info["goal_state"]))
    assert info["distance"] == pytest.approx(
        np.linalg.norm(env.achieved_goal(info["state"]) - env.target_pos), abs=1e-6)
    assert 0.1 < info["distance"] < 0.5
    # the expert's observation carries the goal's achieved position, as Meta-World's does its target
    np.testing.assert_allclose(env.expert_observation()[-3:], env.target_pos)


def test_seeded_reset_and_state_round_trip_reproduce_images_and_trajectories(reach):
    actions = np.random.default_rng(0).uniform(-1, 1, (12, 4))
    obs1, info1 = reach.reset(seed=3)
    traj1 = steps(reach, actions)
    obs2, info2 = reach.reset(seed=3)
    traj2 = steps(reach, actions)
    for key in ("pixels", "goal"):
        np.testing.assert_array_equal(obs1[key], obs2[key])
    for (o1, i1), (o2, i2) in zip(traj1, traj2):
        np.testing.assert_array_equal(i1["state"], i2["state"])
        np.testing.assert_array_equal(o1["pixels"], o2["pixels"])
    # a given (state, goal_state) reproduces the episode after an unrelated reset
    reach.reset(seed=4)
    obs3, info3 = reach.reset(options={"state": info1["state"], "goal_state": info1["goal_state"]})
    for key in ("pixels", "goal"):
        np.testing.assert_array_equal(obs1[key], obs3[key])
    assert info3["distance"] == pytest.approx(info1["distance"])
    traj3 = steps(reach, actions)
    np.testing.assert_array_equal(traj1[-1][1]["state"], traj3[-1][1]["state"])


def test_mocap_is_state_so_a_restored_hand_carries_on_where_it_was(reach):
    env = reach.unwrapped
    _, info = reach.reset(seed=0)
    start_hand = env.achieved_goal(info["state"])
    *_, (_, info) = steps(reach, [[1, 0, 0.5, 0]] * 15)  # the hand moves ~15 cm, lagging its mocap
    moved = info["state"]
    *_, (_, info) = steps(reach, [[0, 0, 0, 0]] * 5)
    hand_a = env.achieved_goal(info["state"])
    reach.reset(seed=1)
    reach.reset(options={"state": moved})
    *_, (_, info) = steps(reach, [[0, 0, 0, 0]] * 5)
    hand_b = env.achieved_goal(info["state"])
    assert np.linalg.norm(hand_a - start_hand) > 0.1
    np.testing.assert_allclose(hand_b, hand_a, atol=1e-4)


def test_goal_image_is_render_of_goal_state_and_rendering_leaves_state_alone(reach):
    obs, info = reach.reset(seed=5)
    env = reach.unwrapped
    np.testing.assert_array_equal(obs["goal"], env.render_state(info["goal_state"]))
    assert not np.array_equal(obs["goal"], obs["pixels"])
    before = env._get_state()
    env.render_state(info["goal_state"])
    np.testing.assert_array_equal(env._get_state(), before)
    # the step after a goal render is the step without it
    _, info_a = steps(reach, [[0.5, 0.5, 0, 0]])[0]
    reach.reset(seed=5)
    env.render_state(info["goal_state"])
    env.render_state(np.asarray(info["state"]) + 0)  # the live state: no swap
    _, info_b = steps(reach, [[0.5, 0.5, 0, 0]])[0]
    np.testing.assert_array_equal(info_a["state"], info_b["state"])


def test_default_goal_is_reached_by_the_scripted_expert_not_at_the_start(push):
    obs, info = push.reset(seed=0)
    env = push.unwrapped
    goal = info["goal_state"]
    assert not info["is_success"] and info["distance"] > SUCCESS_RADIUS["push-v3"]
    # the goal is a real scene: the puck on the table (z ~ 0.02-0.03 m), pushed there by the hand
    puck = env.achieved_goal(goal)
    assert 0.0 < puck[2] < 0.05
    observation = env.expert_observation(goal)  # Meta-World's layout: hand [0:3], puck [4:7]
    np.testing.assert_allclose(observation[4:7], puck)
    assert np.linalg.norm(observation[:3] - puck) < 0.06
    _, info = push.reset(options={"state": goal, "goal_state": goal})
    assert info["is_success"] and info["distance"] == 0.0
    _, reward, terminated, _, info = push.step(np.zeros(4, np.float32))
    assert terminated and reward == -info["distance"]


@pytest.mark.parametrize("task", ["push-v3", "pick-place-v3"])
def test_success_is_meta_worlds_object_radius(task):
    env = MetaWorldGoalEnv(task=task, image_size=8)
    try:
        _, info = env.reset(seed=1)
        goal = info["goal_state"]
        radius = SUCCESS_RADIUS[task]
        for offset, expected in ((radius - 0.01, True), (radius + 0.01, False)):
            start = goal.copy()
            start[OBJ_QPOS] += np.float32([offset, 0.0, 0.0])  # slide the puck along x
            _, info = env.reset(options={"state": start, "goal_state": goal})
            assert info["distance"] == pytest.approx(offset, abs=1e-4)
            assert info["is_success"] is expected, (offset, info["distance"])
    finally:
        env.close()


def test_reach_success_agrees_with_distance_along_a_trajectory(reach):
    _, info = reach.reset(seed=2)
    goal = info["goal_state"]
    reach.reset(options={"state": goal, "goal_state": goal})
    flags = []
    for _, info in steps(reach, [[0, 0, 1, 0]] * 10):  # the hand rises 1 cm per step
        assert info["is_success"] == (info["distance"] <= SUCCESS_RADIUS["reach-v3"])
        flags.append(info["is_success"])
    assert flags[0] and not flags[-1]


def test_images_are_upright_real_and_move_with_the_hand(reach):
    obs, _ = reach.reset(seed=0)
    img = obs["pixels"].astype(int)
    assert img.max() > 60 and img.std() > 10  # not black, not constant
    # the table (brown) is in the lower half of the upright corner view
    brown = (img[..., 0] > img[..., 2] + 25) & (img[..., 1] > img[..., 2] + 5) & (img[..., 0] < 200)
    assert np.nonzero(brown)[0].mean() > img.shape[0] / 2
    (up, _), = steps(reach, [[0, 0, 1, 0]] * 25)[-1:]
    (down, _), = steps(reach, [[0, 0, -1, 0]] * 40)[-1:]
    assert not np.array_equal(up["pixels"], down["pixels"])
    assert red_row(up["pixels"]) < red_row(down["pixels"])  # raising the hand raises the arm in the image


def test_fixture_tasks_keep_the_fixture_in_the_state():
    env = gym.make("lewm/MetaWorld-v0", task="drawer-open-v3", image_size=16)
    try:
        u = env.unwrapped
        assert u.state_layout["fixture_pos"].stop - u.state_layout["fixture_pos"].start == 3
        obs0, info0 = env.reset(seed=0)
        _, info1 = env.reset(seed=1)
        fixture = u.state_layout["fixture_pos"]
        assert not np.array_equal(info0["state"][fixture], info1["state"][fixture])  # the drawer moved
        obs, _ = env.reset(options={"state": info0["state"], "goal_state": info0["goal_state"]})
        np.testing.assert_array_equal(obs["pixels"], obs0["pixels"])
        np.testing.assert_array_equal(obs["goal"], obs0["goal"])
    finally:
        env.close()


def test_expert_beats_random(reach):
    def successes(make, max_steps):
        wins = 0
        for seed in range(3):
            obs, info = reach.reset(seed=100 + seed)
            policy = make(seed)
            policy.reset(obs, info)
            for _ in range(max_steps):
                obs, _, terminated, _, info = reach.step(policy(obs, info))
                wins += terminated
                if terminated:
                    break
        return wins

    # measured over 40 episodes of 200 steps: expert 97% (80 steps on average), random 0%
    assert successes(lambda s: make_policy("expert", reach, seed=s), 150) >= 2
    assert successes(lambda s: RandomPolicy(reach.action_space, seed=s), 50) == 0


def test_expert_noise_makes_episodes_differ_and_is_seeded(reach):
    def actions(seed):
        obs, info = reach.reset(seed=0)
        policy = MetaWorldExpert(reach, seed=seed)
        policy.reset(obs, info)
        out = []
        for obs, info in [(obs, info)] + [x for x in steps(reach, [[0, 0, 0, 0]] * 2)]:
            out.append(policy(obs, info))
        return np.stack(out)

    a, b, c = actions(0), actions(0), actions(1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.all(np.abs(a) <= 1.0)
    with pytest.raises(TypeError, match="MetaWorldGoalEnv"):
        MetaWorldExpert(gym.make("lewm/TwoRoom-v0"))


def test_task_and_camera_errors_name_the_choices():
    assert {"reach-v3", "push-v3", "pick-place-v3"} <= set(mt1_task_names())
    assert not set(UNSUPPORTED_TASKS) & set(mt1_task_names())
    with pytest.raises(ValueError, match=r"unknown Meta-World task 'push-v2'.*Did you mean \['push-v3'"):
        MetaWorldGoalEnv(task="push-v2")
    with pytest.raises(ValueError, match="dial-turn-v3.*cannot be goal-conditioned.*reach-v3"):
        MetaWorldGoalEnv(task="dial-turn-v3")
    with pytest.raises(ValueError, match="unknown camera 'front'.*corner"):
        MetaWorldGoalEnv(task="reach-v3", camera_name="front")


def test_bad_states_are_refused_with_the_layout(reach):
    _, info = reach.reset(seed=0)
    state = info["state"]
    with pytest.raises(ValueError, match=r"shape \(38,\)"):
        reach.reset(options={"state": state[:31]})
    bad_quat = state.copy()
    bad_quat[reach.unwrapped.state_layout["mocap_quat"]] = 0.0
    with pytest.raises(ValueError, match="quaternion.*mocap_quat"):
        reach.reset(options={"goal_state": bad_quat})
    far = state.copy()
    far[reach.unwrapped.state_layout["mocap_pos"]] = [0.0, 0.6, 2.0]
    with pytest.raises(ValueError, match="mocap.*outside"):
        reach.reset(options={"state": far})
