"""DeepMind Control Suite tasks with pixel observations, through shimmy.

Two kinds of task:

- :class:`ReacherGoalEnv` (``lewm/Reacher-v0``): goal-reaching reacher as in the LeWM paper.
  The goal is a target joint configuration; the goal image is the arm rendered in it (the
  suite's target sphere is hidden: the goal comes only from the goal image); success when
  every joint is within :data:`REACHER_SUCCESS_RAD` of the goal angles.
- :func:`make_dmc_pixels` (``lewm/DMC-<domain>-<task>-v0``, ``lewm/DMC-v0``): any
  ``dm_control/<domain>-<task>-v0`` with its own reward, observed as pixels only, with
  action repeat: the usual pixel-control benchmark setting for reward-based RL baselines.

Both render through EGL with shadows and reflections off (:func:`lewm_agent.envs.goal.fast_render_model`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lewm_agent.envs.goal import ActionRepeat, GoalEnv, fast_render_model, free_gl_at_exit, require, wrap_angle

__all__ = ["REACHER_SUCCESS_RAD", "ReacherGoalEnv", "DMCPixels", "make_dmc_pixels"]

REACHER_SUCCESS_RAD = 0.05  # every joint within this many radians of the goal angles
_WRIST_LIMIT = 2.7925268  # rad (160 degrees): the wrist hinge's range in reacher.xml
_LIMIT_SLACK = 0.25  # rad: MuJoCo's joint limits are soft, and hard torques push the wrist past them
# (2.805 rad seen under random torques); a given state may do the same, not more


def _shimmy_env(task: str, image_size: int, camera_id: int) -> gym.Env:
    """``gym.make("dm_control/<task>-v0")`` rendering ``image_size`` pixels from ``camera_id``."""
    shimmy = require("shimmy", "dmc")
    gym.register_envs(shimmy)
    env_id = f"dm_control/{task}-v0"
    if env_id not in gym.registry:
        known = sorted(k[len("dm_control/"):-3] for k in gym.registry if k.startswith("dm_control/"))
        raise ValueError(f"unknown DeepMind Control task {task!r}; known tasks: {known}")
    env = gym.make(
        env_id,
        render_mode="rgb_array",
        render_kwargs={"width": image_size, "height": image_size, "camera_id": camera_id},
    )
    fast_render_model(env.unwrapped._env.physics.model)
    return env


def _free_gl_at_exit(owner: gym.Env, physics: Any) -> Any:
    """:func:`~lewm_agent.envs.goal.free_gl_at_exit` for a dm_control ``physics``: its GL context is made now
    (else at the first render, after our exit hook, and dm_control's own hook would free it too late)."""
    physics.contexts  # noqa: B018  (the property makes the context)
    return free_gl_at_exit(owner, physics.free)


def _make_gl_current(physics: Any) -> None:
    """Make ``physics``' GL context current on dm_control's render thread, whatever dm_control believes.

    dm_control skips ``eglMakeCurrent`` for the context it last made current, so once another EGL
    context has been made current in the process (``mujoco.Renderer``: a Meta-World or OGBench env, or
    :func:`~lewm_agent.envs.goal.free_gl_at_exit`'s throwaway one), its renders read a framebuffer that is
    not its own: garbage that differs from call to call. Call before each render.
    """
    gl = physics.contexts.gl
    with gl.make_current() as ctx:
        ctx.call(gl._platform_make_current)


class ReacherGoalEnv(GoalEnv):
    """Two-link reacher: reach a goal joint configuration shown as an image.

    State (float32 (4,)): ``[shoulder, wrist, shoulder_vel, wrist_vel]`` in rad and rad/s
    (MuJoCo ``qpos`` then ``qvel``). The shoulder turns freely, the wrist is limited to
    +-160 degrees. Actions: torques in [-1, 1]^2 (the suite's actuators), one physics step of
    20 ms per env step.

    Sampled start states have random angles and zero velocity; sampled goals are random
    angles with zero velocity. Distance: the Euclidean norm of the wrapped joint-angle
    errors (rad); success: both errors below :data:`REACHER_SUCCESS_RAD` (velocity ignored).

    Args:
        image_size: side of the square images, pixels.
        camera_id: dm_control camera (0: the fixed top-down view, 1: the hand camera).
        reward_type, terminate_on_success, render_mode: see :class:`~lewm_agent.envs.goal.GoalEnv`.
    """

    state_dim = 4

    def __init__(
        self,
        image_size: int = 64,
        reward_type: str = "dense",
        terminate_on_success: bool = True,
        render_mode: str | None = "rgb_array",
        camera_id: int = 0,
    ) -> None:
        super().__init__(image_size, reward_type, terminate_on_success, render_mode)
        self._env = _shimmy_env("reacher-easy", self.image_size, camera_id)
        self._dm_env = self._env.unwrapped._env
        self._physics = self._dm_env.physics
        self._free_gl = _free_gl_at_exit(self, self._physics)  # else EGL_BAD_DISPLAY tracebacks at exit
        self._camera_id = int(camera_id)
        self._n_sub_steps = int(getattr(self._dm_env, "_n_sub_steps", 1))
        model = self._physics.model
        target = model.name2id("target", "geom")
        model.geom_matid[target] = -1  # the goal is shown by the goal image, not a sphere
        model.geom_rgba[target] = 0.0
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    # ------------------------------------------------------------------ hooks
    def _sample_state(self, rng: np.random.Generator) -> np.ndarray:
        angles = [rng.uniform(-np.pi, np.pi), rng.uniform(-_WRIST_LIMIT, _WRIST_LIMIT)]
        return np.array([*angles, 0.0, 0.0], np.float32)

    def _sample_goal_state(self, rng: np.random.Generator, state: np.ndarray) -> np.ndarray:
        return self._sample_state(rng)

    def _validate_state(self, state: np.ndarray, name: str) -> None:
        if abs(float(state[1])) > _WRIST_LIMIT + _LIMIT_SLACK:
            raise ValueError(
                f"{name}: wrist angle {float(state[1]):.3f} rad is outside the joint range "
                f"[-{_WRIST_LIMIT:.4f}, {_WRIST_LIMIT:.4f}] (+-{_LIMIT_SLACK} rad of soft-limit overshoot); "
                "angles are radians"
            )

    def _set_state(self, state: np.ndarray) -> None:
        physics = self._physics
        with physics.reset_context():  # runs mj_forward so positions and renders are current
            physics.data.qpos[:] = state[:2]
            physics.data.qvel[:] = state[2:]
            physics.data.ctrl[:] = 0.0

    def _get_state(self) -> np.ndarray:
        data = self._physics.data
        return np.concatenate([data.qpos, data.qvel]).astype(np.float32)

    def _apply_action(self, action: np.ndarray) -> None:
        self._physics.set_control(action)
        for _ in range(self._n_sub_steps):
            self._physics.step()

    def _render_live(self) -> np.ndarray:
        _make_gl_current(self._physics)
        return self._physics.render(self.image_size, self.image_size, camera_id=self._camera_id).copy()

    def _goal_distance(self, state: np.ndarray, goal_state: np.ndarray) -> float:
        return float(np.linalg.norm(wrap_angle(state[:2] - goal_state[:2])))

    def _is_success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        return bool(np.all(np.abs(wrap_angle(state[:2] - goal_state[:2])) < REACHER_SUCCESS_RAD))

    def close(self) -> None:
        self._env.close()
        self._free_gl()
        super().close()


class DMCPixels(gym.ObservationWrapper):
    """Replace a shimmy dm_control env's state observation by its rendered frame.

    Observation: uint8 (H, W, 3). ``info["state"]`` holds the physics state
    (float32 ``qpos``/``qvel``/``act``, as ``physics.get_state()``) for probes; the reward,
    termination and time limit are the suite's own.
    """

    def __init__(self, env: gym.Env, image_size: int) -> None:
        super().__init__(env)
        self.observation_space = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self._physics = env.unwrapped._env.physics
        self._free_gl = _free_gl_at_exit(self, self._physics)  # else EGL_BAD_DISPLAY tracebacks at exit

    def close(self) -> None:
        super().close()
        self._free_gl()

    def render(self) -> Any:
        _make_gl_current(self._physics)
        return self.env.render()

    def observation(self, observation: Any) -> np.ndarray:
        return np.asarray(self.render(), np.uint8)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = super().reset(**kwargs)
        info["state"] = self._physics.get_state().astype(np.float32)
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        info["state"] = self._physics.get_state().astype(np.float32)
        return obs, reward, terminated, truncated, info


def make_dmc_pixels(
    task: str | None = None,
    image_size: int = 64,
    action_repeat: int = 2,
    camera_id: int = 0,
    render_mode: str | None = "rgb_array",
) -> gym.Env:
    """A DeepMind Control task with pixel observations and the suite's own reward.

    Args:
        task: ``"<domain>-<task>"``, e.g. ``"cartpole-swingup"``, ``"walker-walk"``,
            ``"cheetah-run"``, ``"reacher-easy"`` (any ``dm_control/<task>-v0`` shimmy registers).
        image_size: side of the square frames, pixels.
        action_repeat: env steps per agent action (rewards summed); the suite's 1000-step
            episodes become ``1000 / action_repeat`` agent steps.
        camera_id: dm_control camera index (0 is each domain's default view).
        render_mode: ``"rgb_array"`` (``render()`` returns the frame) or None.

    Returns:
        A Gymnasium env: observation uint8 (image_size, image_size, 3), the suite's Box
        action space, reward per agent step, ``info["state"]`` the physics state.
    """
    if task is None:
        raise ValueError('make_dmc_pixels needs task="<domain>-<task>", '
                         'e.g. gym.make("lewm/DMC-v0", task="walker-walk")')
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
    env = _shimmy_env(task, int(image_size), int(camera_id))
    env = DMCPixels(env, int(image_size))
    return ActionRepeat(env, action_repeat)
