"""Reacher's scripted expert (registered for :class:`~lewm_agent.envs.dmc.ReacherGoalEnv` in ``envs/__init__.py``)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from lewm_agent.envs.dmc import ReacherGoalEnv
from lewm_agent.envs.goal import wrap_angle

__all__ = ["ReacherExpert"]


class ReacherExpert:
    """Noisy PD controller for :class:`~lewm_agent.envs.dmc.ReacherGoalEnv`.

    Torque ``kp * angle_error - kd * joint_velocity + N(0, noise_std)`` per joint, clipped to
    [-1, 1]; the shoulder error is wrapped (it turns freely), the wrist's is not (it is
    limited to +-160 degrees, so the short way round may be blocked).

    With the defaults (measured over 30 seeded episodes, 200-step limit): 100% success,
    mean episode length ~51 steps.

    Args:
        env: the Reacher env (wrapped or not); only used to check the type.
        kp: proportional gain (torque per rad).
        kd: damping gain (torque per rad/s).
        noise_std: std of the per-joint Gaussian torque noise.
        seed: seed of the policy's own random generator.
    """

    def __init__(self, env: gym.Env, kp: float = 2.0, kd: float = 0.2, noise_std: float = 0.5, seed: int | None = 0):
        if not isinstance(env.unwrapped, ReacherGoalEnv):
            raise TypeError(f"ReacherExpert needs a ReacherGoalEnv, got {type(env.unwrapped).__name__}")
        if kp <= 0 or kd < 0 or noise_std < 0:
            raise ValueError(f"need kp > 0, kd >= 0, noise_std >= 0; got kp={kp}, kd={kd}, noise_std={noise_std}")
        self.kp, self.kd, self.noise_std = float(kp), float(kd), float(noise_std)
        self.rng = np.random.default_rng(seed)

    def reset(self, obs: dict, info: dict) -> None:
        pass

    def __call__(self, obs: dict, info: dict) -> np.ndarray:
        state = np.asarray(info["state"], np.float64)
        goal = np.asarray(info["goal_state"], np.float64)
        error = np.array([wrap_angle(goal[0] - state[0]), goal[1] - state[1]])
        torque = self.kp * error - self.kd * state[2:] + self.rng.normal(0.0, self.noise_std, size=2)
        return np.clip(torque, -1.0, 1.0).astype(np.float32)
