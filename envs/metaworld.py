"""Meta-World v3 (MT1 tasks) as goal-conditioned pixel tasks: reach, push, pick-place and 39 more.

One Meta-World task (``task="push-v3"``, an MT1 name) is wrapped as a :class:`~lewm_agent.envs.goal.GoalEnv`:
the agent sees 64x64 frames from a fixed camera and a goal image, and must bring the task's
*achieved goal* to where it is in the goal state:

- reach tasks (``reach-v3``, ``reach-wall-v3``): the gripper centre (``tcp_center``);
- every other task: the main object (the first 3 entries of Meta-World's ``_get_pos_objects``,
  e.g. the puck in push-v3 and pick-place-v3, a drawer's handle in drawer-open-v3).

Success is Meta-World's own flag (``evaluate_state(...)["success"]``) with the task's internal
target (``_target_pos``) set to the goal state's achieved goal: reach-v3 succeeds when the hand is
within 0.05 m of it, push-v3 when the puck is within 0.05 m, pick-place-v3 within 0.07 m. The goal
distance (``info["distance"]``, the dense reward's negative) is the achieved-goal distance in metres.
8 of the 50 MT1 tasks are refused with a reason (:data:`UNSUPPORTED_TASKS`): their success flag is
not "the achieved goal is near the target", so goal states would not count as reached, or every
start would. For the 42 others, over 8 seeded resets each: no start counted as reached, every goal
state counted as reached, and the noiseless expert reached every goal from its start. (A few of
them, e.g. lever-pull-v3, test a quantity other than the target distance; their goal is then
"solve the task", which is what the goal image shows.)

Physical state (float32, metres / radians / MuJoCo units), in this order (see
:attr:`MetaWorldGoalEnv.state_layout`): ``qpos`` (nq), ``qvel`` (nv), ``mocap_pos`` (nmocap x 3),
``mocap_quat`` (nmocap x 4) and ``fixture_pos`` (3 per body that the task's reset moves in the
model, e.g. the drawer of drawer-open-v3; none for reach, push and pick-place). The hand is
driven by a mocap body, so the mocap pose is part of the state: without it the hand would spring
back to wherever the mocap was. reach/push/pick-place: 16 + 15 + 3 + 4 = 38 entries.

Default reset (no options): the start is Meta-World's own reset with a task variant (object and
target positions, uniform over the task's ranges as in MT1, not MT1's fixed 50) drawn from
``self.np_random``; the goal state is where Meta-World's noiseless scripted expert
(``metaworld.policies``) is when the task's success flag first holds, so goal images show a
physically reachable scene: the hand at the target for reach, the hand at / holding the object at
the target for push / pick-place (teleporting the object instead would leave pick-place's puck
floating in mid-air). Variants the expert cannot solve within :data:`GOAL_ROLLOUT_STEPS` steps, or
whose start already reaches the goal, are redrawn. This costs about 0.1-0.25 s per reset (physics
only, no rendering).

Images: the ``corner`` camera (default) is mounted upside down in Meta-World's scene; cameras whose
up axis points below the horizon are turned the right way up (both image axes flipped). Sites
(marker dots such as Meta-World's goal dot) are not drawn, so an image depends on the physical
state only. Multisample anti-aliasing, shadows and reflections are off (2-4x faster renders on a
software renderer). At 64x64 the puck of push/pick-place is 2-3 pixels wide from ``corner``.

Actions are Meta-World's: float32 (4,) in [-1, 1] = hand displacement (x, y, z) in units of 1 cm
per step (mocap) and gripper effort (+1 closes). One env step = 5 physics substeps (12.5 ms),
applied as Meta-World's ``step`` does but without its 500-step limit (which raises) and without
computing its reward; time limits come from ``TimeLimit`` (200 steps at registration).
"""

from __future__ import annotations

import contextlib
import difflib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from gymnasium import spaces

from lewm_agent.envs.goal import GoalEnv, fast_render_model, free_gl_at_exit, require

__all__ = ["GOAL_ROLLOUT_STEPS", "MetaWorldGoalEnv", "REACH_TASKS", "UNSUPPORTED_TASKS", "mt1_task_names"]

REACH_TASKS = ("reach-v3", "reach-wall-v3")  # tasks whose achieved goal is the hand, not an object
GOAL_ROLLOUT_STEPS = 200  # env steps the scripted expert gets to solve a variant when sampling a goal
# MT1 tasks whose success flag is not "the achieved goal is near the target" (measured, see the
# module docstring): refused with this reason.
_NEVER_REACHED = "a goal state does not count as reached under its own achieved goal"
_ALWAYS_REACHED = (
    "its object moves less than Meta-World's success radius while the task is solved, so every start "
    "would already count as reaching its goal"
)
UNSUPPORTED_TASKS: dict[str, str] = {
    "assembly-v3": f"success is the wrench hooked over the peg (a height test), not a distance; {_NEVER_REACHED}",
    "disassemble-v3": f"success is the wrench lifted off the peg (a height test), not a distance; {_NEVER_REACHED}",
    "peg-insert-side-v3": f"success measures the peg head, not the object Meta-World reports; {_NEVER_REACHED}",
    "stick-push-v3": "success needs the container (second object) at the target with the stick grasped, and "
                     "Meta-World's reward code raises for targets within 0.12 m of the container's start",
    "coffee-button-v3": _ALWAYS_REACHED,
    "dial-turn-v3": _ALWAYS_REACHED,
    "handle-pull-side-v3": _ALWAYS_REACHED,
    "peg-unplug-side-v3": _ALWAYS_REACHED,
}
_MAX_VARIANT_DRAWS = 20  # variants tried before giving up on an expert-solved goal
_MOCAP_TOLERANCE = 1e-3  # metres outside Meta-World's mocap box still accepted in a given state


def mt1_task_names() -> list[str]:
    """The MT1 task names ``MetaWorldGoalEnv`` accepts, sorted: all but :data:`UNSUPPORTED_TASKS`."""
    env_dict = require("metaworld.env_dict", "metaworld")
    return sorted(set(env_dict.ALL_V3_ENVIRONMENTS) - set(UNSUPPORTED_TASKS))


class MetaWorldGoalEnv(GoalEnv):
    """One Meta-World v3 task as a goal-conditioned pixel task (see the module docstring).

    Observation ``{"pixels", "goal"}`` uint8 (image_size, image_size, 3); action float32 (4,) in
    [-1, 1] (hand dx, dy, dz in cm per step, gripper effort); state float32 (``state_dim``,)
    laid out as :attr:`state_layout` says.

    Args:
        task: a Meta-World MT1 task name, e.g. ``"reach-v3"``, ``"push-v3"``, ``"pick-place-v3"``
            (:func:`mt1_task_names` lists them).
        image_size, reward_type, terminate_on_success, render_mode: see :class:`~lewm_agent.envs.goal.GoalEnv`.
        camera_name: a camera of Meta-World's scene (``"corner"``, ``"corner2"``, ``"corner3"``,
            ``"corner4"``, ``"topview"``, ...).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(
        self,
        task: str = "reach-v3",
        image_size: int = 64,
        reward_type: str = "dense",
        terminate_on_success: bool = True,
        render_mode: str | None = "rgb_array",
        camera_name: str = "corner",
    ) -> None:
        super().__init__(image_size, reward_type, terminate_on_success, render_mode)
        mujoco = require("mujoco", "metaworld")
        env_dict = require("metaworld.env_dict", "metaworld")
        mw_policies = require("metaworld.policies", "metaworld")
        names = sorted(set(env_dict.ALL_V3_ENVIRONMENTS) - set(UNSUPPORTED_TASKS))
        if task in UNSUPPORTED_TASKS:
            raise ValueError(
                f"Meta-World task {task!r} cannot be goal-conditioned here: {UNSUPPORTED_TASKS[task]}. "
                f"Supported MT1 tasks: {names}"
            )
        if task not in env_dict.ALL_V3_ENVIRONMENTS:
            close = difflib.get_close_matches(str(task), names, n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise ValueError(f"unknown Meta-World task {task!r}; supported MT1 tasks are {names}.{hint}")
        self._mujoco = mujoco
        self.task = task
        self.camera_name = camera_name
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)

        # The task class itself, without MT1's wrappers: variants are drawn from the env's own
        # np_random (seeded_rand_vec), as Meta-World's _make_tasks does when it builds MT1's tasks.
        inner = env_dict.ALL_V3_ENVIRONMENTS[task](render_mode=None, width=self.image_size, height=self.image_size)
        inner._freeze_rand_vec = False
        inner.seeded_rand_vec = True
        inner._set_task_called = True
        self._inner = inner
        self._model, self._data = inner.model, inner.data
        self._expert = mw_policies.ENV_POLICY_MAP[task]()  # noiseless; used to make default goals

        model = self._model
        camera_names = [model.camera(i).name for i in range(model.ncam)]
        if camera_name not in camera_names:
            inner.close()
            raise ValueError(f"unknown camera {camera_name!r} for {task}; Meta-World's cameras are {camera_names}")
        self._camera_id = camera_names.index(camera_name)

        self._fixture_ids = self._find_fixture_bodies()
        nq, nv, nm = model.nq, model.nv, model.nmocap
        sizes = {"qpos": nq, "qvel": nv, "mocap_pos": 3 * nm, "mocap_quat": 4 * nm,
                 "fixture_pos": 3 * len(self._fixture_ids)}
        self.state_layout: dict[str, slice] = {}
        start = 0
        for name, size in sizes.items():
            self.state_layout[name] = slice(start, start + size)
            start += size
        self.state_dim = start
        # qpos addresses of free-joint and ball-joint quaternions (checked in _validate_state).
        self._quat_adr = [
            int(model.jnt_qposadr[j]) + (3 if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE else 0)
            for j in range(model.njnt)
            if model.jnt_type[j] in (mujoco.mjtJoint.mjJNT_FREE, mujoco.mjtJoint.mjJNT_BALL)
        ]

        # Rendering: our own offscreen renderer, no shadows/reflections/MSAA, sites hidden.
        fast_render_model(model)
        model.vis.quality.offsamples = 0
        self._scene_option = mujoco.MjvOption()
        self._scene_option.sitegroup[:] = 0
        self._renderer = mujoco.Renderer(model, self.image_size, self.image_size)
        # Free the GL context at close() or, for an env never closed, at interpreter exit while EGL
        # is still up (Renderer.__del__ during teardown raises EGLError).
        self._free_renderer = free_gl_at_exit(self, self._renderer.close)
        up_axis = self._data.cam_xmat[self._camera_id].reshape(3, 3)[:, 1]  # camera frame y = image up
        self._flip = bool(up_axis[2] < 0)  # up axis below the horizon: the image is upside down

        self._goal_cache: tuple[bytes, np.ndarray] | None = None  # (goal_state bytes, achieved goal)
        self._solved_cache: tuple[bytes, np.ndarray] | None = None  # (start bytes, expert-made goal)
        self._closed = False

    # ------------------------------------------------------------------ public helpers
    @property
    def target_pos(self) -> np.ndarray:
        """float64 (3,): the current goal's achieved goal (metres), Meta-World's ``_target_pos``."""
        if self.goal_state is None:
            raise RuntimeError("target_pos is defined after reset(); call env.reset() first")
        return self._achieved(self.goal_state).copy()

    def achieved_goal(self, state: Any) -> np.ndarray:
        """float64 (3,): the achieved goal (hand for reach tasks, else the object) of ``state``, metres."""
        return self._achieved(self._check_state(state, "state")).copy()

    def expert_observation(self, state: Any = None, goal_state: Any = None) -> np.ndarray:
        """Meta-World's float64 (39,) observation of ``state``, with ``goal_state``'s achieved goal as goal.

        ``state`` / ``goal_state`` default to the live state and the current goal (e.g. pass
        ``info["state"]``, ``info["goal_state"]``). Layout as in Meta-World: hand (3), gripper
        opening (1), object poses (14), the same 18 for the "previous" frame (here the current one
        again: the scripted policies do not read it), goal (3). ``metaworld.policies`` experts take it.
        """
        if goal_state is None:
            goal = self.target_pos
        else:
            goal = self._achieved(self._check_state(goal_state, "goal_state"))
        if state is None:
            current = self._inner._get_curr_obs_combined_no_goal()
        else:
            state = self._check_state(state, "state")
            with self._state_swapped(state):
                current = self._inner._get_curr_obs_combined_no_goal()
        return np.hstack((current, current, goal))

    def scripted_action(self, observation: np.ndarray) -> np.ndarray:
        """Meta-World's scripted expert action (float32 (4,), clipped to [-1, 1]) for a (39,) observation."""
        with warnings.catch_warnings():  # metaworld.policies warns whenever its gain saturates
            warnings.simplefilter("ignore", UserWarning)
            action = self._expert.get_action(observation)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._free_renderer()
            self._inner.close()
        super().close()

    # ------------------------------------------------------------------ GoalEnv hooks
    def _sample_state(self, rng: np.random.Generator) -> np.ndarray:
        # Draw variants until the noiseless expert solves one; cache its goal for _sample_goal_state.
        # Goals the start already reaches (the object barely moved) are redrawn too.
        for _ in range(_MAX_VARIANT_DRAWS):
            start = self._meta_world_reset(rng)
            goal, solved = self._expert_goal(start, self._inner._target_pos)
            if solved and not self._is_success(start, goal):
                break
        self._solved_cache = (start.tobytes(), goal)
        return start

    def _sample_goal_state(self, rng: np.random.Generator, state: np.ndarray) -> np.ndarray:
        if self._solved_cache is not None and self._solved_cache[0] == state.tobytes():
            return self._solved_cache[1].copy()
        # A start given by the caller: the expert heads for the current target (last goal's, or
        # the variant drawn at construction) from there; its last state is used even if unsolved.
        goal, _ = self._expert_goal(state, np.array(self._inner._target_pos, np.float64))
        return goal

    def _set_state(self, state: np.ndarray) -> None:
        s = np.asarray(state, np.float64)
        lay, model, data = self.state_layout, self._model, self._data
        data.qpos[:] = s[lay["qpos"]]
        data.qvel[:] = s[lay["qvel"]]
        data.mocap_pos[:] = s[lay["mocap_pos"]].reshape(-1, 3)
        data.mocap_quat[:] = s[lay["mocap_quat"]].reshape(-1, 4)
        if self._fixture_ids:
            model.body_pos[self._fixture_ids] = s[lay["fixture_pos"]].reshape(-1, 3)
        data.qacc_warmstart[:] = 0.0  # solver warm start: same state -> same trajectory
        data.ctrl[:] = 0.0
        self._mujoco.mj_forward(model, data)

    def _get_state(self) -> np.ndarray:
        data = self._data
        parts = [data.qpos, data.qvel, data.mocap_pos.ravel(), data.mocap_quat.ravel()]
        if self._fixture_ids:
            parts.append(self._model.body_pos[self._fixture_ids].ravel())
        return np.concatenate(parts).astype(np.float32)

    def _validate_state(self, state: np.ndarray, name: str) -> None:
        lay = self.state_layout
        quats = [state[lay["qpos"]][a:a + 4] for a in self._quat_adr]
        quats += list(state[lay["mocap_quat"]].reshape(-1, 4))
        for q in quats:
            if not 0.5 <= float(np.linalg.norm(q)) <= 2.0:
                raise ValueError(
                    f"{name} holds quaternion {q.tolist()} with norm {np.linalg.norm(q):.3f}; quaternions "
                    f"(free-joint orientations in qpos, mocap_quat) must be unit (w, x, y, z). "
                    f"Layout: {self._layout_text()}"
                )
        mocap = state[lay["mocap_pos"]].reshape(-1, 3)
        low, high = self._inner.mocap_low - _MOCAP_TOLERANCE, self._inner.mocap_high + _MOCAP_TOLERANCE
        if np.any(mocap < low) or np.any(mocap > high):
            raise ValueError(
                f"{name} puts the hand's mocap at {mocap.tolist()}, outside Meta-World's reachable box "
                f"{self._inner.mocap_low.tolist()} .. {self._inner.mocap_high.tolist()} (m) for {self.task}; "
                f"use a state from this task (layout: {self._layout_text()})"
            )

    def _apply_action(self, action: np.ndarray) -> None:
        # What SawyerXYZEnv.step does, minus its 500-step limit, reward and observation.
        inner = self._inner
        inner.set_xyz_action(action[:3])
        inner.do_simulation([action[3], -action[3]], n_frames=inner.frame_skip)
        self._mujoco.mj_forward(self._model, self._data)  # positions of the new qpos (obs, success, image)

    def _render_live(self) -> np.ndarray:
        self._renderer.update_scene(self._data, camera=self._camera_id, scene_option=self._scene_option)
        image = self._renderer.render()
        if self._flip:
            image = image[::-1, ::-1]
        return np.ascontiguousarray(image)

    def _render_state(self, state: np.ndarray) -> np.ndarray:
        with self._state_swapped(state):
            return self._render_live()

    def _goal_distance(self, state: np.ndarray, goal_state: np.ndarray) -> float:
        return float(np.linalg.norm(self._achieved(state) - self._achieved(goal_state)))

    def _is_success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        self._inner._target_pos = self._achieved(goal_state).copy()
        with self._state_swapped(state):
            return self._meta_world_success()

    # ------------------------------------------------------------------ internals
    def _find_fixture_bodies(self) -> list[int]:
        """Ids of bodies whose model position the task's reset sets (e.g. a drawer placed per variant).

        Found by comparing ``model.body_pos`` before and after a few resets with a scratch seed;
        leaves the inner env reset (so ``_target_pos`` and friends are defined).
        """
        compiled = self._model.body_pos.copy()
        moved = np.zeros(self._model.nbody, bool)
        for seed in range(3):
            self._inner.np_random = np.random.default_rng(seed)
            self._inner.reset()
            moved |= np.any(np.abs(self._model.body_pos - compiled) > 1e-9, axis=1)
        return [int(i) for i in np.flatnonzero(moved)]

    def _meta_world_reset(self, rng: np.random.Generator) -> np.ndarray:
        """Meta-World's reset with a variant drawn from ``rng``; returns the float32 start state (live)."""
        self._inner.np_random = np.random.default_rng(int(rng.integers(2**63)))
        self._inner.reset()
        start = self._get_state()
        self._set_state(start)  # the float32 state GoalEnv will set, so the expert starts from it
        return start

    def _expert_goal(self, start: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, bool]:
        """Roll the noiseless expert from ``start`` toward ``target`` (no rendering).

        Returns ``(state when Meta-World's success first holds, True)``, or the last state and
        False after :data:`GOAL_ROLLOUT_STEPS`. The live state is left as it was.
        """
        snapshot = self._snapshot()
        inner = self._inner
        try:
            self._set_state(start)
            inner._target_pos = np.array(target, np.float64)
            for _ in range(GOAL_ROLLOUT_STEPS):
                current = inner._get_curr_obs_combined_no_goal()
                self._apply_action(self.scripted_action(np.hstack((current, current, inner._target_pos))))
                if self._meta_world_success():
                    return self._get_state(), True
            return self._get_state(), False
        finally:
            self._restore(snapshot)

    def _meta_world_success(self) -> bool:
        """Meta-World's success flag for the live state and the inner ``_target_pos``."""
        current = self._inner._get_curr_obs_combined_no_goal()
        observation = np.hstack((current, current, self._inner._target_pos))
        _, info = self._inner.evaluate_state(observation, np.zeros(4, np.float32))
        return bool(info["success"])

    def _achieved_live(self) -> np.ndarray:
        if self.task in REACH_TASKS:
            return np.array(self._inner.tcp_center, np.float64)
        return np.array(self._inner._get_pos_objects()[:3], np.float64)

    def _achieved(self, state: np.ndarray) -> np.ndarray:
        """float64 (3,) achieved goal of ``state`` (cached for the last goal state asked)."""
        key = state.tobytes()
        if self._goal_cache is not None and self._goal_cache[0] == key:
            return self._goal_cache[1]
        live = np.array_equal(state, self._get_state())
        with self._state_swapped(state):
            achieved = self._achieved_live()
        if live:
            return achieved
        self._goal_cache = (key, achieved)  # non-live states asked here are (almost always) goals
        return achieved

    @contextlib.contextmanager
    def _state_swapped(self, state: np.ndarray) -> Iterator[None]:
        """Make ``state`` live for the ``with`` block, then restore the live simulation exactly.

        A no-op when ``state`` already is the live state (every step's render and success test).
        """
        if np.array_equal(state, self._get_state()):
            yield
            return
        snapshot = self._snapshot()
        try:
            self._set_state(state)
            yield
        finally:
            self._restore(snapshot)

    def _snapshot(self) -> tuple[np.ndarray, ...]:
        """The live simulation in full precision (float64), warm start and controls included."""
        data = self._data
        return (data.qpos.copy(), data.qvel.copy(), data.mocap_pos.copy(), data.mocap_quat.copy(),
                self._model.body_pos[self._fixture_ids].copy(), data.qacc_warmstart.copy(), data.ctrl.copy())

    def _restore(self, snapshot: tuple[np.ndarray, ...]) -> None:
        data = self._data
        qpos, qvel, mocap_pos, mocap_quat, fixtures, warmstart, ctrl = snapshot
        data.qpos[:], data.qvel[:], data.mocap_pos[:], data.mocap_quat[:] = qpos, qvel, mocap_pos, mocap_quat
        if self._fixture_ids:
            self._model.body_pos[self._fixture_ids] = fixtures
        data.ctrl[:] = ctrl
        self._mujoco.mj_forward(self._model, data)
        data.qacc_warmstart[:] = warmstart  # after mj_forward, which overwrites it

    def _layout_text(self) -> str:
        return ", ".join(f"{k} [{s.start}:{s.stop}]" for k, s in self.state_layout.items() if s.stop > s.start)
