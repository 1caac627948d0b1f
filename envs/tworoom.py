"""TwoRoom: a 2-D point agent navigating between two rooms joined by one door (numpy only).

Geometry (arena units; the arena is the unit square [0, 1]^2, the image covers it exactly,
image column ~ x and image row ~ y, row 0 at y = 0):

- a vertical wall ``WALL_X_MIN <= x <= WALL_X_MAX`` splits the arena into a left and a right room;
- one door: the wall is open for ``DOOR_Y_MIN <= y <= DOOR_Y_MAX``;
- the agent is a disc of radius ``AGENT_RADIUS``; its physical state is the disc centre
  ``(x, y)`` float32. Collisions are computed for the centre against the walls grown by the
  radius (the configuration space), so the drawn disc never overlaps a wall; the centre's
  door opening is therefore ``[DOOR_Y_MIN + r, DOOR_Y_MAX - r]``.

Dynamics: the action is a velocity in [-1, 1]^2; one env step moves the centre by
``action * MAX_SPEED`` arena units, sliding along any wall it meets (swept collision, no
tunnelling). Success: centre within ``SUCCESS_RADIUS`` (16 px of 224, as in LeWM) of the goal.
Sampled starts and goals are uniform over free space (the door opening included); a sampled
goal is never within ``SUCCESS_RADIUS`` of the start.
"""

from __future__ import annotations

import functools

import numpy as np
from gymnasium import spaces

from lewm_agent.envs.goal import GoalEnv

__all__ = [
    "TwoRoomEnv",
    "WALL_X_MIN",
    "WALL_X_MAX",
    "DOOR_Y_MIN",
    "DOOR_Y_MAX",
    "DOOR_CENTER",
    "AGENT_RADIUS",
    "MAX_SPEED",
    "SUCCESS_RADIUS",
]

WALL_X_MIN, WALL_X_MAX = 0.475, 0.525  # the middle wall, arena units
DOOR_Y_MIN, DOOR_Y_MAX = 0.36, 0.64  # the door (gap in the wall), arena units
DOOR_CENTER = (0.5, 0.5)
AGENT_RADIUS = 0.04  # drawn disc radius and collision radius, arena units
MAX_SPEED = 0.025  # arena units per env step at |action| = 1 per axis
SUCCESS_RADIUS = 16 / 224  # arena units (16 px at 224 px)

BACKGROUND_RGB = (235, 235, 228)
WALL_RGB = (40, 40, 48)
AGENT_RGB = (220, 40, 40)
GLOW_ALPHA = 0.6  # opacity of the glow at the dot's centre
GAUSSIAN_DOT_STD = 7 / 224  # the LeWM reference's agent: a Gaussian blob of std 7 px at 224 px, arena units
DOT_STYLES = ("disc", "gaussian")

_R = AGENT_RADIUS
# Configuration space of the centre: box [_LO, _HI]^2 minus two open rectangles (the wall
# grown by the radius, above and below the door). Rectangles extend beyond the arena so no
# path can go around them.


def _f32_inward(value: float, up: bool) -> float:
    """``value`` rounded to a float32 on the inner side, so clipped float32 states stay in the box."""
    f = np.float32(value)
    if (float(f) < value) if up else (float(f) > value):
        f = np.nextafter(f, np.float32(np.inf if up else -np.inf))
    return float(f)


_LO, _HI = _f32_inward(_R, up=True), _f32_inward(1.0 - _R, up=False)
_OBSTACLES = (
    # (x_min, x_max, y_min, y_max)
    (WALL_X_MIN - _R, WALL_X_MAX + _R, -10.0, DOOR_Y_MIN + _R),
    (WALL_X_MIN - _R, WALL_X_MAX + _R, DOOR_Y_MAX - _R, 10.0),
)
_CONTACT_GAP = 1e-6  # a stopped centre rests this far outside a wall (> float32 rounding)
_STATE_TOLERANCE = 1e-4  # user states this close to free space are projected into it


def _inside(x: float, y: float, rect: tuple[float, float, float, float], margin: float = 0.0) -> bool:
    """Whether (x, y) lies strictly inside ``rect`` shrunk by ``margin``."""
    x0, x1, y0, y1 = rect
    return x0 + margin < x < x1 - margin and y0 + margin < y < y1 - margin


def _first_hit(px: float, py: float, dx: float, dy: float) -> tuple[float, int, tuple] | None:
    """Earliest entry of the segment p + t d (t in [0, 1]) into an obstacle.

    Returns ``(t, axis, rect)`` (axis 0 = the x face was hit, 1 = the y face), or None.
    Slab method on open rectangles: moving along a face is not a hit.
    """
    best = None
    for rect in _OBSTACLES:
        x0, x1, y0, y1 = rect
        t_enter, t_exit, axis = -np.inf, 1.0, -1
        for a, (p, d, lo, hi) in enumerate(((px, dx, x0, x1), (py, dy, y0, y1))):
            if d == 0.0:
                if not lo < p < hi:
                    t_enter, t_exit = 1.0, 0.0  # parallel and outside this slab: no hit
                    break
                continue
            ta, tb = (lo - p) / d, (hi - p) / d
            ta, tb = min(ta, tb), max(ta, tb)
            if ta > t_enter:
                t_enter, axis = ta, a
            t_exit = min(t_exit, tb)
        hit = axis >= 0 and 0.0 <= t_enter < min(t_exit, 1.0)
        if hit and (best is None or t_enter < best[0]):
            best = (t_enter, axis, rect)
    return best


def _move(px: float, py: float, dx: float, dy: float) -> tuple[float, float]:
    """Move the centre by (dx, dy) from a free point, sliding along walls; returns the end point."""
    for _ in range(4):  # each contact removes one velocity component; 4 is plenty
        hit = _first_hit(px, py, dx, dy)
        if hit is None:
            px, py = px + dx, py + dy
            break
        t, axis, (x0, x1, y0, y1) = hit
        if axis == 0:  # stopped by a vertical face: snap x just outside it, keep sliding in y
            px = x0 - _CONTACT_GAP if dx > 0 else x1 + _CONTACT_GAP
            py = py + t * dy
            dx, dy = 0.0, (1.0 - t) * dy
        else:  # stopped by a horizontal face
            py = y0 - _CONTACT_GAP if dy > 0 else y1 + _CONTACT_GAP
            px = px + t * dx
            dx, dy = (1.0 - t) * dx, 0.0
    # The arena box is convex and the obstacles span it in y, so clipping cannot enter a wall.
    return min(max(px, _LO), _HI), min(max(py, _LO), _HI)


def _move_many(px: np.ndarray, py: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_move` for float64 arrays (B,) at once, with the same numbers (same operations, same tie rules)."""
    px, py, dx, dy = (np.array(a, np.float64) for a in (px, py, dx, dy))
    active = np.ones(px.shape, bool)  # still moving
    for _ in range(4):
        # _first_hit, vectorised: earliest entry over the obstacles (the first obstacle wins ties)
        best_t = np.full(px.shape, np.inf)
        best_axis = np.full(px.shape, -1)
        best_rect = np.zeros(px.shape, int)
        for k, (x0, x1, y0, y1) in enumerate(_OBSTACLES):
            t_enter, t_exit = np.full(px.shape, -np.inf), np.ones(px.shape)
            axis, miss = np.full(px.shape, -1), np.zeros(px.shape, bool)
            for a, (p, d, lo, hi) in enumerate(((px, dx, x0, x1), (py, dy, y0, y1))):
                still = d == 0.0
                miss |= still & ~((lo < p) & (p < hi))  # parallel and outside this slab
                with np.errstate(divide="ignore", invalid="ignore"):
                    ta, tb = (lo - p) / d, (hi - p) / d
                t0, t1 = np.minimum(ta, tb), np.maximum(ta, tb)
                later = ~still & (t0 > t_enter)
                t_enter, axis = np.where(later, t0, t_enter), np.where(later, a, axis)
                t_exit = np.where(still, t_exit, np.minimum(t_exit, t1))
            hit = ~miss & (axis >= 0) & (t_enter >= 0.0) & (t_enter < np.minimum(t_exit, 1.0))
            first = hit & (t_enter < best_t)
            best_t = np.where(first, t_enter, best_t)
            best_axis, best_rect = np.where(first, axis, best_axis), np.where(first, k, best_rect)
        free = active & (best_axis < 0)
        px, py = np.where(free, px + dx, px), np.where(free, py + dy, py)
        active &= ~free
        rect = np.asarray(_OBSTACLES)[best_rect]  # (B, 4)
        t = np.where(active, best_t, 0.0)
        on_x, on_y = active & (best_axis == 0), active & (best_axis == 1)
        # stopped by a vertical face: snap x just outside it, keep sliding in y (and vice versa)
        new_px = np.where(on_x, np.where(dx > 0, rect[:, 0] - _CONTACT_GAP, rect[:, 1] + _CONTACT_GAP), px + t * dx)
        new_py = np.where(on_y, np.where(dy > 0, rect[:, 2] - _CONTACT_GAP, rect[:, 3] + _CONTACT_GAP), py + t * dy)
        new_dx, new_dy = np.where(on_x, 0.0, (1.0 - t) * dx), np.where(on_y, 0.0, (1.0 - t) * dy)
        px, py = np.where(active, new_px, px), np.where(active, new_py, py)
        dx, dy = np.where(active, new_dx, dx), np.where(active, new_dy, dy)
        if not active.any():
            break
    return np.minimum(np.maximum(px, _LO), _HI), np.minimum(np.maximum(py, _LO), _HI)


def _is_free(x: float, y: float, tolerance: float = 0.0) -> bool:
    """Whether centre (x, y) is in free configuration space (up to ``tolerance``)."""
    if not (_LO - tolerance <= x <= _HI + tolerance and _LO - tolerance <= y <= _HI + tolerance):
        return False
    return not any(_inside(x, y, rect, margin=tolerance) for rect in _OBSTACLES)


def _project_free(x: float, y: float) -> tuple[float, float]:
    """Nearest free point to a nearly-free (x, y): clip to the box, push out of the wall."""
    x, y = min(max(x, _LO), _HI), min(max(y, _LO), _HI)
    for x0, x1, y0, y1 in _OBSTACLES:
        if _inside(x, y, (x0, x1, y0, y1)):
            exits = [(x - x0, x0 - _CONTACT_GAP, y), (x1 - x, x1 + _CONTACT_GAP, y),
                     (y - y0, x, y0 - _CONTACT_GAP), (y1 - y, x, y1 + _CONTACT_GAP)]
            _, x, y = min(exits)
    return x, y


@functools.lru_cache(maxsize=8)
def _background(size: int) -> np.ndarray:
    """The static uint8 (size, size, 3) frame (floor and wall) for one image size; read-only."""
    centres = (np.arange(size) + 0.5) / size  # pixel centres, arena units
    in_wall_x = (centres >= WALL_X_MIN) & (centres <= WALL_X_MAX)  # by column (x)
    in_door_y = (centres >= DOOR_Y_MIN) & (centres <= DOOR_Y_MAX)  # by row (y)
    wall = in_wall_x[None, :] & ~in_door_y[:, None]  # (size, size), [row, col]
    if not wall.any():  # tiny images: keep the wall visible as at least one column
        col = min(int(0.5 * size), size - 1)
        wall[:, col] = ~in_door_y
    img = np.empty((size, size, 3), np.uint8)
    img[:] = BACKGROUND_RGB
    img[wall] = WALL_RGB
    img.setflags(write=False)
    return img


@functools.lru_cache(maxsize=8)
def _floor_mask(size: int) -> np.ndarray:
    """float32 (size, size, 1): 1 on the floor, 0 on walls."""
    return np.all(_background(size) == np.array(BACKGROUND_RGB, np.uint8), axis=-1)[..., None].astype(np.float32)


class TwoRoomEnv(GoalEnv):
    """Two rooms joined by one door; reach the goal position shown in the goal image.

    Observation ``{"pixels", "goal"}`` uint8 (image_size, image_size, 3); action float32 (2,)
    in [-1, 1] (a velocity, ``MAX_SPEED`` arena units per step per unit); state float32 (2,)
    = agent centre (x, y) in arena units. See the module docstring for the geometry.
    """

    state_dim = 2

    def __init__(
        self,
        image_size: int = 64,
        reward_type: str = "dense",
        terminate_on_success: bool = True,
        render_mode: str | None = "rgb_array",
        glow: float = 0.2,
        dot: str = "disc",
    ) -> None:
        """``dot``: how the agent is drawn. ``disc``: an antialiased disc of radius ``AGENT_RADIUS``
        (hard edge). ``gaussian``: the LeWM reference's (stable-worldmodel TwoRoom) drawing, a red
        Gaussian blob of std ``GAUSSIAN_DOT_STD`` (7 px at 224 px) at full opacity in its centre and
        no edge, blended over floor and walls. Dynamics and collisions are the same for both.

        ``glow``: std (arena units) of a soft halo drawn around the dot on the floor; 0 = bare dot.

        Why a halo: with a bare dot, two frames whose dots do not overlap are equally far apart in
        pixel space however far apart the dots are (rank correlation of pixel distance with position
        distance: 0.31 for pairs < 0.3 apart, 0.09 over all pairs); with glow=0.2: 0.97 and 0.85. Encoders inherit that
        geometry early in training. Measured with the `cpu` preset (10 min of training): bare dot
        28% success, glow 0.08 -> 52%, 0.15 -> 76%, 0.2 -> 80% (random: 20%).
        """
        super().__init__(image_size, reward_type, terminate_on_success, render_mode)
        if not 0.0 <= glow <= 0.5:
            raise ValueError(f"glow must be in [0, 0.5] arena units, got {glow}; 0 draws a bare dot")
        self.glow = float(glow)
        if dot not in DOT_STYLES:
            raise ValueError(f"dot must be one of {DOT_STYLES}, got {dot!r}; 'gaussian' draws the LeWM "
                             "reference's blob")
        self.dot = dot
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._pos = np.array([0.5, 0.5], np.float32)  # live centre (x, y), arena units

    # ------------------------------------------------------------------ geometry helpers
    @staticmethod
    def room_of(state: np.ndarray) -> int:
        """0 for the left room (x < 0.5), 1 for the right room."""
        return int(state[0] >= 0.5)

    @staticmethod
    def is_free(state: np.ndarray) -> bool:
        """Whether the centre ``state`` (x, y) is reachable (inside the arena, not in the wall)."""
        return _is_free(float(state[0]), float(state[1]))

    # ------------------------------------------------------------------ GoalEnv hooks
    def _sample_state(self, rng: np.random.Generator) -> np.ndarray:
        while True:  # rejection sampling: uniform over free space (~80% accepted)
            s = rng.uniform(_LO, _HI, size=2).astype(np.float32)
            if _is_free(float(s[0]), float(s[1])):
                return s

    def _sample_goal_state(self, rng: np.random.Generator, state: np.ndarray) -> np.ndarray:
        while True:  # uniform over free space, but never already reached at the start
            goal = self._sample_state(rng)
            if not self._is_success(state, goal):
                return goal

    def _validate_state(self, state: np.ndarray, name: str) -> None:
        if not _is_free(float(state[0]), float(state[1]), tolerance=_STATE_TOLERANCE):
            raise ValueError(
                f"{name} {state.tolist()} is not a free position of TwoRoom: the agent centre must be in "
                f"[{_LO:.3f}, {_HI:.3f}]^2 and outside the wall x in [{WALL_X_MIN - _R:.3f}, "
                f"{WALL_X_MAX + _R:.3f}] unless y in [{DOOR_Y_MIN + _R:.3f}, {DOOR_Y_MAX - _R:.3f}] (the door)"
            )

    def _set_state(self, state: np.ndarray) -> None:
        x, y = _project_free(float(state[0]), float(state[1]))
        self._pos = np.array([x, y], np.float32)

    def _get_state(self) -> np.ndarray:
        return self._pos.copy()

    def _apply_action(self, action: np.ndarray) -> None:
        dx, dy = (action.astype(np.float64) * MAX_SPEED).tolist()
        x, y = _move(float(self._pos[0]), float(self._pos[1]), dx, dy)
        self._pos = np.array([x, y], np.float32)

    def _simulate(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """All B sequences at once (:func:`_move_many`); the same float32 states as stepping one by one."""
        B, T = actions.shape[:2]
        pos = np.array([_project_free(float(x), float(y)) for x, y in states], np.float32).reshape(B, 2)
        out = np.empty((B, T, 2), np.float32)
        for t in range(T):
            d = actions[:, t].astype(np.float64) * MAX_SPEED  # (B, 2)
            x, y = _move_many(pos[:, 0].astype(np.float64), pos[:, 1].astype(np.float64), d[:, 0], d[:, 1])
            pos = np.stack([x, y], axis=1).astype(np.float32)
            out[:, t] = pos
        return out

    def _render_state(self, state: np.ndarray) -> np.ndarray:
        size = self.image_size
        img = _background(size).copy()
        if self.glow > 0 or self.dot == "gaussian":  # squared distance of each pixel centre to the dot
            centres = (np.arange(size, dtype=np.float32) + 0.5) / size
            d2 = ((centres[None, :] - float(state[0])) ** 2 + (centres[:, None] - float(state[1])) ** 2)[..., None]
        if self.glow > 0:  # soft halo on the floor (walls stay opaque)
            alpha = GLOW_ALPHA * np.exp(-d2 / (2 * self.glow**2)) * _floor_mask(size)
            img = np.rint(img * (1.0 - alpha) + np.float32(AGENT_RGB) * alpha).astype(np.uint8)
        if self.dot == "gaussian":  # the reference's blob: alpha = exp(-d^2 / 2 std^2), peak 1, everywhere
            alpha = np.exp(-d2 / (2 * GAUSSIAN_DOT_STD**2))
            return np.rint(img * (1.0 - alpha) + np.float32(AGENT_RGB) * alpha).astype(np.uint8)
        # Antialiased disc: coverage = clamp(radius - distance + 0.5, 0, 1) in pixel units,
        # computed only in the disc's bounding box.
        cx, cy, r = float(state[0]) * size, float(state[1]) * size, _R * size
        c0, c1 = max(int(np.floor(cx - r - 1)), 0), min(int(np.ceil(cx + r + 1)), size)
        r0, r1 = max(int(np.floor(cy - r - 1)), 0), min(int(np.ceil(cy + r + 1)), size)
        if c0 >= c1 or r0 >= r1:
            return img
        xs = np.arange(c0, c1, dtype=np.float32) + 0.5
        ys = np.arange(r0, r1, dtype=np.float32) + 0.5
        dist = np.sqrt((xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2)
        alpha = np.clip(r + 0.5 - dist, 0.0, 1.0)[..., None]  # (h, w, 1)
        patch = img[r0:r1, c0:c1].astype(np.float32)
        img[r0:r1, c0:c1] = np.rint(patch * (1.0 - alpha) + np.float32(AGENT_RGB) * alpha).astype(np.uint8)
        return img

    def _goal_distance(self, state: np.ndarray, goal_state: np.ndarray) -> float:
        return float(np.hypot(float(state[0]) - float(goal_state[0]), float(state[1]) - float(goal_state[1])))

    def _is_success(self, state: np.ndarray, goal_state: np.ndarray) -> bool:
        return self._goal_distance(state, goal_state) <= SUCCESS_RADIUS
