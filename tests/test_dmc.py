"""DeepMind Control tasks: the goal-reaching Reacher and the reward-based pixel wrappers."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest

from lewm_agent import envs
from lewm_agent.envs.dmc import REACHER_SUCCESS_RAD, ReacherGoalEnv
from lewm_agent.envs.goal import wrap_angle
from lewm_agent.envs.policies import ReacherExpert, make_policy


@pytest.fixture(scope="module")
def reacher():
    env = ReacherGoalEnv(image_size=32)
    yield env
    env.close()


def test_wrap_angle():
    np.testing.assert_allclose(wrap_angle([0.0, np.pi + 0.1, -np.pi - 0.1, 4 * np.pi + 0.2]),
                               [0.0, -np.pi + 0.1, np.pi - 0.1, 0.2], atol=1e-9)


def test_reacher_success_is_every_joint_within_tolerance_with_the_shoulder_wrapped(reacher):
    goal = np.array([3.1, 0.5, 0.0, 0.0], np.float32)
    inside = 0.8 * REACHER_SUCCESS_RAD
    cases = [
        ([3.1 + inside, 0.5 - inside, 0.0, 0.0], True),
        ([3.1 - 2 * np.pi + inside, 0.5, 0.0, 0.0], True),  # the shoulder turns freely: wrapped
        ([3.1, 0.5 + 1.5 * REACHER_SUCCESS_RAD, 0.0, 0.0], False),  # one joint out is a failure
        ([3.1 + 1.5 * REACHER_SUCCESS_RAD, 0.5, 0.0, 0.0], False),
        ([3.1, 0.5, 5.0, -5.0], True),  # velocity does not matter
    ]
    for state, success in cases:
        _, info = reacher.reset(options={"state": np.float32(state), "goal_state": goal})
        assert info["is_success"] is success, state


def test_reacher_target_sphere_is_hidden_so_the_goal_comes_from_the_goal_image(reacher):
    model = reacher._physics.model
    assert model.geom_rgba[model.name2id("target", "geom")][3] == 0.0


def test_reacher_rejects_wrist_angles_beyond_the_joint_limit(reacher):
    with pytest.raises(ValueError, match="wrist"):
        reacher.reset(options={"state": [0.0, 3.2, 0.0, 0.0]})
    with pytest.raises(ValueError, match="radians"):
        reacher.reset(options={"state": [0.0, 90.0, 0.0, 0.0]})  # degrees by mistake


def test_reacher_accepts_the_soft_limit_overshoot_its_own_physics_reaches(reacher):
    """Random torques push the wrist past 160 degrees (2.805 rad was recorded): such a state replays."""
    _, info = reacher.reset(options={"state": [0.0, 2.805, 0.0, 0.0], "goal_state": [0.0, -2.805, 0.0, 0.0]})
    assert abs(info["state"][1] - 2.805) < 1e-5


def test_reacher_torque_moves_the_arm_the_right_way(reacher):
    reacher.reset(options={"state": [0.0, 0.0, 0.0, 0.0], "goal_state": [1.0, 0.0, 0.0, 0.0]})
    for _ in range(10):
        *_, info = reacher.step(np.array([1.0, 0.0], np.float32))
    assert info["state"][0] > 0.05 and info["state"][2] > 0.0  # positive shoulder torque: angle up


def test_reacher_expert_reaches_goals_and_random_does_not():
    env = envs.make_env("lewm/Reacher-v0", image_size=16)
    try:
        rates = {}
        for name in ("expert", "random"):
            wins = 0
            for ep in range(6):
                policy = make_policy(name, env, seed=ep)
                obs, info = env.reset(seed=ep)
                policy.reset(obs, info)
                for _ in range(150):
                    obs, _, terminated, truncated, info = env.step(policy(obs, info))
                    if terminated or truncated:
                        break
                wins += info["is_success"]
            rates[name] = wins / 6
        assert rates["expert"] >= 5 / 6 and rates["random"] <= 1 / 6, rates
        assert isinstance(make_policy("expert", env), ReacherExpert)
    finally:
        env.close()


def test_dmc_pixel_task_observes_frames_and_repeats_actions():
    env = envs.make_env("lewm/DMC-cartpole-swingup-v0", image_size=32, action_repeat=3)
    single = envs.make_env("lewm/DMC-cartpole-swingup-v0", image_size=32, action_repeat=1)
    try:
        assert env.observation_space == gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)
        obs, info = env.reset(seed=0)
        single.reset(seed=0)
        assert obs.dtype == np.uint8 and obs.shape == (32, 32, 3) and obs.std() > 2.0
        assert info["state"].dtype == np.float32 and info["state"].ndim == 1
        action = np.ones(env.action_space.shape, np.float32)
        obs3, reward3, *_, info3 = env.step(action)
        rewards = [single.step(action)[1] for _ in range(3)]
        assert reward3 == pytest.approx(sum(rewards))  # the suite's reward, summed over the repeats
        np.testing.assert_allclose(info3["state"], single.unwrapped._env.physics.get_state(), atol=1e-6)
        assert not np.array_equal(obs3, obs)
    finally:
        env.close()
        single.close()


def test_dmc_generic_id_needs_a_known_task():
    with pytest.raises(ValueError, match="task"):
        envs.make_env("lewm/DMC-v0")
    with pytest.raises(ValueError, match="unknown DeepMind Control task"):
        envs.make_env("lewm/DMC-v0", task="walker-fly")
    with pytest.raises(ValueError, match="action repeat"):
        envs.make_env("lewm/DMC-v0", task="walker-walk", action_repeat=0)


EXIT_SCRIPT = """
import sys
import gymnasium as gym
import numpy as np
import lewm_agent.envs  # noqa: F401  (registers the lewm/ ids)
kwargs = {"lewm/DMC-v0": {"task": "cartpole-swingup"}}
envs = []
for env_id in sys.argv[1:]:
    env = gym.make(env_id, image_size=16, **kwargs.get(env_id, {}))
    env.reset(seed=0)
    obs, *_, info = env.step(env.action_space.sample())
    envs.append((env_id, env, obs, info))  # never closed: freed at exit
# every env made since (and its GL context) must leave the earlier envs' renders alone
for env_id, env, obs, info in envs:
    again = env.unwrapped.render_state(info["state"]) if "goal" in obs else env.render()
    pixels = obs["pixels"] if "goal" in obs else obs
    if not np.array_equal(again, pixels):
        print("render changed", env_id, int(np.abs(again.astype(int) - pixels).max()))
print("ok")
"""


@pytest.mark.parametrize("env_ids", [
    ["lewm/Reacher-v0", "lewm/MetaWorld-reach-v3", "lewm/OGBench-cube-single-v0"],
    ["lewm/OGBench-cube-single-v0", "lewm/MetaWorld-reach-v3", "lewm/DMC-v0"],
])
def test_a_process_that_made_dmc_envs_exits_without_egl_tracebacks(env_ids):
    """dm_control and mujoco.egl (Meta-World's and OGBench's renderers) share one EGL display and each
    terminates it at exit; contexts freed after that printed EGL_BAD_DISPLAY tracebacks (issue 13). The
    same process re-renders each env's last state after every env is made: a dm_control env rendered
    garbage once another EGL context had been made current (a fresh process's first Reacher env did)."""
    import subprocess
    import sys

    pytest.importorskip("dm_control")
    proc = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, *env_ids], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "MUJOCO_GL": "egl"})
    if "Cannot initialize a headless EGL display" in proc.stderr or "Cannot initialize a EGL device" in proc.stderr:
        pytest.skip(f"no EGL here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr[-3000:]
