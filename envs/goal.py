"""The goal-conditioned task contract every environment in ``envs/`` meets.

A :class:`GoalEnv` is a state-driven pixel goal-reaching task:

- the physical state is a float32 vector (``state_dim`` entries, task units);
- the agent sees ``{"pixels": uint8 (H, W, 3), "goal": uint8 (H, W, 3)}``, where the goal image
  is what the camera would show if the physical state were the goal state;
- ``reset(options={"state": s, "goal_state": g})`` starts from a given state and renders the goal
  from a given goal state; missing ones are sampled with ``self.np_random``;
  ``reset(options={"task_id": k})`` starts one of the suite's fixed evaluation tasks (where the
  suite defines them, e.g. OGBench's five tasks per environment);
- ``info`` always holds ``"is_success"`` (bool, the key Stable-Baselines3 reads), ``"state"`` and
  ``"goal_state"`` (float32 copies) and ``"distance"`` (float, task units);
- the reward is ``-distance`` (``reward_type="dense"``) or ``float(success)`` (``"sparse"``);
- episodes terminate on success (unless ``terminate_on_success=False``) and are never truncated
  here: time limits come from Gymnasium's ``TimeLimit`` (``max_episode_steps`` at registration).

A suite subclasses :class:`GoalEnv`, sets ``action_space`` and ``state_dim`` and implements the
``_``-prefixed hooks below; ``reset``/``step``/``render`` are written once, here. Rendering a
state that is not the live one (the goal image) is written once too: ``_render_state`` saves the
live state, sets the requested one, calls the suite's ``_render_live`` and restores. The frame of
the live state (every reset and step) always comes from ``_render_live``, with no save/restore.

Shared helpers for the MuJoCo suites live here as well: :func:`fast_render_model` (shadows and
reflections off, 3-5x faster renders), :func:`free_gl_at_exit` (GL contexts released before EGL is shut
down at interpreter exit) and :class:`ActionRepeat`; and :func:`wrap_angle` for the suites with angles in
their state.
"""

from __future__ import annotations

import abc
import atexit
import importlib
import os
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["ActionRepeat", "GoalEnv", "REWARD_TYPES", "fast_render_model", "free_gl_at_exit", "require", "wrap_angle"]

REWARD_TYPES = ("dense", "sparse")
_RESET_OPTION_KEYS = ("state", "goal_state", "task_id")


class GoalEnv(gym.Env, abc.ABC):
    """Abstract base class for state-driven, pixel-observed goal-reaching tasks.

    Args:
        image_size: side of the square observation and goal images, in pixels (>= 8).
        reward_type: ``"dense"`` (reward = -goal distance, task units) or ``"sparse"``
            (reward = 1.0 on success, else 0.0).
        terminate_on_success: end the episode (``terminated=True``) when the goal is reached.
        render_mode: ``"rgb_array"`` (``render()`` returns the current frame) or ``None``.

    Subclasses must set ``self.action_space`` in ``__init__`` and provide ``state_dim`` (class
    attribute or property) and the abstract hooks.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        image_size: int = 64,
        reward_type: str = "dense",
        terminate_on_success: bool = True,
        render_mode: str | None = "rgb_array",
    ) -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
            raise ValueError(
                f"image_size must be an int number of pixels, got {image_size!r} "
                f"({type(image_size).__name__}); pass e.g. image_size=64"
            )
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8 pixels, got {image_size}; pass e.g. 64 or 224")
        if reward_type not in REWARD_TYPES:
            raise ValueError(f"reward_type must be one of {REWARD_TYPES}, got {reward_type!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        cls = type(self)
        if cls._render_live is GoalEnv._render_live and cls._render_state is GoalEnv._render_state:
            raise TypeError(f"{cls.__name__} must implement _render_live or _render_state "
                            "(see lewm_agent.envs.goal.GoalEnv)")
        self.image_size = int(image_size)
        self.reward_type = reward_type
        self.terminate_on_success = bool(terminate_on_success)
        self.render_mode = render_mode

        image = spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
        self.observation_space = spaces.Dict({"pixels": image, "goal": image})

        self.goal_state: np.ndarray | None = None  # float32 (state_dim,), set by reset()
        self._goal_pixels: np.ndarray | None = None  # uint8 (H, W, 3), rendered once per reset
        self._pixels: np.ndarray | None = None  # uint8 (H, W, 3), the current frame

    # ------------------------------------------------------------------ hooks (subclass)
    state_dim: int  # length of the physical state vector

    @abc.abstractmethod
    def _sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random valid start state, float (state_dim,)."""

    @abc.abstractmethod
    def _sample_goal_state(self, rng: np.random.Generator, state: np.ndarray) -> np.ndarray:
        """A random valid goal state for start ``state``, float (state_dim,)."""

    @abc.abstractmethod
    def _set_state(self, state: np.ndarray) -> None:
        """Make ``state`` (float32 (state_dim,), already validated) the live physical state."""

    @abc.abstractmethod
    def _get_state(self) -> np.ndarray:
        """The live physical state, float32 (state_dim,) (a copy)."""

    @abc.abstractmethod
    def _apply_action(self, action: np.ndarray) -> None:
        """Advance the physics one env step under ``action`` (float32, already clipped)."""

    def _render_live(self) -> np.ndarray:
        """The uint8 (H, W, 3) image of the live physical state.

        Suites implement this (and get :meth:`_render_state` for free), or :meth:`_render_state`
        (and get this default, which renders ``_get_state()``), or both.
        """
        return self._render_state(self._get_state())

    def _render_state(self, state: np.ndarray) -> np.ndarray:
        """The uint8 (H, W, 3) image the agent would see in ``state``; live state unchanged.

        Default: save the live state, set ``state``, :meth:`_render_live`, restore.
        """
        saved = self._get_state()
        try:
            self._set_state(state)
            return self._render_live()
        finally:
            self._set_state(saved)

    def _task_states(self, task_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(state, goal_state)`` of the suite's evaluation task ``task_id`` (float (state_dim,) each).

        Optional hook; suites without fixed evaluation tasks keep this default, which raises.
        """
        raise ValueError(
            f"{type(self).__name__} has no fixed evaluation tasks (reset option task_id); "
            "pass options={'state': ..., 'goal_state': ...} instead"
        )

    @abc.abstractmethod
    def _goal_distance(self, state: np.ndarray, goal_state: np.ndarray) -> float:
        """Distance between ``state`` and ``goal_state`` in task units (>= 0)."""

    @abc.abstractmethod
    def _is_success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        """Whether ``state`` satisfies the goal ``goal_state``."""

    def _validate_state(self, state: np.ndarray, name: str) -> None:
        """Raise ValueError if ``state`` (float32, right shape, finite) is physically invalid.

        Optional hook; the default accepts every finite vector. ``name`` is the option key
        (``"state"`` or ``"goal_state"``) to put in the message.
        """

    # ------------------------------------------------------------------ Gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode.

        Args:
            seed: seeds ``self.np_random`` (Gymnasium semantics).
            options: optional ``{"state": float (state_dim,), "goal_state": float (state_dim,)}``;
                a missing entry is sampled. ``{"task_id": k}`` starts the suite's evaluation task
                ``k`` instead (it cannot be combined with ``state``/``goal_state``).

        Returns:
            ``(obs, info)`` with ``obs = {"pixels", "goal"}`` (uint8 (H, W, 3) each).
        """
        super().reset(seed=seed)
        options = {} if options is None else options
        if not isinstance(options, dict):
            raise TypeError(f"reset options must be a dict or None, got {type(options).__name__}")
        unknown = sorted(set(options) - set(_RESET_OPTION_KEYS))
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {unknown}; {type(self).__name__} accepts {list(_RESET_OPTION_KEYS)}"
            )

        task_id = options.get("task_id")
        if task_id is not None:
            if options.get("state") is not None or options.get("goal_state") is not None:
                raise ValueError("reset option task_id cannot be combined with state/goal_state; pass one or the other")
            if isinstance(task_id, bool) or not isinstance(task_id, (int, np.integer)):
                raise ValueError(f"reset option task_id must be an int, got {task_id!r}")
            task_state, task_goal = self._task_states(int(task_id))
            options = {"state": task_state, "goal_state": task_goal}

        if options.get("state") is not None:
            state = self._check_state(options["state"], "state")
        else:
            state = self._check_state(self._sample_state(self.np_random), "sampled state")
        self._set_state(state)
        state = self._get_state()

        if options.get("goal_state") is not None:
            goal = self._check_state(options["goal_state"], "goal_state")
        else:
            goal = self._check_state(self._sample_goal_state(self.np_random, state), "sampled goal_state")
        self.goal_state = goal
        self._goal_pixels = self._render_state(goal)
        self._pixels = self._render_live()
        return self._obs(), self._info(state)

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply one action (clipped to ``action_space``) and advance one env step.

        Returns:
            Gymnasium's ``(obs, reward, terminated, truncated, info)``; ``truncated`` is always
            False here (``TimeLimit`` sets it).
        """
        if self.goal_state is None:
            raise RuntimeError(f"{type(self).__name__}.step() called before reset(); call env.reset() first")
        self._apply_action(self._check_action(action))
        state = self._get_state()
        self._pixels = self._render_live()
        info = self._info(state)
        if self.reward_type == "dense":
            reward = -info["distance"]
        else:
            reward = float(info["is_success"])
        terminated = bool(info["is_success"] and self.terminate_on_success)
        return self._obs(), float(reward), terminated, False, info

    def render(self) -> np.ndarray | None:
        """The current frame, uint8 (H, W, 3) (a copy); ``None`` before the first reset."""
        return None if self._pixels is None else self._pixels.copy()

    # ------------------------------------------------------------------ public helpers
    def render_state(self, state: Any) -> np.ndarray:
        """The uint8 (H, W, 3) image for physical ``state`` (float (state_dim,)); live state unchanged."""
        return self._render_state(self._check_state(state, "state"))

    def simulate(self, state: Any, actions: Any) -> np.ndarray:
        """The true dynamics, off the live episode: states after each action from ``state``.

        For planning on true states (an oracle) or checking a plan. One physics step of this env
        per action, exactly what :meth:`step` would reach (wrappers such as ``ActionRepeat`` are
        not applied); the live state and the episode are unchanged.

        Args:
            state: float (state_dim,), or (B, state_dim) one start per sequence.
            actions: float (T, A), or (B, T, A) for B sequences; clipped to ``action_space``
                as :meth:`step` does.

        Returns:
            float32 (T, state_dim), or (B, T, state_dim) if either input has a batch axis: the
            state after actions 1..T.
        """
        acts = np.asarray(actions, dtype=np.float32)
        space = self.action_space
        assert isinstance(space, spaces.Box), "GoalEnv subclasses use a Box action space"
        if acts.ndim not in (2, 3) or acts.shape[-1:] != space.shape:
            raise ValueError(
                f"simulate: actions must have shape (T, {space.shape[0]}) or (B, T, {space.shape[0]}) "
                f"for {type(self).__name__}, got {acts.shape}"
            )
        if not np.all(np.isfinite(acts)):
            raise ValueError("simulate: actions must be finite")
        states = np.asarray(state, dtype=np.float32)
        if states.ndim not in (1, 2):
            raise ValueError(f"simulate: state must have shape ({self.state_dim},) or (B, {self.state_dim}), "
                             f"got {states.shape}")
        batched = acts.ndim == 3 or states.ndim == 2
        acts = acts if acts.ndim == 3 else acts[None]
        states = states if states.ndim == 2 else states[None]
        B = max(len(acts), len(states))
        if len(acts) not in (1, B) or len(states) not in (1, B):
            raise ValueError(f"simulate: {len(states)} start states and {len(acts)} action sequences; "
                             "pass one or B of each")
        unique, inverse = np.unique(states, axis=0, return_inverse=True)  # validate each distinct start once
        checked = np.stack([self._check_state(s, "simulate state") for s in unique])
        starts = np.broadcast_to(checked[inverse.reshape(-1)], (B, self.state_dim))
        acts = np.broadcast_to(np.clip(acts, space.low, space.high), (B,) + acts.shape[1:])
        out = self._simulate(np.ascontiguousarray(starts), np.ascontiguousarray(acts, dtype=np.float32))
        return out if batched else out[0]

    def _simulate(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Hook behind :meth:`simulate`: states float32 (B, state_dim) (validated), actions float32
        (B, T, A) (clipped) -> float32 (B, T, state_dim). Default: one sequence at a time through
        ``_set_state`` / ``_apply_action`` / ``_get_state``, restoring the live state; suites may
        override it with a vectorised version that gives the same numbers."""
        B, T = actions.shape[:2]
        out = np.empty((B, T, self.state_dim), np.float32)
        saved = self._get_state()
        try:
            for b in range(B):
                self._set_state(states[b])
                for t in range(T):
                    self._apply_action(actions[b, t])
                    out[b, t] = self._get_state()
        finally:
            self._set_state(saved)
        return out

    # ------------------------------------------------------------------ internals
    def _obs(self) -> dict[str, np.ndarray]:
        assert self._pixels is not None and self._goal_pixels is not None
        return {"pixels": self._pixels.copy(), "goal": self._goal_pixels.copy()}

    def _info(self, state: np.ndarray) -> dict[str, Any]:
        assert self.goal_state is not None
        return {
            "is_success": bool(self._is_success(state, self.goal_state)),
            "state": np.array(state, dtype=np.float32),
            "goal_state": self.goal_state.copy(),
            "distance": float(self._goal_distance(state, self.goal_state)),
        }

    def _check_state(self, state: Any, name: str) -> np.ndarray:
        """``state`` as float32 (state_dim,), or a ValueError naming the expected shape."""
        try:
            arr = np.asarray(state, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{name} must be a float vector of shape ({self.state_dim},), got {state!r}"
            ) from err
        if arr.shape != (self.state_dim,):
            raise ValueError(
                f"{name} must have shape ({self.state_dim},) for {type(self).__name__}, got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite, got {arr.tolist()}")
        self._validate_state(arr, name)
        return arr.copy()

    def _check_action(self, action: Any) -> np.ndarray:
        """``action`` as a float32 array clipped to ``action_space``, or a clear ValueError."""
        space = self.action_space
        assert isinstance(space, spaces.Box), "GoalEnv subclasses use a Box action space"
        try:
            arr = np.asarray(action, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"action must be a float array of shape {space.shape} in [{space.low.min()}, "
                f"{space.high.max()}], got {action!r}"
            ) from err
        if arr.shape != space.shape:
            raise ValueError(
                f"action must have shape {space.shape} for {type(self).__name__}, got shape {arr.shape}; "
                "pass one action per step (batched actions need a VecEnv)"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"action must be finite, got {arr.tolist()}")
        return np.clip(arr, space.low, space.high).astype(np.float32)


def fast_render_model(model: Any) -> Any:
    """Turn shadows and reflections off in a MuJoCo ``MjModel`` (in place; returns it).

    Shadows dominate offscreen render cost on a software renderer: this makes 64x64 renders
    3-5x faster (ENV_NOTES) and the images easier to learn from. ``model`` is a raw
    ``mujoco.MjModel`` (for dm_control, pass ``physics.model.ptr`` or ``physics.model``).
    """
    model.light_castshadow[:] = 0
    model.mat_reflectance[:] = 0
    return model


_GL_FREES: list[weakref.finalize] = []  # one per live GL context of our envs, oldest first


def _free_gl_contexts() -> None:
    """Release every GL context :func:`free_gl_at_exit` knows of that is still alive, newest first."""
    for free in reversed(_GL_FREES):
        free()
    _GL_FREES.clear()


def _register_egl_shutdowns() -> None:
    """Make both EGL users of MuJoCo register their ``eglTerminate`` exit hook now, if they will ever do so.

    dm_control registers it when its EGL renderer is imported; ``mujoco.egl`` only when its first context is
    made (by ``mujoco.Renderer``: Meta-World, OGBench, any MuJoCo env made later in the process). A throwaway
    context makes ``mujoco.egl`` register it now, before :func:`free_gl_at_exit` registers its own hook,
    which therefore runs first (atexit runs the last registered first).
    """
    if os.environ.get("MUJOCO_GL") != "egl":
        return
    import mujoco.egl

    if mujoco.egl.EGL_DISPLAY is None:
        mujoco.egl.GLContext(1, 1).free()


def free_gl_at_exit(owner: object, free: Callable[[], None]) -> weakref.finalize:
    """Call ``free`` (it releases ``owner``'s GL context) once: when ``owner`` is garbage-collected, when the
    returned finalizer is called (from ``close()``), or at interpreter exit, before EGL is shut down.

    Why (issue 13): dm_control and ``mujoco.egl`` share one EGL display per device, and each terminates it
    in an atexit hook. A context freed after the first of those hooks (dm_control's own atexit hook for its
    contexts, ``mujoco.Renderer.__del__`` at teardown) fails with EGL_BAD_DISPLAY, printed as "Exception
    ignored in atexit callback" tracebacks after a successful run, e.g. by a process that made a DeepMind
    Control env and a Meta-World env. Here every context of our envs is freed by one hook that runs before
    both libraries' ``eglTerminate``. Call this after ``owner``'s context exists (dm_control makes its own at
    the first render: ``physics.contexts`` makes it at once). ``free`` must not refer to ``owner``, or the
    owner is never collected.
    """
    _register_egl_shutdowns()
    finalizer = weakref.finalize(owner, free)
    finalizer.atexit = False  # freed by _free_gl_contexts at exit, in the order that works
    _GL_FREES[:] = [f for f in _GL_FREES if f.alive] + [finalizer]
    atexit.unregister(_free_gl_contexts)  # registered again last: it runs before every hook registered so far
    atexit.register(_free_gl_contexts)
    return finalizer


class ActionRepeat(gym.Wrapper):
    """Repeat each action ``repeat`` times, summing rewards (the usual pixel-control setting).

    Stops early when the episode terminates or is truncated; ``info`` is the last step's.
    """

    def __init__(self, env: gym.Env, repeat: int) -> None:
        if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)) or repeat < 1:
            raise ValueError(f"action repeat must be an int >= 1, got {repeat!r}")
        super().__init__(env)
        self.repeat = int(repeat)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an ImportError naming the pip extra that installs it.

    Suites call this inside constructors so that ``import lewm_agent.envs`` works without any simulator.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{module!r} is needed for this task but could not be imported ({err}). Install it with "
            f"`pip install -c constraints.txt -e \".[{extra}]\"` (or `.[envs]` for every suite)."
        ) from err


def wrap_angle(angle: Any) -> np.ndarray:
    """Angles (rad, scalar or array) wrapped to [-pi, pi), as float64."""
    return (np.asarray(angle, np.float64) + np.pi) % (2.0 * np.pi) - np.pi
