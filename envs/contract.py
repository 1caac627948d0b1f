"""The goal-env contract as runnable checks, for any env id (``lewm check-env ENV_ID``).

What the project needs from a goal-conditioned env (the built-in suites meet it through
:class:`lewm_agent.envs.goal.GoalEnv`; ``docs/foreign_envs.md`` states it for envs from other packages):

- observation ``{"pixels": uint8 (S, S, 3), "goal": uint8 (S, S, 3)}`` at the requested ``image_size`` S;
  a Box action space with finite bounds;
- ``info`` after every reset and step: ``state`` and ``goal_state`` (1-D float vectors of one length),
  ``is_success`` (bool), ``distance`` (finite float >= 0);
- seeded determinism: the same seed and actions give the same frames and states, in two fresh envs;
- ``reset(options={"state": s, "goal_state": g})`` is honoured: ``info["state"]`` is s and
  ``info["goal_state"]`` is g (the evaluation starts every pair this way; an env that ignores
  them would be scored on goals of its own choosing), the goal image depends on g alone and is
  the render of g (``unwrapped.render_state(g)`` where the env offers it), and starting on the
  goal state is a success at distance 0 whose frame is the goal image.

:func:`check_goal_env` runs each check and returns one :class:`Check` per check, each with a
one-line message; it never stops at the first failure (except when the env cannot be made).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["Check", "check_goal_env", "STATE_ATOL"]

STATE_ATOL = 1e-4
"""Largest difference (absolute, plus the same relative) between a requested and a reported state entry."""
_FRAME_KEYS = ("pixels", "goal")


class ContractError(Exception):
    """One broken clause of the contract; the message says what was seen and what was expected."""


@dataclass
class Check:
    name: str
    ok: bool
    message: str
    """One line: on failure what was seen and what the contract asks; on success a short note (may be empty)."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)


def _short(x: Any) -> str:
    return np.array2string(np.asarray(x, np.float64), precision=4, threshold=8, max_line_width=10_000)


def _check_frames(obs: Any, size: int, where: str) -> None:
    _require(isinstance(obs, dict) and all(k in obs for k in _FRAME_KEYS),
             f"{where}: observation must be a dict with keys {list(_FRAME_KEYS)}, got "
             f"{sorted(obs) if isinstance(obs, dict) else type(obs).__name__}")
    for key in _FRAME_KEYS:
        frame = np.asarray(obs[key])
        _require(frame.dtype == np.uint8 and frame.shape == (size, size, 3),
                 f"{where}: obs[{key!r}] must be uint8 ({size}, {size}, 3), got {frame.dtype} {frame.shape}")


def _check_info(info: Any, where: str) -> None:
    _require(isinstance(info, dict), f"{where}: info must be a dict, got {type(info).__name__}")
    missing = [k for k in ("state", "goal_state", "is_success", "distance") if k not in info]
    _require(not missing, f"{where}: info lacks {missing} (has {sorted(info)})")
    shapes = []
    for key in ("state", "goal_state"):
        value = np.asarray(info[key])
        _require(value.ndim == 1 and value.dtype.kind == "f" and np.all(np.isfinite(value)),
                 f"{where}: info[{key!r}] must be a finite 1-D float vector, got {value.dtype} {value.shape}")
        shapes.append(value.shape)
    _require(shapes[0] == shapes[1],
             f"{where}: info['state'] {shapes[0]} and info['goal_state'] {shapes[1]} differ in shape")
    _require(isinstance(info["is_success"], (bool, np.bool_)),
             f"{where}: info['is_success'] must be a bool, got {type(info['is_success']).__name__}")
    distance = info["distance"]
    _require(isinstance(distance, (float, np.floating)) and np.isfinite(distance) and distance >= 0,
             f"{where}: info['distance'] must be a finite float >= 0, got {distance!r}")


def _close(a: Any, b: Any) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=STATE_ATOL, atol=STATE_ATOL))


def _same_image(a: Any, b: Any) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


class _Probe:
    """The env under test, a way to make fresh ones, and the states the checks reuse."""

    def __init__(self, make: Callable[[], gym.Env], size: int, seed: int) -> None:
        self.make, self.size, self.seed = make, size, seed
        self.env = make()
        self._states: tuple[np.ndarray, np.ndarray] | None = None

    def actions(self, n: int, seed: int) -> list[np.ndarray]:
        space = copy.deepcopy(self.env.action_space)
        space.seed(seed)
        return [np.asarray(space.sample()) for _ in range(n)]

    def reached_state(self, seed: int, steps: int) -> np.ndarray:
        """``info["state"]`` after ``steps`` random actions from ``reset(seed=seed)`` (fewer if the episode ends)."""
        _, info = self.env.reset(seed=seed)
        for action in self.actions(steps, seed):
            _, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                break
        return np.asarray(info["state"]).copy()

    def states(self) -> tuple[np.ndarray, np.ndarray]:
        """(s, g): two states the env reached itself, from different seeds (so a freshly drawn goal is not g)."""
        if self._states is None:
            self._states = (self.reached_state(self.seed + 1, 8), self.reached_state(self.seed + 2, 12))
        return self._states

    def reset_to(self, state: np.ndarray, goal: np.ndarray, seed: int) -> tuple[dict, dict]:
        obs, info = self.env.reset(seed=seed, options={"state": state, "goal_state": goal})
        _check_frames(obs, self.size, "reset with options")
        _check_info(info, "reset with options")
        return obs, info

    def goal_render(self, goal: np.ndarray) -> np.ndarray | None:
        """The env's own render of ``goal`` (``unwrapped.render_state``) at the observed size, or None."""
        render_state = getattr(self.env.unwrapped, "render_state", None)
        if not callable(render_state):
            return None
        from lewm_agent.envs.resize import resize_frame

        return resize_frame(render_state(goal), self.size)


def _spaces(p: _Probe) -> str:
    space = p.env.observation_space
    _require(isinstance(space, spaces.Dict) and all(k in space.spaces for k in _FRAME_KEYS),
             f"observation_space must be a Dict with {list(_FRAME_KEYS)}, got {space}")
    for key in _FRAME_KEYS:
        box = space[key]
        _require(isinstance(box, spaces.Box) and box.dtype == np.uint8 and box.shape == (p.size, p.size, 3),
                 f"observation_space[{key!r}] must be Box(0, 255, ({p.size}, {p.size}, 3), uint8), got {box}")
    act = p.env.action_space
    _require(isinstance(act, spaces.Box) and len(act.shape) == 1, f"action_space must be a 1-D Box, got {act}")
    _require(bool(np.all(np.isfinite(act.low)) and np.all(np.isfinite(act.high)) and np.all(act.low < act.high)),
             f"action_space bounds must be finite with low < high, got low {act.low}, high {act.high}")
    return f"{p.size}x{p.size} frames, actions in {act.shape}"


def _reset(p: _Probe) -> str:
    obs, info = p.env.reset(seed=p.seed)
    _check_frames(obs, p.size, "reset(seed)")
    _require(p.env.observation_space.contains(obs), "reset(seed): the observation is outside observation_space")
    _check_info(info, "reset(seed)")
    return f"state dim {np.asarray(info['state']).shape[0]}"


def _step(p: _Probe) -> str:
    p.env.reset(seed=p.seed)
    out = p.env.step(p.actions(1, p.seed)[0])
    _require(isinstance(out, tuple) and len(out) == 5, "step must return (obs, reward, terminated, truncated, info)")
    obs, reward, terminated, truncated, info = out
    _check_frames(obs, p.size, "step")
    _require(p.env.observation_space.contains(obs), "step: the observation is outside observation_space")
    _require(isinstance(reward, (int, float, np.number)) and np.isfinite(reward),
             f"step: reward must be a finite number, got {reward!r}")
    _require(isinstance(terminated, (bool, np.bool_)) and isinstance(truncated, (bool, np.bool_)),
             f"step: terminated and truncated must be bools, got {type(terminated).__name__}, "
             f"{type(truncated).__name__}")
    _check_info(info, "step")
    return ""


def _determinism(p: _Probe) -> str:
    other = p.make()
    try:
        runs = []
        for env in (p.env, other):
            obs, info = env.reset(seed=p.seed + 11)
            frames, states = [obs["pixels"], obs["goal"]], [info["state"], info["goal_state"]]
            for action in p.actions(6, p.seed + 11):
                obs, _, terminated, truncated, info = env.step(action)
                frames.append(obs["pixels"])
                states.append(info["state"])
                if terminated or truncated:
                    break
            runs.append((frames, states))
    finally:
        other.close()
    (fa, sa), (fb, sb) = runs
    _require(len(fa) == len(fb) and all(_same_image(a, b) for a, b in zip(fa, fb)),
             "two fresh envs reset with the same seed and given the same actions show different frames "
             "(seed every random draw from reset(seed=...), e.g. self.np_random)")
    _require(all(np.array_equal(a, b) for a, b in zip(sa, sb)),
             "two fresh envs reset with the same seed and given the same actions report different states")
    return f"{len(fa) - 2} steps"


def _honours(key: str, fix: str) -> Callable[[_Probe], str]:
    """The check that ``reset(options={"state": s, "goal_state": g})`` reports the requested ``key`` back."""

    def check(p: _Probe) -> str:
        s, g = p.states()
        _, info = p.reset_to(s, g, p.seed + 3)
        asked = s if key == "state" else g
        _require(_close(info[key], asked), f"reset(options={{'{key}': x}}) reported info['{key}'] = "
                                           f"{_short(info[key])}, not x = {_short(asked)}: {fix}")
        return ""

    return check


def _goal_image(p: _Probe) -> str:
    s, g = p.states()
    obs_a, _ = p.reset_to(s, g, p.seed + 3)
    obs_b, _ = p.reset_to(s, g, p.seed + 4)
    _require(_same_image(obs_a["goal"], obs_b["goal"]),
             "the same goal_state gave different goal images under two seeds: the goal image must be the render "
             "of goal_state alone")
    rendered = p.goal_render(g)
    if rendered is None:
        return "the env offers no render_state(state): checked against the frame of a start on the goal (next check)"
    _require(_same_image(obs_a["goal"], rendered), "obs['goal'] differs from unwrapped.render_state(goal_state)")
    return "equals unwrapped.render_state(goal_state)"


def _start_on_goal(p: _Probe) -> str:
    _, g = p.states()
    obs, info = p.reset_to(g, g, p.seed + 5)
    _require(bool(info["is_success"]) and info["distance"] <= 1e-3,
             f"reset(options={{'state': g, 'goal_state': g}}) must be a success at distance 0, got is_success "
             f"{info['is_success']}, distance {info['distance']:.4g}")
    _require(_same_image(obs["pixels"], obs["goal"]),
             "starting on the goal state, obs['pixels'] differs from obs['goal']: the goal image must be what the "
             "camera shows in the goal state")
    return ""


def _expert(p: _Probe) -> str:
    from lewm_agent.envs.experts import find_expert
    from lewm_agent.envs.policies import make_policy

    factory = find_expert(p.env)
    if factory is None:
        return ("no expert registered (collect with --policy random, or register one with "
                "lewm_agent.envs.policies.register_expert)")
    obs, info = p.env.reset(seed=p.seed)
    try:
        policy = make_policy("expert", p.env, seed=p.seed)
    except KeyError as e:  # an expert factory that has no expert for this variant (OGBench's AntMaze)
        return f"no expert for this env: {str(e).strip(chr(34))}"
    policy.reset(obs, info)
    action = np.asarray(policy(obs, info))
    _require(action.shape == p.env.action_space.shape and bool(np.all(np.isfinite(action))),
             f"the expert's action has shape {action.shape} (or is not finite); the action space is "
             f"{p.env.action_space}")
    return f"{getattr(factory, '__qualname__', factory)}"


_CHECKS: list[tuple[str, Callable[[_Probe], str]]] = [
    ("spaces", _spaces),
    ("reset", _reset),
    ("step", _step),
    ("seeded determinism", _determinism),
    ("reset honours state", _honours("state", "the env ignores or changes 'state'; make reset start from "
                                              "options['state']")),
    ("reset honours goal_state", _honours("goal_state", "the env ignores 'goal_state' (it may take its goal under "
                                                        "another option name); make reset use options['goal_state'] "
                                                        "as the goal, or wrap the env so that it does")),
    ("goal image is the render of goal_state", _goal_image),
    ("start on the goal", _start_on_goal),
    ("expert", _expert),
]


def check_goal_env(env_id: str, image_size: int = 32, env_kwargs: dict[str, Any] | None = None,
                   seed: int = 0) -> list[Check]:
    """Run the goal-env contract on ``env_id`` (a registered id or ``module:EnvId``), made by
    :func:`lewm_agent.envs.make_env` with ``image_size`` and ``env_kwargs``. Returns one :class:`Check` per check
    (only ``make`` if the env cannot be made); ``seed`` offsets every seed used."""
    from lewm_agent import envs

    kwargs = {**(env_kwargs or {}), "image_size": image_size}
    try:
        probe = _Probe(lambda: envs.make_env(env_id, **kwargs), image_size, seed)
    except Exception as e:  # noqa: BLE001 - reported as the failed check
        return [Check("make", False, _one_line(e))]
    results = [Check("make", True, f"{type(probe.env.unwrapped).__module__}.{type(probe.env.unwrapped).__qualname__}")]
    try:
        for name, check in _CHECKS:
            try:
                results.append(Check(name, True, check(probe)))
            except ContractError as e:
                results.append(Check(name, False, str(e)))
            except Exception as e:  # noqa: BLE001 - an env that crashes on a clause fails that clause
                results.append(Check(name, False, _one_line(e)))
    finally:
        probe.env.close()
    return results


def _one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".splitlines()
    return text[0][:400] if text else type(e).__name__
