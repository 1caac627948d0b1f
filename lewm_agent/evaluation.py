"""The LeWM evaluation protocol: start and goal states from held-out episodes.

For each of ``num_episodes`` (fixed seed) pairs: pick a random row of a held-out episode as
the start state and the state ``goal_offset`` env steps later in the same episode as the goal
(its rendered image is the goal image); the actor has ``budget`` env steps; success = the env's
success condition holds at any step. Pairs whose start already satisfies the goal are redrawn
(``skip_trivial``; independent re-runs of the reference found such pairs inflate results).

Every actor (LeWM, random, scripted, RL baselines) runs through :func:`evaluate` on the same
pairs: all episodes step in lockstep, and the actor sees the whole batch of observations at once.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from .data import Episodes
from .video import side_by_side, write_video

__all__ = ["EvalProtocol", "StartGoalPair", "sample_pairs", "evaluate", "EvalResult", "RandomActor", "wilson_interval"]


@dataclass
class EvalProtocol:
    """Settings of the protocol (LeWM reference defaults); every result records them."""

    num_episodes: int = 50
    goal_offset: int = 25
    """Env steps between the start row and the goal row of the held-out episode."""
    budget: int = 50
    """Env steps the actor gets."""
    seed: int = 0
    """Seed of the pair sampling."""
    skip_trivial: bool = True
    """Redraw pairs whose start state already satisfies the goal."""


@dataclass
class StartGoalPair:
    episode: int
    row: int
    """Row of the start state inside its episode (the goal is row + goal_offset)."""
    state: np.ndarray
    goal_state: np.ndarray


class Actor(Protocol):
    def reset(self, num_envs: int | None = None) -> None: ...

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


class RandomActor:
    """Uniform random actions, batched: the floor every method is compared with."""

    def __init__(self, low: np.ndarray, high: np.ndarray, seed: int = 0):
        self.low, self.high, self.seed = np.asarray(low, np.float32), np.asarray(high, np.float32), seed
        self.reset()

    def reset(self, num_envs: int | None = None) -> None:
        self._rng = np.random.default_rng(self.seed)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        n = np.asarray(obs["pixels"]).shape[0]
        return self._rng.uniform(self.low, self.high, size=(n, self.low.shape[0])).astype(np.float32)


def sample_pairs(episodes: Episodes, episode_ids: np.ndarray, protocol: EvalProtocol,
                 env: Any = None) -> list[StartGoalPair]:
    """Draw ``protocol.num_episodes`` start/goal pairs from the given (held-out) episodes.

    ``env`` (a GoalEnv) is used to detect trivial pairs when ``skip_trivial``; it is reset with
    each candidate, so pass a spare one.
    """
    if episodes.state is None:
        raise ValueError("The evaluation protocol needs a `state` column in the episode file; recollect with "
                         "`lewm collect`.")
    lengths = episodes.ep_len[episode_ids]
    usable = np.asarray(episode_ids)[lengths > protocol.goal_offset]
    if len(usable) == 0:
        raise ValueError(
            f"No held-out episode is longer than goal_offset={protocol.goal_offset} steps "
            f"(lengths {sorted(lengths.tolist())[:10]}...). Collect longer or more episodes, or lower goal_offset."
        )
    rng = np.random.default_rng(protocol.seed)
    pairs: list[StartGoalPair] = []
    for _ in range(protocol.num_episodes * 100):
        if len(pairs) == protocol.num_episodes:
            break
        ep = int(rng.choice(usable))
        row = int(rng.integers(0, episodes.ep_len[ep] - protocol.goal_offset))
        base = int(episodes.ep_offset[ep])
        state = episodes.state[base + row].copy()
        goal_state = episodes.state[base + row + protocol.goal_offset].copy()
        if protocol.skip_trivial and env is not None:
            _, info = env.reset(options={"state": state, "goal_state": goal_state})
            if info["is_success"]:
                continue
        pairs.append(StartGoalPair(ep, row, state, goal_state))
    if len(pairs) < protocol.num_episodes:
        raise ValueError(f"Only {len(pairs)} non-trivial start/goal pairs found; collect more held-out episodes.")
    return pairs


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (sound at 0% and 100%, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class EvalResult:
    success_rate: float
    ci95: tuple[float, float]
    successes: int
    num_episodes: int
    mean_return: float
    mean_steps_to_success: float | None
    decision_seconds_median: float
    """Median wall-clock of one batched ``act`` call divided by the batch size (s per env decision)."""
    decision_seconds_p95: float
    decision_seconds_mean: float
    """Mean over steps; for a planner that replans every k steps this carries the planning cost."""
    decision_seconds_max: float
    seconds: float
    protocol: dict[str, Any]
    episodes: list[dict[str, Any]] = field(default_factory=list)
    """Per pair: ``episode``/``row`` of its start, ``success``, ``steps_to_success`` (-1: never), and the goal
    distance in task units (``info["distance"]``; None where the env reports none) at the start, its minimum
    over the episode and at the end: how near a failure came."""
    videos: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _num(x: float) -> float | None:
    """A JSON-safe float: None for NaN (an env that reports no distance)."""
    return None if np.isnan(x) else float(x)


def evaluate(
    actor: Actor,
    make_env,
    pairs: list[StartGoalPair],
    protocol: EvalProtocol,
    video_dir: str | Path | None = None,
    video_episodes: int = 0,
    video_prefix: str = "episode",
    progress: bool = True,
    extra_protocol: dict[str, Any] | None = None,
) -> EvalResult:
    """Run ``actor`` on every pair (all in one lockstep batch) for ``protocol.budget`` steps.

    Args:
        actor: has ``reset(num_envs)`` and ``act(batched obs) -> (N, A)`` (LeWMAgent, RandomActor...).
            A privileged actor (a scripted expert reading the physical state) sets ``needs_info = True``
            and is called as ``act(batched obs, infos)`` with each env's latest info dict; if it also has
            ``bind(envs)``, it gets the pairs' envs (in pair order) before ``reset``.
        make_env: zero-argument factory of one env (a GoalEnv, possibly wrapped).
        pairs: from :func:`sample_pairs`.
        video_dir / video_episodes: write mp4s of the first episodes (observation | goal).
        extra_protocol: settings to record beside the protocol's own (planner, history, data...).
    """
    start = time.perf_counter()
    n = len(pairs)
    envs = [make_env() for _ in range(n)]
    obs_list, infos = [], []
    for env, pair in zip(envs, pairs):
        obs, info = env.reset(options={"state": pair.state, "goal_state": pair.goal_state})
        obs_list.append(obs)
        infos.append(info)
    needs_info = bool(getattr(actor, "needs_info", False))
    if needs_info and hasattr(actor, "bind"):  # a privileged actor that drives the live envs themselves
        actor.bind(envs)
    pixels = np.stack([o["pixels"] for o in obs_list])
    goals = np.stack([o["goal"] for o in obs_list])
    done = np.zeros(n, bool)
    success = np.zeros(n, bool)
    steps_to_success = np.full(n, -1)
    returns = np.zeros(n)
    dist = np.array([float(info.get("distance", np.nan)) for info in infos])  # task units, if the env reports it
    start_dist, min_dist = dist.copy(), dist.copy()
    n_video = min(video_episodes, n) if video_dir is not None else 0
    frames: list[list[np.ndarray]] = [[side_by_side(pixels[i], goals[i])] for i in range(n_video)]
    decision_times = []
    actor.reset(n)
    for t in tqdm(range(protocol.budget), desc="eval", disable=not progress, leave=False):
        tic = time.perf_counter()
        batch = {"pixels": pixels, "goal": goals}
        actions = actor.act(batch, infos) if needs_info else actor.act(batch)
        decision_times.append((time.perf_counter() - tic) / n)
        for i, env in enumerate(envs):
            if done[i]:
                continue  # finished episodes keep their last frame; the batch stays whole
            obs, reward, terminated, truncated, info = env.step(actions[i])
            pixels[i], infos[i] = obs["pixels"], info
            returns[i] += float(reward)
            dist[i] = float(info.get("distance", np.nan))
            min_dist[i] = np.fmin(min_dist[i], dist[i])
            if info["is_success"] and not success[i]:
                success[i], steps_to_success[i] = True, t + 1
            done[i] = terminated or truncated
            if i < n_video:
                frames[i].append(side_by_side(pixels[i], goals[i], border=(40, 200, 40) if success[i] else None))
        if done.all():
            break
    for env in envs:
        env.close()
    videos = []
    for i in range(n_video):
        videos.append(str(write_video(Path(video_dir) / f"{video_prefix}_{i:03d}.mp4", frames[i])))
    k = int(success.sum())
    reached = steps_to_success[success]
    return EvalResult(
        success_rate=k / n,
        ci95=wilson_interval(k, n),
        successes=k,
        num_episodes=n,
        mean_return=float(returns.mean()),
        mean_steps_to_success=float(reached.mean()) if len(reached) else None,
        decision_seconds_median=float(np.median(decision_times)),
        decision_seconds_p95=float(np.percentile(decision_times, 95)),
        decision_seconds_mean=float(np.mean(decision_times)),
        decision_seconds_max=float(np.max(decision_times)),
        seconds=time.perf_counter() - start,
        protocol={**dataclasses.asdict(protocol), **(extra_protocol or {})},
        episodes=[{"episode": p.episode, "row": p.row, "success": bool(s), "steps_to_success": int(st),
                   "start_distance": _num(d0), "min_distance": _num(dm), "final_distance": _num(df)}
                  for p, s, st, d0, dm, df in zip(pairs, success, steps_to_success, start_dist, min_dist, dist)],
        videos=videos,
    )
