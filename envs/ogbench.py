"""OGBench tasks with pixel observations: visual cube manipulation, PointMaze and AntMaze.

One :class:`OGBenchGoalEnv` wraps an OGBench (Park et al., 2024) environment, chosen by its
OGBench name (``name=``):

- ``visual-cube-{single,double,triple,quadruple}-v0``: a UR5e arm with a Robotiq gripper moves
  cubes on a table (OGBench's ``front_pixels`` camera, transparent arm, purple gripper). Actions
  are OGBench's: float32 (5,) in [-1, 1] = relative end-effector (x, y, z) (5 cm per unit), yaw
  (0.3 rad per unit), gripper closing (per unit). Success: every cube centre within
  :data:`CUBE_TOLERANCE` (4 cm, OGBench's criterion) of its goal position.
- ``pointmaze-{medium,large,giant}-v0``: a point mass in a maze, seen from above (OGBench has
  no visual PointMaze: the state-based env is rendered with ``ob_type="pixels"``). Actions
  float32 (2,) in [-1, 1] = displacement (0.2 maze units per unit per step).
- ``visual-antmaze-{medium,large,giant}-v0``: OGBench's visual AntMaze (camera tracking the
  ant from behind, floor coloured by position). Actions float32 (8,) in [-1, 1] = joint torques.

Maze success: agent (x, y) within OGBench's goal tolerance of the goal (x, y) (1.0 maze units
for the point, 0.5 for the ant; a maze cell is 4 units). OGBench dataset names are accepted
too (``visual-cube-single-play-v0``, ``visual-antmaze-medium-navigate-v0``: the dataset part
is dropped). The teleport maze is not supported (its teleports draw from NumPy's global RNG).

State vector (float32, ``state_dim = nq + nv``): the MuJoCo ``qpos`` then ``qvel`` of the
physics, which is all the simulator's dynamic state (controls are recomputed from the state
and the action at every step). Cube: ``qpos`` (21) = 6 arm joints (rad), 8 gripper joints, cube
free joint (x, y, z in metres, quaternion w, x, y, z), ``qvel`` (20); one more free joint
(7 + 6) per extra cube. PointMaze: (x, y, vx, vy). AntMaze: ``qpos`` (15) = torso (x, y, z),
torso quaternion, 8 joint angles; ``qvel`` (14). ``distance`` is in metres (cube) or maze
units (mazes): the largest cube-to-goal distance, or the agent-to-goal (x, y) distance.

Evaluation tasks: ``reset(options={"task_id": k})`` (k = 1..5) starts OGBench's task ``k``
from its ``task_infos`` (start and goal cube positions, or start and goal maze cells, with
OGBench's position noise drawn from ``self.np_random``); the goal image is the render of the
goal state. Starts and goals sampled without options: cubes uniformly over OGBench's object
sampling area (random yaw, at least 7 cm apart) and the arm at a random OGBench start pose;
the maze agent near the centre of a uniformly drawn free cell (OGBench's +-1/4-cell noise).

Rendering: shadows and reflections are off; each step renders once (the inner env's own
observation is switched to its cheap state vector, since the visual envs render inside step).
Frames are rendered from the float32 state vector in a scratch ``MjData`` (OGBench's cameras),
so a frame is a function of ``info["state"]`` alone.
"""

from __future__ import annotations

import abc
import difflib
import re
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lewm_agent.envs.goal import GoalEnv, fast_render_model, free_gl_at_exit, require

__all__ = ["CUBE_TOLERANCE", "OGBenchGoalEnv", "SUPPORTED_NAMES"]

CUBE_TOLERANCE = 0.04  # metres; OGBench CubeEnv._compute_successes
_CUBE_MIN_SEPARATION = 0.07  # metres between sampled cube centres (cube side: 0.04)
_POSTURE_NOISE = 0.1  # uniform qpos / Gaussian qvel noise of OGBench's maze reset_model
_ANT_SETTLE_STEPS = 10  # env steps with zero torque so a placed ant lands on its legs
_QUAT_TOLERANCE = 1e-2  # accepted | |q| - 1 | for free-joint quaternions in a given state

_CUBE_RE = re.compile(r"^visual-cube-(single|double|triple|quadruple)(?:-(?:play|noisy))?-v0$")
_POINTMAZE_RE = re.compile(r"^pointmaze-(medium|large|giant)(?:-(?:navigate|stitch))?-v0$")
_ANTMAZE_RE = re.compile(r"^visual-antmaze-(medium|large|giant)(?:-(?:navigate|stitch|explore))?-v0$")
SUPPORTED_NAMES = (
    *(f"visual-cube-{n}-v0" for n in ("single", "double", "triple", "quadruple")),
    *(f"pointmaze-{m}-v0" for m in ("medium", "large", "giant")),
    *(f"visual-antmaze-{m}-v0" for m in ("medium", "large", "giant")),
)


def _resolve(name: Any) -> tuple[str, str, dict[str, Any]]:
    """``(family, OGBench env id, extra gym.make kwargs)`` for an OGBench env or dataset name."""
    if not isinstance(name, str):
        raise ValueError(
            f"name must be an OGBench environment name (str), got {name!r}; supported: {list(SUPPORTED_NAMES)} "
            "(OGBench dataset names such as 'visual-antmaze-medium-navigate-v0' work too)"
        )
    if m := _CUBE_RE.match(name):
        return "cube", f"visual-cube-{m.group(1)}-v0", {}
    if m := _POINTMAZE_RE.match(name):
        return "pointmaze", f"pointmaze-{m.group(1)}-v0", {"ob_type": "pixels"}
    if m := _ANTMAZE_RE.match(name):
        return "antmaze", f"visual-antmaze-{m.group(1)}-v0", {}
    hint = ""
    if re.match(r"^(cube|antmaze)-", name):
        hint = f" Pixel observations need the visual variant: 'visual-{name}'."
    elif name.startswith("visual-pointmaze"):
        hint = " OGBench has no visual PointMaze: pass 'pointmaze-...-v0' (rendered to pixels here)."
    elif "teleport" in name:
        hint = " The teleport maze is not supported (its teleports use NumPy's global RNG)."
    else:
        close = difflib.get_close_matches(name, SUPPORTED_NAMES, n=3)
        hint = f" Did you mean {close}?" if close else ""
    raise ValueError(
        f"unsupported OGBench environment {name!r}; supported: {list(SUPPORTED_NAMES)} "
        f"(and their OGBench dataset names, e.g. 'visual-cube-single-play-v0').{hint}"
    )


class _Sim(abc.ABC):
    """One OGBench physics: its MuJoCo model/data, camera, dynamics and task geometry."""

    def __init__(self, inner: Any, model: Any, data: Any) -> None:
        self.inner = inner  # the unwrapped OGBench env
        self.model = model
        self.data = data  # the live physics
        self.mujoco = require("mujoco", "ogbench")
        # For rendering and for settling placed ants: the live MjData is never borrowed, since
        # restoring it would refresh derived quantities (e.g. the effector pose that OGBench's
        # controller reads) that a step leaves one substep old, and so change the dynamics.
        self.scratch = self.mujoco.MjData(model)
        self._free_gl: Any = None  # frees the renderer's GL context, once there is one (see _free_at_exit)

    def _free_at_exit(self, renderer: Any) -> None:
        """Free ``renderer``'s GL context at close(), or at exit before EGL shuts down (else EGL_BAD_DISPLAY
        tracebacks at exit when a DeepMind Control env was made too). OGBench replaces its renderer at times
        (closing the old one): the new one is tracked instead."""
        tracked = self._free_gl.peek() if self._free_gl is not None else None
        if tracked is not None and tracked[1].__self__ is renderer:
            return
        if self._free_gl is not None:
            self._free_gl()
        self._free_gl = free_gl_at_exit(self, renderer.close)

    tolerance: float  # success radius, task units

    @property
    def num_tasks(self) -> int:
        return len(self.inner.task_infos)

    @abc.abstractmethod
    def positions(self, state: np.ndarray) -> np.ndarray:
        """The positions that decide success, float64 (k, 3) cube centres or (1, 2) agent (x, y)."""

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A random start or goal state, float64 (nq + nv,); the live physics is unchanged."""

    @abc.abstractmethod
    def task(self, task_id: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """OGBench task ``task_id`` (1-based, already checked) as ``(state, goal_state)``."""

    @abc.abstractmethod
    def step(self, action: np.ndarray) -> None:
        """Advance one env step (OGBench's own dynamics) without rendering."""

    @abc.abstractmethod
    def render(self, data: Any) -> np.ndarray:
        """uint8 (H, W, 3) image of the physics in MjData ``data``."""

    def hold_controls(self, data: Any) -> None:
        """Set ``data.ctrl`` to the value that holds ``data``'s configuration (after a state is set)."""
        data.ctrl[:] = 0.0

    def check(self, state: np.ndarray) -> str | None:
        """Why ``state`` is physically invalid (a message), or None."""
        return None

    def close(self) -> None:
        if self._free_gl is not None:
            self._free_gl()
        self.inner.close()


class _CubeSim(_Sim):
    """OGBench's visual cube scene (``CubeEnv`` with pixel colours), stepped without its renders."""

    tolerance = CUBE_TOLERANCE

    def __init__(self, inner: Any, show_arm: bool) -> None:
        # The first reset compiles the MJCF model (with the pixel variant's colours); task 1 is
        # named so OGBench does not draw a task from NumPy's global RNG.
        inner.reset(seed=0, options={"task_id": 1})
        # From here on the inner observation is OGBench's cheap state vector instead of a frame
        # rendered inside every step; frames are rendered once per step by `render`.
        inner._ob_type = "states"
        super().__init__(inner, inner._model, inner._data)
        self.lie = require("ogbench.manipspace.lie", "ogbench")
        model = self.model
        if not show_arm:
            # The visual cube draws the arm and gripper body at 10% opacity; their meshes
            # (~190k triangles) are ~90% of a software render. Alpha 0 skips them.
            for g in range(model.ngeom):
                mat = model.geom_matid[g]
                alpha = model.mat_rgba[mat, 3] if mat >= 0 else model.geom_rgba[g, 3]
                if model.body(model.geom_bodyid[g]).name.startswith("ur5e/") and alpha <= 0.1 + 1e-6:
                    model.geom_matid[g] = -1
                    model.geom_rgba[g, 3] = 0.0
        self.num_cubes = int(inner._num_cubes)
        joints = [model.joint(f"object_joint_{i}") for i in range(self.num_cubes)]
        self.cube_qpos = np.array([int(j.qposadr[0]) for j in joints])  # start of (x, y, z, qw, qx, qy, qz)
        self.arm_qpos = np.array([int(model.jnt_qposadr[j]) for j in inner._arm_joint_ids])
        self.gripper_qpos = int(model.jnt_qposadr[inner._gripper_opening_joint_id])

    def positions(self, state: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(state[a : a + 3], np.float64) for a in self.cube_qpos])

    def cube_poses(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cube centres float64 (k, 3) in metres and yaws float64 (k,) in radians."""
        yaws = [self.lie.SO3(wxyz=np.asarray(state[a + 3 : a + 7], np.float64)).compute_yaw_radians()
                for a in self.cube_qpos]
        return self.positions(state), np.array(yaws, np.float64)

    def _arm(self, rng: np.random.Generator) -> np.ndarray:
        """Arm joint angles for a random OGBench start pose (``initialize_arm``, drawn from ``rng``)."""
        inner, lie = self.inner, self.lie
        eff_pos = rng.uniform(*inner._arm_sampling_bounds)
        eff_ori = lie.SO3.from_z_radians(rng.uniform(-np.pi, np.pi)) @ inner._effector_down_rotation
        attach = lie.SE3.from_rotation_and_translation(eff_ori, eff_pos) @ inner._T_pa
        return inner._ik.solve(pos=attach.translation(), quat=attach.rotation().wxyz, curr_qpos=inner._home_qpos)

    def _compose(self, arm: np.ndarray, xyzs: np.ndarray, quats: np.ndarray) -> np.ndarray:
        qpos = self.model.qpos0.copy()  # gripper open
        qpos[self.arm_qpos] = arm
        for a, xyz, quat in zip(self.cube_qpos, xyzs, quats):
            qpos[a : a + 3] = xyz
            qpos[a + 3 : a + 7] = quat
        return np.concatenate([qpos, np.zeros(self.model.nv)])

    def _yaw_quat(self, yaw: float) -> np.ndarray:
        return np.asarray(self.lie.SO3.from_z_radians(yaw).wxyz, np.float64)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        bounds = self.inner._object_sampling_bounds  # [[x_min, y_min], [x_max, y_max]], metres
        while True:  # rejection: cubes apart (one or two tries in practice)
            xys = rng.uniform(bounds[0], bounds[1], size=(self.num_cubes, 2))
            gaps = np.linalg.norm(xys[:, None] - xys[None], axis=-1) + np.eye(self.num_cubes)
            if gaps.min() >= _CUBE_MIN_SEPARATION:
                break
        xyzs = np.concatenate([xys, np.full((self.num_cubes, 1), 0.02)], axis=1)  # resting on the table
        quats = [self._yaw_quat(rng.uniform(0, 2 * np.pi)) for _ in range(self.num_cubes)]
        return self._compose(self._arm(rng), xyzs, np.array(quats))

    def task(self, task_id: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        # As CubeEnv.initialize_episode in task mode: goal cubes unrotated at goal_xyzs, start
        # cubes at init_xyzs with +-1 cm of (x, y) noise and a random yaw, the arm at random poses.
        info = self.inner.task_infos[task_id - 1]
        order = rng.permutation(self.num_cubes) if self.inner._permute_blocks else np.arange(self.num_cubes)
        init, goal = info["init_xyzs"][order].copy(), info["goal_xyzs"][order].copy()
        identity = np.tile(self._yaw_quat(0.0), (self.num_cubes, 1))
        goal_state = self._compose(self._arm(rng), goal, identity)
        init[:, :2] += rng.uniform(-0.01, 0.01, size=(self.num_cubes, 2))
        quats = np.array([self._yaw_quat(rng.uniform(0, 2 * np.pi)) for _ in range(self.num_cubes)])
        return self._compose(self._arm(rng), init, quats), goal_state

    def hold_controls(self, data: Any) -> None:
        # Position actuators aimed at the current joint angles and gripper closure: no motion.
        inner = self.inner
        data.ctrl[inner._arm_actuator_ids] = data.qpos[self.arm_qpos]
        closure = np.clip(data.qpos[self.gripper_qpos] / 0.8, 0.0, 1.0)  # as CubeEnv's gripper_opening
        data.ctrl[inner._gripper_actuator_ids] = 255.0 * closure

    def step(self, action: np.ndarray) -> None:
        self.inner.step(action)

    def render(self, data: Any) -> np.ndarray:
        inner = self.inner
        if inner._renderer is None:
            inner._initialize_renderer()
        self._free_at_exit(inner._renderer)
        inner._renderer.update_scene(data, camera="front_pixels", scene_option=inner._scene_option)
        return inner._renderer.render()

    def close(self) -> None:
        if self.inner._renderer is not None:
            self.inner._renderer.close()
            self.inner._renderer = None
        super().close()


class _MazeSim(_Sim):
    """OGBench's PointMaze or AntMaze (``make_maze_env``) with pixel colours, stepped without renders."""

    def __init__(self, inner: Any, family: str) -> None:
        # Pixel colours and the renderer were set up by the constructor; the inner observation
        # becomes the cheap state vector so inner.step does not render (see `render`).
        inner._ob_type = "states"
        super().__init__(inner, inner.model, inner.data)
        self.family = family
        self.tolerance = float(inner._goal_tol)
        self.maze_map = np.asarray(inner.maze_map)
        self.free_cells = np.argwhere(self.maze_map == 0)  # (n, 2) of (i, j)
        self.unit = float(inner._maze_unit)

    def positions(self, state: np.ndarray) -> np.ndarray:
        return np.asarray(state[None, :2], np.float64)

    def cell_of(self, xy: np.ndarray) -> tuple[int, int]:
        """Maze cell (row i, column j) containing (x, y)."""
        return self.inner.xy_to_ij(xy)

    def is_free(self, xy: np.ndarray) -> bool:
        i, j = self.cell_of(xy)
        return 0 <= i < self.maze_map.shape[0] and 0 <= j < self.maze_map.shape[1] and self.maze_map[i, j] == 0

    def _near(self, ij: Any, rng: np.random.Generator) -> np.ndarray:
        """OGBench's ``add_noise``: a cell centre plus up to a quarter cell per axis."""
        return np.asarray(self.inner.ij_to_xy(ij), np.float64) + rng.uniform(-1, 1, size=2) * self.unit / 4

    def _place(self, xy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A state with the agent at ``xy``: OGBench's reset posture noise; an ant is let land first."""
        model = self.model
        qpos = self.inner.init_qpos + rng.uniform(-_POSTURE_NOISE, _POSTURE_NOISE, size=model.nq)
        qvel = self.inner.init_qvel + _POSTURE_NOISE * rng.standard_normal(model.nv)
        qpos[:2] = xy
        if self.family == "antmaze":
            qpos[3:7] /= np.linalg.norm(qpos[3:7])
            data = self.scratch
            self.mujoco.mj_resetData(model, data)  # zero controls and warm start
            data.qpos[:], data.qvel[:] = qpos, qvel
            self.mujoco.mj_step(model, data, nstep=_ANT_SETTLE_STEPS * self.inner.frame_skip)
            qpos, qvel = data.qpos.copy(), data.qvel.copy()
            qpos[:2] = xy  # landing shifts the torso by a few centimetres
        return np.concatenate([qpos, qvel])

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        ij = self.free_cells[rng.integers(len(self.free_cells))]
        return self._place(self._near(tuple(ij), rng), rng)

    def task(self, task_id: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        # As MazeEnv.reset: start near init_ij, goal at goal_ij (+ noise when add_noise_to_goal).
        info = self.inner.task_infos[task_id - 1]
        start_xy = self._near(info["init_ij"], rng)
        goal_xy = np.asarray(self.inner.ij_to_xy(info["goal_ij"]), np.float64)
        if self.inner._add_noise_to_goal:
            goal_xy = self._near(info["goal_ij"], rng)
        return self._place(start_xy, rng), self._place(goal_xy, rng)

    def check(self, state: np.ndarray) -> str | None:
        if not self.is_free(np.asarray(state[:2], np.float64)):
            return (
                f"agent (x, y) = {np.round(state[:2], 3).tolist()} is in cell {self.cell_of(state[:2])}, "
                f"which is a wall or outside the maze (free cells: maze_map == 0, cells {self.unit:g} units wide)"
            )
        return None

    def step(self, action: np.ndarray) -> None:
        self.inner.step(action)

    def render(self, data: Any) -> np.ndarray:
        inner = self.inner
        if inner.custom_renderer is None:
            inner.initialize_renderer()
        self._free_at_exit(inner.custom_renderer)
        inner.custom_renderer.update_scene(data, camera=inner.custom_camera)
        return inner.custom_renderer.render()

    def close(self) -> None:
        if self.inner.custom_renderer is not None:
            self.inner.custom_renderer.close()
            self.inner.custom_renderer = None
        super().close()


class OGBenchGoalEnv(GoalEnv):
    """An OGBench task as a state-driven pixel goal-reaching task (see the module docstring).

    Observation ``{"pixels", "goal"}`` uint8 (image_size, image_size, 3); action float32 in
    [-1, 1] (5 for cube, 2 for PointMaze, 8 for AntMaze); state float32 (nq + nv,) = MuJoCo
    qpos then qvel.

    Args:
        image_size, reward_type, terminate_on_success, render_mode: see :class:`GoalEnv`.
        name: OGBench environment (or dataset) name, one of :data:`SUPPORTED_NAMES`.
        show_arm: cube only; False leaves out the arm and gripper body (drawn at 10% opacity by
            OGBench; the purple gripper pads stay): about 8x faster renders on a CPU renderer.
    """

    def __init__(
        self,
        image_size: int = 64,
        reward_type: str = "dense",
        terminate_on_success: bool = True,
        render_mode: str | None = "rgb_array",
        name: str | None = None,
        show_arm: bool = True,
    ) -> None:
        super().__init__(image_size, reward_type, terminate_on_success, render_mode)
        if name is None:
            raise ValueError(f"OGBenchGoalEnv needs name=, one of {list(SUPPORTED_NAMES)}")
        self.family, self.ogbench_id, make_kwargs = _resolve(name)
        if not show_arm and self.family != "cube":
            raise ValueError(f"show_arm=False applies to visual-cube tasks only, not {name!r}")
        self.name = name
        require("ogbench", "ogbench")  # registers OGBench's env ids with Gymnasium
        self._mujoco = require("mujoco", "ogbench")
        with warnings.catch_warnings():
            # ManipSpaceEnv builds its action Box from float64 bounds whenever it is read (in its
            # own reset too): Gymnasium's cast warning, harmless.
            warnings.filterwarnings("ignore", message=".*precision lowered by casting to float32")
            inner = gym.make(
                self.ogbench_id, width=self.image_size, height=self.image_size, disable_env_checker=True, **make_kwargs
            ).unwrapped
            if self.family == "cube":
                self._sim: _Sim = _CubeSim(inner, show_arm)
            else:
                self._sim = _MazeSim(inner, self.family)
            low, high = inner.action_space.low, inner.action_space.high
        fast_render_model(self._sim.model)
        model = self._sim.model
        self.state_dim = int(model.nq + model.nv)
        self._nq = int(model.nq)
        # Free-joint quaternions (cube bodies, the ant torso): qpos offsets, validated on input.
        free = np.flatnonzero(model.jnt_type == self._mujoco.mjtJoint.mjJNT_FREE)
        self._quat_adr = [int(model.jnt_qposadr[j]) + 3 for j in free]
        self.action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)

    # ------------------------------------------------------------------ public helpers
    @property
    def tolerance(self) -> float:
        """Success radius: metres (cube) or maze units."""
        return self._sim.tolerance

    @property
    def num_tasks(self) -> int:
        """Number of OGBench evaluation tasks (``task_id`` runs from 1 to this)."""
        return self._sim.num_tasks

    @property
    def ogbench_env(self) -> Any:
        """The unwrapped OGBench env whose physics this env drives (for experts and inspection)."""
        return self._sim.inner

    def goal_positions(self, state: Any) -> np.ndarray:
        """The positions that decide success in ``state``: cube centres float64 (k, 3) in metres, or the
        agent (x, y) float64 (1, 2) in maze units."""
        return self._sim.positions(self._check_state(state, "state"))

    def cube_poses(self, state: Any) -> tuple[np.ndarray, np.ndarray]:
        """Cube centres float64 (k, 3) in metres and yaws float64 (k,) in radians (cube tasks only)."""
        if not isinstance(self._sim, _CubeSim):
            raise ValueError(f"cube_poses needs a visual-cube task, this env is {self.ogbench_id!r}")
        return self._sim.cube_poses(self._check_state(state, "state"))

    def close(self) -> None:
        if getattr(self, "_sim", None) is not None:
            self._sim.close()
            self._sim = None
        super().close()

    # ------------------------------------------------------------------ GoalEnv hooks
    def _sample_state(self, rng: np.random.Generator) -> np.ndarray:
        return self._sim.sample(rng)

    def _sample_goal_state(self, rng: np.random.Generator, state: np.ndarray) -> np.ndarray:
        while True:  # never a goal that is already reached
            goal = self._sim.sample(rng)
            if not self._is_success(state, goal):
                return goal

    def _task_states(self, task_id: int) -> tuple[np.ndarray, np.ndarray]:
        if not 1 <= task_id <= self.num_tasks:
            raise ValueError(
                f"task_id must be in 1..{self.num_tasks} for {self.ogbench_id} (OGBench's evaluation tasks), "
                f"got {task_id}"
            )
        return self._sim.task(task_id, self.np_random)

    def _validate_state(self, state: np.ndarray, name: str) -> None:
        for a in self._quat_adr:
            norm = float(np.linalg.norm(state[a : a + 4]))
            if abs(norm - 1.0) > _QUAT_TOLERANCE:
                raise ValueError(
                    f"{name}[{a}:{a + 4}] is a free-joint quaternion (w, x, y, z) and must have unit norm, "
                    f"got norm {norm:.4f}; normalise it"
                )
        problem = self._sim.check(state)
        if problem is not None:
            raise ValueError(f"{name} is not a valid {self.ogbench_id} state: {problem}")

    def _set_state(self, state: np.ndarray) -> None:
        self._write_state(self._sim.data, state)

    def _write_state(self, data: Any, state: np.ndarray) -> None:
        """Make ``state`` the physics in MjData ``data``, with its derived quantities up to date."""
        mujoco, sim = self._mujoco, self._sim
        data.qpos[:] = state[: self._nq]
        data.qvel[:] = state[self._nq :]
        sim.hold_controls(data)
        mujoco.mj_forward(sim.model, data)
        # The solver's warm start is the one piece of MjData that matters for the next step and
        # that the state vector leaves out: zero it so that a state always continues the same way.
        data.qacc_warmstart[:] = 0.0
        mujoco.mj_rnePostConstraint(sim.model, data)  # contact forces (OGBench's gripper_contact)

    def _get_state(self) -> np.ndarray:
        return np.concatenate([self._sim.data.qpos, self._sim.data.qvel]).astype(np.float32)

    def _apply_action(self, action: np.ndarray) -> None:
        self._sim.step(action)

    def _render_state(self, state: np.ndarray) -> np.ndarray:
        # Every frame, the live one included, is rendered from the float32 state vector in the
        # scratch MjData: a frame is a function of the state alone and the live physics is untouched.
        self._write_state(self._sim.scratch, state)
        return np.ascontiguousarray(self._sim.render(self._sim.scratch), dtype=np.uint8)

    def _goal_distance(self, state: np.ndarray, goal_state: np.ndarray) -> float:
        gaps = np.linalg.norm(self._sim.positions(state) - self._sim.positions(goal_state), axis=-1)
        return float(gaps.max())

    def _is_success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        return self._goal_distance(state, goal_state) <= self._sim.tolerance
