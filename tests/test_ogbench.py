"""OGBench tasks: names, state round trips, OGBench's evaluation tasks, success, rendering, experts."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import lewm_agent.envs  # noqa: F401  (registers lewm/ ids, sets MUJOCO_GL)
from lewm_agent.envs.ogbench import CUBE_TOLERANCE, OGBenchGoalEnv, _resolve
from lewm_agent.envs.policies import OGBenchCubeExpert, OGBenchMazeExpert, make_policy

SIZE = 32


@pytest.fixture(scope="module")
def cube():
    env = OGBenchGoalEnv(name="visual-cube-single-v0", image_size=SIZE, show_arm=False)  # fast renders
    yield env
    env.close()


@pytest.fixture(scope="module")
def pointmaze():
    env = OGBenchGoalEnv(name="pointmaze-medium-v0", image_size=SIZE)
    yield env
    env.close()


@pytest.fixture(scope="module")
def antmaze():
    env = OGBenchGoalEnv(name="visual-antmaze-medium-navigate-v0", image_size=SIZE)
    yield env
    env.close()


def rollout(env, policy, seed, steps, options=None):
    obs, info = env.reset(seed=seed, options=options)
    policy.reset(obs, info)
    infos, frames = [info], [obs["pixels"]]
    for _ in range(steps):
        obs, _, terminated, _, info = env.step(policy(obs, info))
        infos.append(info)
        frames.append(obs["pixels"])
        if terminated:
            break
    return infos, frames


# ---------------------------------------------------------------------- names
@pytest.mark.parametrize(
    "name, family, ogbench_id",
    [
        ("visual-cube-single-v0", "cube", "visual-cube-single-v0"),
        ("visual-cube-double-play-v0", "cube", "visual-cube-double-v0"),
        ("pointmaze-large-navigate-v0", "pointmaze", "pointmaze-large-v0"),
        ("visual-antmaze-medium-navigate-v0", "antmaze", "visual-antmaze-medium-v0"),
    ],
)
def test_env_and_dataset_names_resolve(name, family, ogbench_id):
    assert _resolve(name)[:2] == (family, ogbench_id)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "cube-single-v0"}, "visual-cube-single-v0"),  # state-based variant: points to the visual one
        ({"name": "visual-pointmaze-medium-v0"}, "no visual PointMaze"),
        ({"name": "pointmaze-teleport-v0"}, "teleport"),
        ({"name": "visual-scene-v0"}, "unsupported"),
        ({}, "needs name="),
        ({"name": "pointmaze-medium-v0", "show_arm": False}, "cube tasks only"),
    ],
)
def test_bad_names_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OGBenchGoalEnv(**kwargs)


def test_generic_id_needs_a_name_and_registered_ids_have_limits():
    with pytest.raises(ValueError, match="needs name="):
        gym.make("lewm/OGBench-v0")
    assert gym.spec("lewm/OGBench-cube-single-v0").max_episode_steps == 200
    assert gym.spec("lewm/OGBench-antmaze-medium-v0").kwargs == {"name": "visual-antmaze-medium-navigate-v0"}


# ---------------------------------------------------------------------- cube
def test_cube_state_layout_and_reset_options_round_trip(cube):
    obs, info = cube.reset(seed=0)
    assert cube.state_dim == 41 and info["state"].shape == (41,) and info["state"].dtype == np.float32
    assert cube.action_space == gym.spaces.Box(-1, 1, (5,), np.float32)
    assert obs["pixels"].shape == obs["goal"].shape == (SIZE, SIZE, 3)
    state, goal = info["state"], info["goal_state"]
    np.testing.assert_allclose(cube.goal_positions(state), state[None, 14:17])  # the cube's free joint
    # the same pair given back reproduces the same observation
    obs2, info2 = cube.reset(options={"state": state, "goal_state": goal})
    np.testing.assert_array_equal(info2["state"], state)
    np.testing.assert_array_equal(obs2["pixels"], obs["pixels"])
    np.testing.assert_array_equal(obs2["goal"], obs["goal"])
    np.testing.assert_array_equal(obs["goal"], cube.render_state(goal))
    assert info["distance"] == pytest.approx(np.linalg.norm(state[14:17] - goal[14:17]), rel=1e-5)


def test_cube_success_uses_ogbench_tolerance_on_the_cube_position(cube):
    _, info = cube.reset(seed=1)
    start = info["state"]
    for offset, success in ((0.7 * CUBE_TOLERANCE, True), (1.3 * CUBE_TOLERANCE, False)):
        goal = start.copy()
        goal[15] += offset  # cube y
        goal[:6] += 0.3  # a different arm pose does not matter
        _, info = cube.reset(options={"state": start, "goal_state": goal})
        assert info["is_success"] is success
        assert info["distance"] == pytest.approx(offset, abs=1e-5)
    _, reward, terminated, _, info = cube.step(np.zeros(5, np.float32))
    assert reward == -info["distance"] and terminated is False


@pytest.mark.parametrize("task_id", [1, 4])
def test_cube_task_ids_follow_ogbench_task_infos(cube, task_id):
    obs, info = cube.reset(seed=0, options={"task_id": task_id})
    task = cube.ogbench_env.task_infos[task_id - 1]
    np.testing.assert_allclose(cube.goal_positions(info["goal_state"])[0], task["goal_xyzs"][0], atol=1e-6)
    start = cube.goal_positions(info["state"])[0]
    assert np.abs(start[:2] - task["init_xyzs"][0, :2]).max() <= 0.01 + 1e-6  # OGBench's +-1 cm noise
    np.testing.assert_array_equal(obs["goal"], cube.render_state(info["goal_state"]))
    assert not info["is_success"]


def test_cube_task_id_out_of_range(cube):
    with pytest.raises(ValueError, match=r"task_id must be in 1..5"):
        cube.reset(options={"task_id": 6})


def test_cube_rejects_bad_states(cube):
    _, info = cube.reset(seed=2)
    with pytest.raises(ValueError, match=r"shape \(41,\)"):
        cube.reset(options={"state": info["state"][:-1]})
    bad = info["state"].copy()
    bad[17:21] = 0.0  # the cube's quaternion
    with pytest.raises(ValueError, match="quaternion"):
        cube.reset(options={"goal_state": bad})


def test_cube_same_seed_same_trajectory_and_goal_render_leaves_live_state(cube):
    def run(seed, peek=False):
        obs, info = cube.reset(seed=seed)
        rng = np.random.default_rng(seed)
        states, frames = [info["state"]], [obs["pixels"]]
        for _ in range(4):
            if peek:
                cube.render_state(info["goal_state"])  # must not disturb the live physics
            obs, _, _, _, info = cube.step(rng.uniform(-1, 1, 5).astype(np.float32))
            states.append(info["state"])
            frames.append(obs["pixels"])
        return np.stack(states), np.stack(frames)

    a, b, c = run(5), run(5, peek=True), run(6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert np.abs(a[0][-1, :6] - a[0][0, :6]).max() > 1e-3  # the arm moved...
    assert np.abs(a[1][-1].astype(int) - a[1][0]).sum() > 0  # ...and the frame shows it
    np.testing.assert_array_equal(cube.render_state(a[0][-1]), a[1][-1])  # a frame is a function of the state


def test_cube_frames_show_the_cube(cube):
    _, info = cube.reset(seed=3)
    frame = cube.render()
    assert frame.std() > 5  # not black, not constant
    moved = info["state"].copy()
    moved[14] += 0.1  # the cube 10 cm further along x
    assert (np.abs(cube.render_state(moved).astype(int) - frame).sum(-1) > 30).sum() >= 2


def test_cube_expert_beats_random(cube):
    expert = make_policy("expert", cube, seed=0)
    assert isinstance(expert, OGBenchCubeExpert)
    infos, _ = rollout(cube, expert, seed=11, steps=120)
    assert infos[-1]["is_success"], infos[-1]["distance"]
    infos, _ = rollout(cube, make_policy("random", cube, seed=0), seed=11, steps=40)
    assert not infos[-1]["is_success"]


# ---------------------------------------------------------------------- mazes
def test_pointmaze_state_success_and_walls(pointmaze):
    obs, info = pointmaze.reset(seed=0)
    assert pointmaze.state_dim == 4 and pointmaze.action_space.shape == (2,) and pointmaze.tolerance == 1.0
    np.testing.assert_array_equal(obs["goal"], pointmaze.render_state(info["goal_state"]))
    start = np.array([0.0, 0.0, 0.0, 0.0], np.float32)  # the centre of cell (1, 1)
    for dx, success in ((0.9, True), (1.1, False)):
        _, info = pointmaze.reset(options={"state": start, "goal_state": start + [dx, 0, 0, 0]})
        assert info["is_success"] is success and info["distance"] == pytest.approx(dx, abs=1e-6)
    with pytest.raises(ValueError, match="wall"):
        pointmaze.reset(options={"state": [8.0, 0.0, 0.0, 0.0]})  # cell (1, 3) is a wall block
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        pointmaze.reset(options={"state": [0.0, 0.0]})


def test_pointmaze_task_ids_and_sampled_states(pointmaze):
    maze = pointmaze.ogbench_env
    for task_id in range(1, 6):
        _, info = pointmaze.reset(seed=task_id, options={"task_id": task_id})
        task = maze.task_infos[task_id - 1]
        assert maze.xy_to_ij(info["state"][:2]) == task["init_ij"]
        assert maze.xy_to_ij(info["goal_state"][:2]) == task["goal_ij"]
    for seed in range(10):
        _, info = pointmaze.reset(seed=seed)
        for s in (info["state"], info["goal_state"]):
            i, j = maze.xy_to_ij(s[:2])
            assert maze.maze_map[i, j] == 0


def test_pointmaze_frames_follow_the_point_and_are_deterministic(pointmaze):
    start = np.array([0.0, 0.0, 0.0, 0.0], np.float32)
    obs, _ = pointmaze.reset(options={"state": start, "goal_state": [20.0, 20.0, 0, 0]})
    assert obs["pixels"].std() > 10
    moved, _, _, _, info = pointmaze.step(np.array([1.0, 0.0], np.float32))
    assert info["state"][0] == pytest.approx(0.2, abs=1e-3)  # 0.2 maze units per step at full action
    assert np.abs(moved["pixels"].astype(int) - obs["pixels"]).sum() > 0
    a = rollout(pointmaze, make_policy("expert", pointmaze, seed=1), seed=4, steps=10)
    b = rollout(pointmaze, make_policy("expert", pointmaze, seed=1), seed=4, steps=10)
    np.testing.assert_array_equal(np.stack(a[1]), np.stack(b[1]))
    assert len(a[1]) == 11 and not np.array_equal(a[1][0], a[1][-1])


def test_pointmaze_expert_beats_random(pointmaze):
    expert = make_policy("expert", pointmaze, seed=0)
    assert isinstance(expert, OGBenchMazeExpert)
    # (1, 1) -> (3, 2) and (4, 4) -> (6, 6): 3 and 4 cells along the maze's corridors
    pairs = [([0.0, 0.0, 0, 0], [4.0, 8.0, 0, 0]), ([12.0, 12.0, 0, 0], [20.0, 20.0, 0, 0])]
    for start, goal in pairs:
        options = {"state": start, "goal_state": goal}
        assert rollout(pointmaze, expert, seed=0, steps=150, options=options)[0][-1]["is_success"]
        random = make_policy("random", pointmaze, seed=0)
        assert not rollout(pointmaze, random, seed=0, steps=60, options=options)[0][-1]["is_success"]


def test_antmaze_pixels_tasks_and_no_expert(antmaze):
    obs, info = antmaze.reset(seed=0, options={"task_id": 2})
    assert antmaze.state_dim == 29 and antmaze.action_space.shape == (8,) and antmaze.tolerance == 0.5
    task = antmaze.ogbench_env.task_infos[1]
    assert antmaze.ogbench_env.xy_to_ij(info["goal_state"][:2]) == task["goal_ij"]
    assert abs(float(np.linalg.norm(info["state"][3:7])) - 1.0) < 1e-3  # torso quaternion
    assert info["state"][2] < 0.7  # placed states are settled: the ant stands on the floor
    np.testing.assert_array_equal(obs["goal"], antmaze.render_state(info["goal_state"]))
    assert obs["pixels"].std() > 10
    for _ in range(5):
        moved, *_ = antmaze.step(np.ones(8, np.float32))
    assert np.abs(moved["pixels"].astype(int) - obs["pixels"]).sum() > 0
    again, info2 = antmaze.reset(seed=0, options={"task_id": 2})
    np.testing.assert_array_equal(info2["goal_state"], info["goal_state"])
    np.testing.assert_array_equal(again["pixels"], obs["pixels"])
    with pytest.raises(KeyError, match="random"):
        make_policy("expert", antmaze, seed=0)


def test_compare_expert_drives_the_cube_through_the_evaluation_loop(cube):
    """The comparison's batched expert builds each pair's oracle on the env that pair steps (the cube
    oracle reads that env's live simulator): it solves pairs taken from its own episodes."""
    from experiments.baselines.scripted import ExpertActor
    from lewm_agent.evaluation import EvalProtocol, StartGoalPair, evaluate

    pairs = []
    for seed in (3, 4):
        infos, _ = rollout(cube, make_policy("expert", cube, seed=seed), seed=seed, steps=40)
        pairs.append(StartGoalPair(seed, 5, infos[5]["state"], infos[min(30, len(infos) - 1)]["state"]))
    make = lambda: OGBenchGoalEnv(name="visual-cube-single-v0", image_size=16, show_arm=False)  # noqa: E731
    spare = make()
    try:
        result = evaluate(ExpertActor(spare, seed=0), make, pairs, EvalProtocol(num_episodes=2, budget=60),
                          progress=False)
    finally:
        spare.close()
    assert result.successes == 2, result.episodes
