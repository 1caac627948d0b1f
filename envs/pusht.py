"""PushT: push a T-shaped block to a goal pose with a round agent (gym-pusht 0.1.8, pymunk + pygame).

World (gym-pusht's, units = pixels of its 512 x 512 canvas; image column ~ x, row ~ y, row 0 at
y = 0): four walls at 5 and 506; the agent is a kinematic disc of radius 15; the block is a T
made of a 120 x 30 bar and a 30 x 90 stem. The block's *position* is its body origin (the middle
of the bar's top edge, in block coordinates the bar spans y in [0, 30] and the stem y in [30, 120]),
its *angle* is in radians, counter-clockwise in pymunk's frame (clockwise on screen).

State vector (float32, ``STATE_DIM`` = 10)::

    [agent_x, agent_y, block_x, block_y, block_angle,          # gym-pusht's own 5-d state
     agent_vx, agent_vy, block_vx, block_vy, block_omega]      # velocities (units/s, rad/s)

gym-pusht's 5-d state is not Markov: the PD controller integrates the agent's velocity, and
pymunk integrates positions with the block's velocity (the block's centre-of-mass velocity) left
by the previous step's contact impulses. The angle is wrapped to [0, 2 pi). Each env step also
rebuilds the pymunk space from the rounded float32 state, dropping the contact cache that pymunk
keeps between steps (warm-start impulses). After that, ``reset(options={"state": s})`` with any
``info["state"]`` continues the episode bit for bit. The only change to gym-pusht's physics is
that warm start is lost at the boundary of each 0.1 s env step (10 physics steps).

Actions: gym-pusht's target position of the agent, ``Box([0, 0], [512, 512])`` float32. A PD
controller tracks it for 10 physics steps of 0.01 s each (gym-pusht's ``k_p``, ``k_v``, ``dt``).
With ``relative=True`` (registered as ``lewm/PushT-v1``) the action is the LeWM reference's
instead (stable-worldmodel's ``swm/PushT-v1``): a displacement in ``Box(-1, 1, (2,))``, and the
target is ``agent position + RELATIVE_SCALE * action`` (100 world units per unit of action), so
the same action does the same thing wherever the agent is.

Default episode: the start is drawn like gym-pusht's reset (agent in [50, 450)^2, block origin in
[100, 400)^2 followed by gym-pusht's rotation about the centre of mass, angle uniform in
[-pi, pi)). Unlike gym-pusht, a start is redrawn if the agent overlaps the block or the
T-target, or if the block already meets the goal. A gym-pusht 5-d state ``s5`` can be given as
``np.concatenate([s5, np.zeros(5)])`` (at rest).
The goal state is gym-pusht's T-target pose ``(256, 256, pi / 4)`` for the block, with zero
velocities and the agent where it started.

Success follows the LeWM reference (stable-worldmodel's ``swm/PushT-v1`` ``eval_state``, from
DINO-WM): the position error < ``SUCCESS_POS`` (20 world units, whatever the image size) and the
wrapped block angle error < ``SUCCESS_ANGLE`` (pi / 9). The position error is the Euclidean norm
of the (agent x, agent y, block x, block y) error when the goal state was given
(``reset(options={"goal_state": ...})``, as in the LeWM protocol's start/goal pairs): the agent
must be where the goal frame shows it too. The default goal fixes only the block (gym-pusht's
T-target), and ``agent_in_goal=False`` keeps the block alone for every goal (lewm-agent's
criterion before 2026-11-27, more lenient). Distance = position error + ``ANGLE_WEIGHT`` * angle
error, i.e. world units + degrees (the two thresholds weigh the same: 20 units ~ 20 degrees).

Rendering: gym-pusht's own drawing code (pygame on the 512 x 512 canvas, then
``cv2.resize`` to ``image_size``, the same pixels as gym-pusht's ``get_obs``), one render per
step. gym-pusht also paints its fixed green T-target in every frame. That shape is right only
for the default goal and would be wrong for state-driven goals, so it is hidden: the goal comes
only from the goal image. With ``draw_goal_zone=True`` the green T is painted at the *episode's*
goal pose instead, in every frame and in the goal image.
"""

from __future__ import annotations

import os
from typing import Any

# pygame must not look for a display (headless machines, workers); set before it is imported.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402

from lewm_agent.envs.goal import GoalEnv, require, wrap_angle  # noqa: E402

__all__ = [
    "PushTGoalEnv",
    "STATE_DIM",
    "WORLD_SIZE",
    "AGENT_RADIUS",
    "T_OUTLINE",
    "GOAL_POSE",
    "SUCCESS_POS",
    "SUCCESS_ANGLE",
    "ANGLE_WEIGHT",
    "RELATIVE_SCALE",
    "t_contact_points",
    "t_overlaps_disc",
]

STATE_DIM = 10
WORLD_SIZE = 512.0  # gym-pusht's canvas and action range, world units
AGENT_RADIUS = 15.0  # gym-pusht's agent disc radius, world units
# Outline of the T in block coordinates (counter-clockwise in pymunk's frame): the bar's top
# edge is y = 0, the stem ends at y = 120 (gym-pusht's add_tee with scale 30, length 4).
T_OUTLINE = np.array(
    [(-60, 0), (60, 0), (60, 30), (15, 30), (15, 120), (-15, 120), (-15, 30), (-60, 30)], np.float64
)
_T_RECTS = ((-60.0, 60.0, 0.0, 30.0), (-15.0, 15.0, 30.0, 120.0))  # (x0, x1, y0, y1): bar, stem
GOAL_POSE = (256.0, 256.0, np.pi / 4)  # gym-pusht's goal_pose (x, y, angle) of the block
SUCCESS_POS = 20.0  # world units (20 px of 512, LeWM)
SUCCESS_ANGLE = np.pi / 9  # radians (20 degrees, LeWM)
ANGLE_WEIGHT = 180.0 / np.pi  # world units per radian in the distance (1 unit per degree)
RELATIVE_SCALE = 100.0  # world units of target offset per unit of relative action (stable-worldmodel's)
# Accepted positions in user-given states: the arena grown by a margin that covers blocks pushed
# through a wall (the kinematic agent can do that); anything farther is a units/layout mistake.
_POS_MARGIN = 160.0
_TWO_PI = 2.0 * np.pi


def _angle_f32(angle: float) -> np.float32:
    """``angle`` wrapped to [0, 2 pi) and rounded to float32 (never rounded up to 2 pi itself)."""
    a = np.float32(angle % _TWO_PI)
    return a if float(a) < _TWO_PI else np.float32(0.0)


def t_contact_points(spacing: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Points along the T's outline and their outward unit normals, block coordinates.

    Each edge of :data:`T_OUTLINE` is cut into pieces of at most ``spacing`` world units; the
    points are the pieces' midpoints. Returns ``(points, normals)``, float64 (K, 2) each.
    """
    if spacing <= 0:
        raise ValueError(f"spacing must be > 0 world units, got {spacing}")
    points, normals = [], []
    for a, b in zip(T_OUTLINE, np.roll(T_OUTLINE, -1, axis=0)):
        length = float(np.hypot(*(b - a)))
        normal = np.array([b[1] - a[1], a[0] - b[0]]) / length
        if t_overlaps_disc(np.zeros(3), (a + b) / 2 + normal, 0.5):  # pointing into the T: flip
            normal = -normal
        pieces = max(int(np.ceil(length / spacing)), 1)
        for t in (np.arange(pieces) + 0.5) / pieces:
            points.append(a + t * (b - a))
            normals.append(normal)
    return np.array(points), np.array(normals)


def t_overlaps_disc(block_pose: np.ndarray, centre: np.ndarray, radius: float) -> bool:
    """Whether a disc (world ``centre`` (2,), ``radius``) overlaps the T at ``block_pose``.

    ``block_pose`` is ``(x, y, angle)`` of the block origin (world units, radians).
    """
    x, y, angle = (float(v) for v in block_pose[:3])
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = float(centre[0]) - x, float(centre[1]) - y
    lx, ly = c * dx + s * dy, -s * dx + c * dy  # disc centre in block coordinates
    for x0, x1, y0, y1 in _T_RECTS:
        qx, qy = min(max(lx, x0), x1), min(max(ly, y0), y1)  # nearest point of the rectangle
        if (lx - qx) ** 2 + (ly - qy) ** 2 < radius**2:
            return True
    return False


class PushTGoalEnv(GoalEnv):
    """Push the T block to a goal pose, seen as pixels; gym-pusht's physics and drawing.

    Observations ``{"pixels", "goal"}``: uint8 ``(image_size, image_size, 3)``. Actions: the
    agent's target position, float32 (2,) in [0, 512] world units; with ``relative=True`` the
    target's offset from the agent, float32 (2,) in [-1, 1] (x ``RELATIVE_SCALE`` units). State: float32 (10,) (module
    docstring). Success: block (and agent, for a given goal state) within 20 world units and the
    block within pi / 9 rad of the goal pose (module docstring).

    Args:
        image_size: side of the square images, pixels (the 512-unit world is scaled to fit).
        reward_type: ``"dense"`` (-distance, world units + degrees) or ``"sparse"``.
        terminate_on_success: end the episode when the goal is reached.
        render_mode: ``"rgb_array"`` or ``None``.
        draw_goal_zone: paint gym-pusht's green T-target at the episode's goal pose in every
            frame (default False: the goal is given only by the goal image).
        relative: actions are target offsets from the agent in [-1, 1] (the LeWM reference's
            PushT) instead of absolute targets (gym-pusht's).
        agent_in_goal: a given goal state's agent position counts in success and distance (the
            LeWM reference's criterion); False: only the block counts.
    """

    state_dim = STATE_DIM

    def __init__(
        self,
        image_size: int = 64,
        reward_type: str = "dense",
        terminate_on_success: bool = True,
        render_mode: str | None = "rgb_array",
        draw_goal_zone: bool = False,
        relative: bool = False,
        agent_in_goal: bool = True,
    ) -> None:
        super().__init__(image_size, reward_type, terminate_on_success, render_mode)
        flags = (("draw_goal_zone", draw_goal_zone), ("relative", relative), ("agent_in_goal", agent_in_goal))
        for name, value in flags:
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name} must be a bool (True or False), got {value!r}")
        self.draw_goal_zone = bool(draw_goal_zone)
        self.relative = bool(relative)
        self.agent_in_goal = bool(agent_in_goal)
        self._agent_counts = False  # this episode's goal fixes the agent (set by reset)
        pusht = require("gym_pusht.envs.pusht", "pusht")
        self._pygame = require("pygame", "pusht")
        self._cv2 = require("cv2", "pusht")
        self._pymunk = require("pymunk", "pusht")
        self._DrawOptions = require("gym_pusht.envs.pymunk_override", "pusht").DrawOptions
        # The inner env is used for its world (_setup: walls, agent, block, damping) and its
        # controller constants; its reset/step/render are not called.
        self._sim = pusht.PushTEnv(
            obs_type="state", render_mode="rgb_array",
            observation_width=self.image_size, observation_height=self.image_size,
        )
        self._substeps = int(round(1.0 / (self._sim.dt * self._sim.control_hz)))  # 10
        self._sim._setup()
        self._canvas = self._pygame.Surface((int(WORLD_SIZE), int(WORLD_SIZE)))
        if self.relative:
            self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        else:
            self.action_space = spaces.Box(0.0, WORLD_SIZE, (2,), np.float32)

    # ------------------------------------------------------------------ GoalEnv hooks
    def _sample_state(self, rng: np.random.Generator) -> np.ndarray:
        cog = np.array(self._sim.block.center_of_gravity, np.float64)  # (0, 45), block coords
        while True:
            agent = rng.integers(50, 450, size=2).astype(np.float64)
            origin = rng.integers(100, 400, size=2).astype(np.float64)
            angle = float(rng.uniform(-np.pi, np.pi))
            # gym-pusht sets the position at angle 0, then the angle, which pymunk applies about
            # the centre of mass: the origin moves by (I - R(angle)) @ cog.
            c, s = np.cos(angle), np.sin(angle)
            origin = origin + cog - np.array([c * cog[0] - s * cog[1], s * cog[0] + c * cog[1]])
            block = np.array([origin[0], origin[1], angle])
            if t_overlaps_disc(block, agent, AGENT_RADIUS) or t_overlaps_disc(
                np.asarray(GOAL_POSE), agent, AGENT_RADIUS
            ):
                continue
            state = np.zeros(STATE_DIM, np.float32)
            state[:5] = [agent[0], agent[1], block[0], block[1], _angle_f32(angle)]
            if not self._is_success(state, self._default_goal(state)):
                return state

    def _sample_goal_state(self, rng: np.random.Generator, state: np.ndarray) -> np.ndarray:
        goal = self._default_goal(state)
        while t_overlaps_disc(goal[2:5], goal[:2], AGENT_RADIUS):  # only for user-given starts
            goal[:2] = rng.uniform(50, 450, size=2)
        return goal

    def _validate_state(self, state: np.ndarray, name: str) -> None:
        lo, hi = -_POS_MARGIN, WORLD_SIZE + _POS_MARGIN
        if np.any(state[:4] < lo) or np.any(state[:4] > hi):
            raise ValueError(
                f"{name} positions (agent_x, agent_y, block_x, block_y) = {state[:4].tolist()} must be gym-pusht "
                f"world units in about [0, 512] (accepted: [{lo:g}, {hi:g}]); the layout is [agent_x, agent_y, "
                "block_x, block_y, block_angle, agent_vx, agent_vy, block_vx, block_vy, block_omega]"
            )

    def _set_state(self, state: np.ndarray) -> None:
        # A fresh space: no contact cache survives, so the state vector alone fixes the future.
        self._sim._setup()
        agent, block = self._sim.agent, self._sim.block
        s = [float(v) for v in state]
        agent.position = (s[0], s[1])
        agent.velocity = (s[5], s[6])
        block.angle = s[4]  # angle first: pymunk rotates about the centre of mass
        block.position = (s[2], s[3])
        block.velocity = (s[7], s[8])
        block.angular_velocity = s[9]
        # Shapes cache their world vertices (drawn by debug_draw) until the next physics step.
        self._sim.space.reindex_shapes_for_body(agent)
        self._sim.space.reindex_shapes_for_body(block)

    def _get_state(self) -> np.ndarray:
        agent, block = self._sim.agent, self._sim.block
        return np.array(
            [
                agent.position.x, agent.position.y, block.position.x, block.position.y, _angle_f32(block.angle),
                agent.velocity.x, agent.velocity.y, block.velocity.x, block.velocity.y, block.angular_velocity,
            ],
            np.float32,
        )

    def _apply_action(self, action: np.ndarray) -> None:
        sim, agent = self._sim, self._sim.agent
        target = self._pymunk.Vec2d(float(action[0]), float(action[1]))
        if self.relative:
            target = agent.position + target * RELATIVE_SCALE
        for _ in range(self._substeps):  # gym-pusht's PD control of the agent's velocity
            acceleration = sim.k_p * (target - agent.position) - sim.k_v * agent.velocity
            agent.velocity += acceleration * sim.dt
            sim.space.step(sim.dt)
        self._set_state(self._get_state())  # round to float32 and drop the contact cache

    def _render_live(self) -> np.ndarray:
        pygame, canvas = self._pygame, self._canvas
        canvas.fill((255, 255, 255))
        if self.draw_goal_zone and self.goal_state is not None:
            # As gym-pusht's _draw, with the episode's goal pose instead of the fixed one.
            goal_body = self._sim.get_goal_pose_body(np.asarray(self.goal_state[2:5], np.float64))
            for shape in self._sim.block.shapes:
                points = [goal_body.local_to_world(v) for v in shape.get_vertices()]
                points = [(round(p.x), round(p.y)) for p in points]
                pygame.draw.polygon(canvas, pygame.Color("LightGreen"), points + points[:1])
        self._sim.space.debug_draw(self._DrawOptions(canvas))
        size = int(WORLD_SIZE)
        # Same pixels as gym-pusht's _get_img (checked in the tests), without its slow strided copy.
        image = np.frombuffer(pygame.image.tobytes(canvas, "RGB"), np.uint8).reshape(size, size, 3)
        return self._cv2.resize(image, (self.image_size, self.image_size))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """GoalEnv's reset; a given ``goal_state`` also fixes the agent (if ``agent_in_goal``)."""
        given = isinstance(options, dict) and options.get("goal_state") is not None
        self._agent_counts = self.agent_in_goal and given
        return super().reset(seed=seed, options=options)

    @property
    def goal_fixes_agent(self) -> bool:
        """Whether this episode's success and distance count the agent's position (a given goal
        state with ``agent_in_goal``), not the block's pose alone."""
        return self._agent_counts

    def _goal_distance(self, state: np.ndarray, goal_state: np.ndarray) -> float:
        pos_err, angle_err = self.goal_errors(state, goal_state, self._agent_counts)
        return pos_err + ANGLE_WEIGHT * angle_err

    def _is_success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        pos_err, angle_err = self.goal_errors(state, goal_state, self._agent_counts)
        return pos_err < SUCCESS_POS and angle_err < SUCCESS_ANGLE

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def goal_errors(state: np.ndarray, goal_state: np.ndarray, with_agent: bool) -> tuple[float, float]:
        """``(position error, world units; |wrapped block angle error|, radians)``.

        The position error is the norm of the (agent x, agent y, block x, block y) error with
        ``with_agent`` (the LeWM reference's), else of the block's (x, y) error alone.
        """
        first = 0 if with_agent else 2
        diff = np.asarray(state[first:4], np.float64) - np.asarray(goal_state[first:4], np.float64)
        pos_err = float(np.linalg.norm(diff))
        angle_err = abs(float(wrap_angle(float(state[4]) - float(goal_state[4]))))
        return pos_err, angle_err

    @staticmethod
    def _default_goal(state: np.ndarray) -> np.ndarray:
        """gym-pusht's T-target for the block, zero velocities, the agent where it is in ``state``."""
        goal = np.zeros(STATE_DIM, np.float32)
        goal[:2] = state[:2]
        goal[2:5] = [GOAL_POSE[0], GOAL_POSE[1], _angle_f32(GOAL_POSE[2])]
        return goal

    def close(self) -> None:
        self._sim.close()
        super().close()
