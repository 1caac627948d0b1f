"""Goal-conditioned batches from reward-free episodes, with hindsight goal relabelling.

The offline baselines (GCBC, GCIQL) learn from exactly LeWM's training episodes: no reward and
no goal were recorded, so goals are frames of the data itself. For a transition (o_t, a_t,
o_{t+1}) of episode e a goal row is drawn as one of:

- ``current``: o_t itself (the goal is reached; the sparse reward's only success);
- ``future``: a later frame of the same episode, o_{t+k}, k >= 1, uniform over the rest of the
  episode, or geometric with success probability 1 - discount (clipped to the episode's end);
- ``random``: any training frame.

The sparse reward is the success indicator minus one: 0 when the goal is the current frame,
-1 otherwise, and the episode "ends" (bootstrap mask 0) on success, as in OGBench's
goal-conditioned agents. Everything is drawn from a numpy generator seeded by (seed, step), so
a resumed training replays exactly the batches of an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lewm_agent.data import Episodes

__all__ = ["GoalMix", "GoalBatch", "HindsightSampler"]


@dataclass(frozen=True)
class GoalMix:
    """How goals are drawn: probabilities of the current, a future and a random frame (sum 1)."""

    current: float = 0.0
    future: float = 1.0
    random: float = 0.0
    geometric: bool = False
    """Future frames geometric in k (success probability 1 - discount) instead of uniform."""
    discount: float = 0.99

    def __post_init__(self) -> None:
        p = (self.current, self.future, self.random)
        if min(p) < 0 or abs(sum(p) - 1.0) > 1e-6:
            raise ValueError(f"GoalMix probabilities (current, future, random) = {p} must be >= 0 and sum to 1.")
        if not 0.0 < self.discount < 1.0:
            raise ValueError(f"GoalMix.discount must be in (0, 1), got {self.discount}.")


@dataclass
class GoalBatch:
    """One batch, as row indices into the episodes and numpy arrays (B = batch size).

    ``obs``, ``next_obs``, ``goal``: int64 (B,) rows of the pixels; ``action``: float32 (B, A) in
    [-1, 1] (scaled by the action bounds); ``reward``: float32 (B,) 0 on success else -1;
    ``mask``: float32 (B,) 0 on success else 1 (bootstrap mask); ``end``: int64 (B,) the last row
    of each transition's episode.
    """

    obs: np.ndarray
    next_obs: np.ndarray
    goal: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    mask: np.ndarray
    end: np.ndarray


class HindsightSampler:
    """Draws goal-relabelled batches from the given training episodes of ``episodes``.

    Args:
        episodes: the loaded episode file (pixels stay where they are; batches are row indices).
        episode_ids: the episodes to learn from (a comparison's training split).
        action_low / action_high: (A,) bounds; actions are scaled to [-1, 1] with them.
    """

    def __init__(self, episodes: Episodes, episode_ids: np.ndarray, action_low: np.ndarray, action_high: np.ndarray):
        ids = np.asarray(episode_ids, np.int64)
        if ids.size == 0:
            raise ValueError("HindsightSampler needs at least one training episode.")
        lens, offs = episodes.ep_len[ids], episodes.ep_offset[ids]
        if (lens < 2).any():
            raise ValueError("every training episode needs >= 2 frames (one transition).")
        # transitions: rows t with a next frame in the same episode; ends[t] = the episode's last row
        self.rows = np.concatenate([np.arange(o, o + n - 1) for o, n in zip(offs, lens)])
        self.ends = np.concatenate([np.full(n - 1, o + n - 1) for o, n in zip(offs, lens)])
        self.frames = episodes.rows(ids)
        self.low = np.asarray(action_low, np.float32)
        self.high = np.asarray(action_high, np.float32)
        span = np.where(self.high > self.low, self.high - self.low, 1.0)
        self._scale, self._mid = span / 2, (self.high + self.low) / 2
        self.actions = np.clip((episodes.action - self._mid) / self._scale, -1.0, 1.0).astype(np.float32)
        if not np.isfinite(self.actions[self.rows]).all():
            raise ValueError("the training episodes hold non-finite actions before their last frame.")

    @property
    def num_transitions(self) -> int:
        return int(self.rows.size)

    def to_env_action(self, scaled: np.ndarray) -> np.ndarray:
        """[-1, 1] actions -> the env's bounds (float32, clipped)."""
        a = np.asarray(scaled, np.float32) * self._scale + self._mid
        return np.clip(a, self.low, self.high).astype(np.float32)

    def goals(self, rng: np.random.Generator, t: np.ndarray, ends: np.ndarray, mix: GoalMix) -> np.ndarray:
        """Goal rows for transitions at rows ``t`` (episode ends ``ends``) drawn from ``mix``."""
        b = t.size
        if mix.geometric:
            k = rng.geometric(1.0 - mix.discount, size=b)
        else:
            k = np.floor(rng.random(b) * (ends - t)).astype(np.int64) + 1  # uniform in [1, ends - t]
        future = np.minimum(t + k, ends)
        random = self.frames[rng.integers(0, self.frames.size, size=b)]
        u = rng.random(b)
        return np.where(u < mix.current, t, np.where(u < mix.current + mix.future, future, random))

    def sample(self, rng: np.random.Generator, batch_size: int, mix: GoalMix) -> GoalBatch:
        """A batch of ``batch_size`` uniformly drawn transitions with goals from ``mix``."""
        i = rng.integers(0, self.rows.size, size=batch_size)
        t, ends = self.rows[i], self.ends[i]
        goal = self.goals(rng, t, ends, mix)
        success = (goal == t).astype(np.float32)
        return GoalBatch(obs=t, next_obs=t + 1, goal=goal, action=self.actions[t], reward=success - 1.0,
                         mask=1.0 - success, end=ends)
