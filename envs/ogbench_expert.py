"""OGBench's scripted experts: cube pick-and-place and PointMaze navigation; AntMaze has none.

:func:`ogbench_expert` picks one by the task's family; it is registered for
:class:`~lewm_agent.envs.ogbench.OGBenchGoalEnv` in ``envs/__init__.py``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from lewm_agent.envs.goal import require
from lewm_agent.envs.ogbench import OGBenchGoalEnv

__all__ = ["OGBenchCubeExpert", "OGBenchMazeExpert", "ogbench_expert"]


class OGBenchCubeExpert:
    """Noisy scripted pick-and-place expert for OGBench cube tasks (:class:`~lewm_agent.envs.ogbench.OGBenchGoalEnv`).

    OGBench's own closed-loop oracle (``CubeMarkovOracle``, the controller behind its "noisy"
    cube datasets) carries the target cube to its position in ``info["goal_state"]``; with
    several cubes it moves them one at a time, lowest goal first (so stacks build bottom-up).
    Gaussian action noise as in OGBench's data generator: a per-episode level ``xi ~ U(0, noise)``
    and per-step std ``(xi, xi, xi, 3 xi, 10 xi)`` on (x, y, z, yaw, gripper); clipped to
    [-1, 1]. The oracle's random final arm pose is drawn from this policy's own generator.
    Variety between episodes also comes from the random start arm pose and cube yaw.

    The oracle reads the live proprioception of the OGBench env (``compute_ob_info``), so call
    the policy on the env it was built for, right after that env's reset or step.

    Measured with the defaults (visual-cube-single, 200-step limit): 100% success over 30
    sampled start/goal pairs, mean episode length ~50 steps; OGBench's five tasks: 95% (20
    episodes), ~62 steps; random actions: 5%.

    Args:
        env: an OGBenchGoalEnv visual-cube task (wrapped or not).
        noise: upper bound of the per-episode noise level ``xi`` (action units).
        min_norm: the oracle's minimum relative-position norm (OGBench's default 0.4).
        seed: seed of the policy's own random generator.
    """

    RELEASE_DISTANCE = 0.02  # metres; the oracle lets go of a cube this close to its goal

    def __init__(self, env: gym.Env, noise: float = 0.1, min_norm: float = 0.4, seed: int | None = 0) -> None:
        unwrapped = env.unwrapped
        if not isinstance(unwrapped, OGBenchGoalEnv) or unwrapped.family != "cube":
            raise TypeError(f"OGBenchCubeExpert needs an OGBenchGoalEnv visual-cube task, got {unwrapped}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0 (action units), got {noise}")
        oracles = require("ogbench.manipspace.oracles.markov.cube_markov", "ogbench")
        self.env = unwrapped
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)
        self._oracle = oracles.CubeMarkovOracle(env=unwrapped.ogbench_env, min_norm=min_norm)
        self._xi = 0.0  # this episode's noise level
        self._target = 0  # index of the cube being moved

    def reset(self, obs: dict, info: dict) -> None:
        # What CubeMarkovOracle.reset sets, drawn from our generator instead of NumPy's global one.
        oracle, inner = self._oracle, self.env.ogbench_env
        oracle._done, oracle._step = False, 0
        oracle._final_pos = self.rng.uniform(*inner._arm_sampling_bounds)
        oracle._final_yaw = self.rng.uniform(-np.pi, np.pi)
        self._xi = self.rng.uniform(0.0, self.noise)
        self._target = self._next_target(info, current=None)

    def _next_target(self, info: dict, current: int | None) -> int:
        """The current cube until it is placed and let go, then the unplaced cube with the lowest goal."""
        pos, _ = self.env.cube_poses(info["state"])
        goal, _ = self.env.cube_poses(info["goal_state"])
        gaps = np.linalg.norm(pos - goal, axis=-1)
        holding = self.env.ogbench_env.compute_ob_info()["proprio/gripper_contact"][0] > 0.1
        if current is not None and (gaps[current] > self.RELEASE_DISTANCE or holding):
            return current
        todo = np.flatnonzero(gaps > self.env.tolerance)
        if len(todo) == 0:
            return 0 if current is None else current
        return int(todo[np.argmin(goal[todo, 2])])

    def __call__(self, obs: dict, info: dict) -> np.ndarray:
        self._target = k = self._next_target(info, self._target)
        goal_pos, goal_yaw = self.env.cube_poses(info["goal_state"])
        oracle_info = self.env.ogbench_env.compute_ob_info()  # live proprioception and cube poses
        oracle_info["privileged/target_block"] = k
        oracle_info["privileged/target_block_pos"] = goal_pos[k]
        oracle_info["privileged/target_block_yaw"] = goal_yaw[k : k + 1]
        action = np.asarray(self._oracle.select_action(None, oracle_info), np.float64)
        xi = self._xi
        action = action + self.rng.normal(0.0, [xi, xi, xi, 3 * xi, 10 * xi])
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class OGBenchMazeExpert:
    """Noisy waypoint navigator for OGBench PointMaze (:class:`~lewm_agent.envs.ogbench.OGBenchGoalEnv`).

    A breadth-first search over the maze grid (OGBench's ``get_oracle_subgoal``) gives the next
    cell on a shortest path to the goal's cell; the policy heads for that cell's centre, and for
    the goal (x, y) of ``info["goal_state"]`` once in the goal's cell. Each action is the unit
    direction to the target (scaled down within one step of it) plus Gaussian noise of std
    ``noise_std`` per axis; with probability ``repeat_prob`` the previous action is repeated
    instead. Clipped to [-1, 1].

    Measured with the defaults (pointmaze-medium, 200-step limit): 98% success over 60 sampled
    start/goal pairs, mean episode length ~108 steps; random actions: 5%. OGBench's five tasks
    are longer (mean ~200 steps): 40% within 200 steps, 100% within 500.

    Args:
        env: an OGBenchGoalEnv PointMaze task (wrapped or not).
        noise_std: std of the per-axis Gaussian action noise (action units).
        repeat_prob: probability of repeating the previous action.
        seed: seed of the policy's own random generator.
    """

    STEP = 0.2  # maze units moved per step per unit of action (OGBench's PointEnv)

    def __init__(self, env: gym.Env, noise_std: float = 0.8, repeat_prob: float = 0.1, seed: int | None = 0) -> None:
        unwrapped = env.unwrapped
        if not isinstance(unwrapped, OGBenchGoalEnv) or unwrapped.family != "pointmaze":
            raise TypeError(f"OGBenchMazeExpert needs an OGBenchGoalEnv pointmaze task, got {unwrapped}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        if not 0.0 <= repeat_prob < 1.0:
            raise ValueError(f"repeat_prob must be in [0, 1), got {repeat_prob}")
        self.maze = unwrapped.ogbench_env
        self.noise_std = float(noise_std)
        self.repeat_prob = float(repeat_prob)
        self.rng = np.random.default_rng(seed)
        self._last: np.ndarray | None = None

    def reset(self, obs: dict, info: dict) -> None:
        self._last = None

    def target(self, xy: np.ndarray, goal_xy: np.ndarray) -> np.ndarray:
        """The next waypoint (maze units): the next cell centre on a shortest path, or the goal."""
        if self.maze.xy_to_ij(xy) == self.maze.xy_to_ij(goal_xy):
            return goal_xy
        return np.asarray(self.maze.get_oracle_subgoal(xy, goal_xy)[0], np.float64)

    def __call__(self, obs: dict, info: dict) -> np.ndarray:
        if self._last is not None and self.rng.random() < self.repeat_prob:
            return self._last.copy()
        xy = np.asarray(info["state"][:2], np.float64)
        delta = self.target(xy, np.asarray(info["goal_state"][:2], np.float64)) - xy
        dist = float(np.linalg.norm(delta))
        action = delta / max(dist, 1e-9) * min(1.0, dist / self.STEP)
        action = action + self.rng.normal(0.0, self.noise_std, size=2)
        self._last = np.clip(action, -1.0, 1.0).astype(np.float32)
        return self._last.copy()


def ogbench_expert(env: gym.Env, seed: int | None = 0, **kwargs: Any) -> OGBenchCubeExpert | OGBenchMazeExpert:
    """The scripted expert for an OGBench task; AntMaze has none (KeyError)."""
    family = env.unwrapped.family
    if family == "cube":
        return OGBenchCubeExpert(env, seed=seed, **kwargs)
    if family == "pointmaze":
        return OGBenchMazeExpert(env, seed=seed, **kwargs)
    raise KeyError(
        f"no 'expert' policy for {env.unwrapped.ogbench_id}: OGBench collects AntMaze data with a pretrained "
        "locomotion policy, which cannot be downloaded here; use policy='random'"
    )
