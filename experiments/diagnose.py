"""Model or planner? Plan with the true dynamics, search harder with the model, and map the latent cost.

    python experiments/diagnose.py runs/bare/agent --eval-data data/eval.h5 --out results/diagnose
    python experiments/diagnose.py AGENT_DIR --eval-data EVAL.h5 --out DIR --episodes 50 \\
        --plan samples=300,iterations=30 --plan samples=300,iterations=10

On the same start/goal pairs (``sample_pairs`` over every episode of ``EVAL.h5``, goal 25 steps
ahead, 50-step budget), one table of success rates with Wilson 95% intervals:

- ``agent``: the LeWM agent as saved (its own PlanConfig);
- ``oracle``: the SAME planner, horizon, frameskip, receding horizon, warm start and action
  normaliser, but each candidate sequence is scored on TRUE states: simulated from the env's
  current state with a private copy of the env (``GoalEnv.simulate``), cost = squared goal
  distance at the end of the horizon (``PlanConfig.cost="all"``: summed over the block ends),
  mirroring the latent cost. Only the cost differs from the agent;
- ``true dynamics, latent cost``: the oracle's simulation, but each candidate is scored by the
  agent's own cost, ||z(render(s_H)) - z(goal image)||^2 with its encoder: perfect predictions,
  the model's geometry. Low while ``oracle`` is high -> the encoder's latent distance misleads;
  high while ``agent`` is low -> the predictor's rollouts are what fail;
- ``agent <overrides>`` / ``oracle <overrides>``: the same with more search (``--plan``; ``none``
  for no such rows);
- ``random``: uniform actions.

Reading it: oracle high and agent low -> the model's cost misleads the planner (the model is at
fault); oracle low too -> the planner setting (horizon, samples, terminal cost) cannot solve the
task even with perfect predictions; agent rising with more search -> the search is too small.

The ranking (``--ranking N``): from each pair's start, N action sequences drawn as CEM draws them first
are scored by the model's predicted cost, by the same latent cost on the true end state, and by
the env's goal distance; the mean Spearman correlations say where the ranking is lost (predictor
or encoder geometry).

For TwoRoom, ``landscape.png`` shows the latent cost ||z(s) - z(goal)||^2 of the agent's encoder
over a grid of positions beside the true distance, one row per goal, with the Spearman rank
correlation over the grid and within ``near`` of the goal (what the planner's last steps rely on).
Outputs: ``DIR/diagnose.json`` and ``DIR/landscape.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from lewm_agent.envs.goal import GoalEnv  # noqa: E402
from lewm_agent.config import PlanConfig, replace  # noqa: E402
from lewm_agent.files import atomic_write_json  # noqa: E402
from lewm_agent.planning import PlanEnsemble, PlanResult, plan, shift_plan  # noqa: E402
from lewm_agent.settings import apply_settings, parse_settings  # noqa: E402

__all__ = [
    "DEFAULT_GOALS",
    "DiagnoseError",
    "Landscape",
    "OracleActor",
    "candidate_ranking",
    "diagnose",
    "latent_landscape",
    "main",
    "parse_plan_setting",
    "plot_landscape",
]

DEFAULT_GOALS: dict[str, tuple[float, float]] = {
    "left room": (0.2, 0.25),
    "right room": (0.8, 0.75),
    "door": (0.5, 0.5),
}
"""TwoRoom goal positions (x, y arena units) of the landscape plot: one per room and the door centre."""


class DiagnoseError(ValueError):
    """Bad input to the diagnosis; the message names the problem and the fix."""


def _goal_env(env: Any) -> GoalEnv:
    """The GoalEnv under ``env``'s wrappers, or a DiagnoseError saying why the oracle cannot use it."""
    inner = getattr(env, "unwrapped", env)
    if not isinstance(inner, GoalEnv):
        raise DiagnoseError(
            f"oracle planning needs a GoalEnv (lewm_agent.envs.goal.GoalEnv, with _set_state / _apply_action / "
            f"_get_state / _goal_distance) to simulate true states, got {type(inner).__name__}; use a goal task of "
            "lewm_agent.envs.GOAL_ENV_IDS."
        )
    return inner


class OracleActor:
    """The agent's planner and MPC loop, with the cost computed on true simulated states.

    Same interface as :class:`lewm_agent.agent.LeWMAgent` for :func:`lewm_agent.evaluation.evaluate`
    (``reset(num_envs)``, ``act(obs, infos) -> (N, A)``; ``needs_info`` asks for each env's
    ``state`` / ``goal_state``). Per decision: the planner (``plan.planner``, CEM or MPPI) searches
    ``plan.horizon`` normalised action blocks of ``frameskip`` env actions, from the warm-started
    tail of the last plan; each candidate is de-normalised, clipped, simulated from the env's true
    state with a private env (:meth:`GoalEnv.simulate`) and scored by the squared goal distance
    at the last block end (``plan.cost="all"``: summed over block ends); ``plan.receding_horizon``
    blocks (or ``plan.replan_every`` env steps) are executed before replanning, averaged over the running plans
    with ``plan.ensemble`` (as the agent does).

    Args:
        env: a GoalEnv (possibly wrapped), private to this actor: only its dynamics are used.
        plan: the planner settings (``mode="plan"``, planner ``cem`` or ``mppi``).
        frameskip: env actions per action block.
        action_mean, action_std: (A,) the normaliser; the planner samples in normalised units
            (None: raw env units, mean 0 and std 1).
        action_low, action_high: (A,) bounds of executed actions (None: the env's action space).
        encoder: uint8 images (N, H, W, 3) -> latents (N, D). Given, the cost is the model's own,
            ||z(render(s)) - z(goal image)||^2 on the simulated states ``s`` (true dynamics, the
            encoder's geometry): it separates the predictor's errors from the latent cost's.
    """

    needs_info = True

    def __init__(
        self,
        env: Any,
        plan: PlanConfig,
        frameskip: int,
        action_mean: np.ndarray | None = None,
        action_std: np.ndarray | None = None,
        action_low: np.ndarray | None = None,
        action_high: np.ndarray | None = None,
        encoder: Callable[[np.ndarray], torch.Tensor] | None = None,
    ):
        self.env = _goal_env(env)
        self.encoder = encoder
        self.plan_cfg = plan.validate()
        if plan.mode != "plan" or plan.planner not in ("cem", "mppi"):
            raise DiagnoseError(
                f"OracleActor: plan.mode={plan.mode!r}, plan.planner={plan.planner!r}; the oracle scores sequences "
                "by simulation (no gradient, no policy): use mode='plan' with planner 'cem' or 'mppi'."
            )
        if frameskip < 1:
            raise DiagnoseError(f"OracleActor: frameskip must be >= 1, got {frameskip}.")
        self.frameskip = int(frameskip)
        try:
            plan.steps_per_decision(self.frameskip)
        except ValueError as e:
            raise DiagnoseError(f"OracleActor: {e}") from None
        space = self.env.action_space
        A = space.shape[0]
        self.action_mean = np.zeros(A, np.float32) if action_mean is None else np.asarray(action_mean, np.float32)
        self.action_std = np.ones(A, np.float32) if action_std is None else np.asarray(action_std, np.float32)
        self.action_low = np.asarray(space.low if action_low is None else action_low, np.float32)
        self.action_high = np.asarray(space.high if action_high is None else action_high, np.float32)
        for name in ("action_mean", "action_std", "action_low", "action_high"):
            if getattr(self, name).shape != (A,):
                raise DiagnoseError(f"OracleActor: {name} must have shape ({A},) (the env's actions), "
                                    f"got {getattr(self, name).shape}.")
        if np.any(self.action_std <= 0):
            raise DiagnoseError(f"OracleActor: action_std must be > 0, got {self.action_std}.")
        lo = (self.action_low - self.action_mean) / self.action_std
        hi = (self.action_high - self.action_mean) / self.action_std
        self._block_low = torch.as_tensor(np.tile(lo, self.frameskip))
        self._block_high = torch.as_tensor(np.tile(hi, self.frameskip))
        self.num_plans = 0
        self.plan_seconds = 0.0
        self.reset()

    @classmethod
    def from_agent(cls, agent: Any, env: Any, plan: PlanConfig | None = None,
                   latent_cost: bool = False) -> "OracleActor":
        """An oracle with a LeWMAgent's planner (or ``plan``), frameskip, normaliser and bounds; with
        ``latent_cost`` it scores simulated states by the agent's encoder distance to the goal image."""
        return cls(env, plan or agent.plan_cfg, agent.model.cfg.frameskip, agent.action_mean, agent.action_std,
                   agent.action_low, agent.action_high, encoder=agent.encode if latent_cost else None)

    def reset(self, num_envs: int | None = None) -> None:
        """New episodes: empty queues and warm starts; reseed the planner (as the agent does)."""
        self._generator = torch.Generator()
        self._generator.manual_seed(self.plan_cfg.seed)
        self._start(num_envs or 0)

    def _start(self, n: int) -> None:
        """Fresh episode state for ``n`` envs: queues, warm starts, step counters, running plans."""
        self._queues: list[deque] = [deque() for _ in range(n)]
        self._warm: list[torch.Tensor | None] = [None] * n
        self._t = [0] * n
        self._ensembles = [PlanEnsemble() for _ in range(n)]

    def act(self, obs: dict[str, np.ndarray], infos: list[dict[str, Any]]) -> np.ndarray:
        """(N, A) float32 actions for a batch; ``infos[i]`` holds env i's ``state`` and ``goal_state``."""
        n = np.asarray(obs["pixels"]).shape[0]
        if n != len(self._queues) or len(infos) != n:
            if len(infos) != n:
                raise ValueError(f"OracleActor.act: {n} observations but {len(infos)} infos; pass one info per env.")
            self._start(n)
        deciding = [i for i, q in enumerate(self._queues) if not q]
        if deciding:
            self._decide(deciding, infos, np.asarray(obs["goal"])[deciding] if self.encoder is not None else None)
        self._t = [t + 1 for t in self._t]
        return np.stack([q.popleft() for q in self._queues])

    def env_actions(self, blocks: np.ndarray) -> np.ndarray:
        """Normalised actions (..., A) -> what the agent executes: de-normalised, clipped, float32."""
        actions = np.clip(blocks * self.action_std + self.action_mean, self.action_low, self.action_high)
        return actions.astype(np.float32)

    def end_states(self, states: np.ndarray, blocks: torch.Tensor) -> np.ndarray:
        """The true states after each block: normalised blocks (E, S, H, Ad) from states (E, state_dim) ->
        (E, S, H, state_dim), simulated with the private env."""
        E, S, H, _ = blocks.shape
        fs, A = self.frameskip, self.action_mean.shape[0]
        actions = self.env_actions(blocks.detach().float().cpu().numpy().reshape(E * S, H * fs, A))
        traj = self.env.simulate(np.repeat(states, S, axis=0), actions)  # (E*S, H*fs, state_dim)
        return traj[:, fs - 1 :: fs].reshape(E, S, H, -1)

    def goal_cost(self, ends: np.ndarray, goal_states: np.ndarray) -> torch.Tensor:
        """Squared goal distance of end states (E, S, K, state_dim) to goals (E, state_dim), summed over K: (E, S)."""
        d2 = np.array([[[self.env._goal_distance(s, goal) ** 2 for s in row] for row in per_env]
                       for per_env, goal in zip(ends, goal_states)])
        return torch.as_tensor(d2.sum(-1), dtype=torch.float32)

    def latent_cost(self, ends: np.ndarray, z_goal: torch.Tensor) -> torch.Tensor:
        """The encoder's squared distance of rendered end states (E, S, K, state_dim) to goal latents (E, D),
        summed over K: (E, S)."""
        E, S, K = ends.shape[:3]
        # unchecked: a fast agent can tunnel out of the arena, a state render_state would refuse
        images = np.stack([self.env._render_state(s) for s in ends.reshape(E * S * K, -1)])
        z = torch.cat([self.encoder(images[i: i + 512]).float().cpu() for i in range(0, len(images), 512)])
        return ((z.reshape(E, S, K, -1) - z_goal[:, None, None]) ** 2).sum(-1).sum(-1)

    def cost_fn(self, states: np.ndarray, goal_states: np.ndarray,
                goal_images: np.ndarray | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """The true-state cost of normalised blocks (E, S, H, Ad) -> (E, S), from states / goals (E, state_dim);
        with an encoder, the latent cost against ``goal_images`` (E, H, W, 3) instead."""
        z_goal = None if self.encoder is None else self.encoder(goal_images).float().cpu()  # (E, D)

        def cost(blocks: torch.Tensor) -> torch.Tensor:
            ends = self.end_states(states, blocks)
            ends = ends[:, :, -1:] if self.plan_cfg.cost == "terminal" else ends
            return self.goal_cost(ends, goal_states) if z_goal is None else self.latent_cost(ends, z_goal)

        return cost

    def _decide(self, idx: list[int], infos: list[dict[str, Any]], goal_images: np.ndarray | None = None) -> None:
        pc, fs = self.plan_cfg, self.frameskip
        start = time.perf_counter()
        E, H, A = len(idx), pc.horizon, self.action_mean.shape[0]
        states = np.stack([np.asarray(infos[i]["state"], np.float32) for i in idx])
        goal_states = np.stack([np.asarray(infos[i]["goal_state"], np.float32) for i in idx])
        mean = torch.zeros(E, H, fs * A)
        if pc.warm_start:
            for j, i in enumerate(idx):
                if self._warm[i] is not None:
                    mean[j] = self._warm[i]
        result: PlanResult = plan(self.cost_fn(states, goal_states, goal_images), mean, pc, self._block_low,
                                  self._block_high, self._generator)
        blocks = result.actions.float()  # (E, H, Ad), normalised
        env_actions = self.env_actions(blocks.numpy().reshape(E, H * fs, A))
        k = pc.steps_per_decision(fs)
        warm = shift_plan(blocks, k, fs) if pc.warm_start else None
        for j, i in enumerate(idx):
            ens = self._ensembles[i]
            self._queues[i] = deque(ens.add(self._t[i], env_actions[j], k) if pc.ensemble else env_actions[j, :k])
            self._warm[i] = None if warm is None else warm[j]
        self.num_plans += E
        self.plan_seconds += time.perf_counter() - start

    @property
    def seconds_per_plan(self) -> float:
        """Mean decision wall-clock per environment decision (s)."""
        return self.plan_seconds / max(self.num_plans, 1)


# ---------------------------------------------------------------------------------------------- landscape
def _tworoom(env: Any) -> Any:
    """The TwoRoomEnv under ``env``'s wrappers, or a DiagnoseError naming the fix."""
    from lewm_agent.envs.tworoom import TwoRoomEnv

    inner = getattr(env, "unwrapped", env)
    if not isinstance(inner, TwoRoomEnv):
        raise DiagnoseError(f"the latent landscape is drawn over TwoRoom positions, but the env is "
                            f"{type(inner).__name__}; pass --no-landscape for other envs.")
    return inner


@dataclass
class Landscape:
    """Latent cost and true distance to a few goals over a grid of TwoRoom positions.

    Grids are indexed ``[goal, row, col]`` with row ~ y and col ~ x (as in the images).
    """

    xs: np.ndarray
    """(G,) x of the grid columns, arena units."""
    ys: np.ndarray
    """(G,) y of the grid rows."""
    free: np.ndarray
    """(G, G) bool: positions the agent can occupy (False on walls)."""
    names: list[str]
    goals: np.ndarray
    """(K, 2) goal positions."""
    goal_images: np.ndarray
    """(K, H, W, 3) uint8 goal frames."""
    latent_cost: np.ndarray
    """(K, G, G) ||z(s) - z(goal)||^2, NaN on walls."""
    distance: np.ndarray
    """(K, G, G) the env's goal distance, NaN on walls."""
    near: float
    """Radius (arena units) of the 'near the goal' correlation."""
    rank_corr: list[float] = field(default_factory=list)
    """Per goal: Spearman rank correlation of latent cost and distance over the free grid."""
    rank_corr_near: list[float] = field(default_factory=list)
    """Per goal: the same over free positions within ``near`` of the goal (NaN if fewer than 3)."""

    def summary(self) -> dict[str, Any]:
        """JSON-able per-goal figures (NaN -> None)."""
        clean = lambda v: None if v is None or not math.isfinite(v) else round(float(v), 4)  # noqa: E731
        out = {"grid": len(self.xs), "near": self.near, "goals": {}}
        for k, name in enumerate(self.names):
            cost, dist = self.latent_cost[k], self.distance[k]
            argmin = np.unravel_index(np.nanargmin(cost), cost.shape)
            out["goals"][name] = {
                "goal": self.goals[k].tolist(),
                "rank_corr": clean(self.rank_corr[k]),
                "rank_corr_near": clean(self.rank_corr_near[k]),
                "argmin_distance": clean(dist[argmin]),  # how far from the goal the latent cost is lowest
            }
        return out


def latent_landscape(
    agent: Any,
    env: Any,
    goals: dict[str, tuple[float, float]] | None = None,
    grid: int = 48,
    near: float = 0.3,
    batch: int = 256,
) -> Landscape:
    """Encode frames rendered on a ``grid`` x ``grid`` lattice of TwoRoom positions and compare
    ||z(s) - z(goal)||^2 (``agent.encode``) with the true goal distance, per goal.

    Args:
        agent: anything with ``encode(uint8 (N, H, W, 3)) -> (N, D)`` latents (a LeWMAgent).
        env: a TwoRoom env (possibly wrapped) with the agent's image size and rendering (glow).
        goals: name -> (x, y); default :data:`DEFAULT_GOALS`.
    """
    from lewm_agent.envs.tworoom import AGENT_RADIUS
    from lewm_agent.analysis import rank_correlation

    inner = _tworoom(env)
    if grid < 2:
        raise DiagnoseError(f"landscape grid must be >= 2 positions per side, got {grid}.")
    goals = dict(DEFAULT_GOALS if goals is None else goals)
    margin = 1e-3  # keep the lattice inside the arena box
    axis = np.linspace(AGENT_RADIUS + margin, 1.0 - AGENT_RADIUS - margin, grid)
    X, Y = np.meshgrid(axis, axis)  # [row ~ y, col ~ x]
    positions = np.stack([X, Y], axis=-1).reshape(-1, 2).astype(np.float32)
    free = np.array([inner.is_free(p) for p in positions])
    frames = np.stack([inner.render_state(p) for p in positions[free]])

    def encode(images: np.ndarray) -> np.ndarray:
        chunks = [images[i : i + batch] for i in range(0, len(images), batch)]
        return np.concatenate([agent.encode(c).float().cpu().numpy() for c in chunks])

    z = encode(frames)  # (F, D)
    names, goal_arr = list(goals), np.asarray([goals[n] for n in goals], np.float32)
    goal_images = np.stack([inner.render_state(g) for g in goal_arr])
    z_goal = encode(goal_images)  # (K, D)
    K, cells = len(names), grid * grid
    latent_cost = np.full((K, cells), np.nan)
    distance = np.full((K, cells), np.nan)
    corr, corr_near = [], []
    for k in range(K):
        c = ((z - z_goal[k]) ** 2).sum(1)
        d = np.array([inner._goal_distance(p, goal_arr[k]) for p in positions[free]])
        latent_cost[k, free], distance[k, free] = c, d
        corr.append(rank_correlation(c, d))
        close = d <= near
        corr_near.append(rank_correlation(c[close], d[close]) if close.sum() >= 3 else float("nan"))
    return Landscape(
        xs=axis, ys=axis, free=free.reshape(grid, grid), names=names, goals=goal_arr, goal_images=goal_images,
        latent_cost=latent_cost.reshape(K, grid, grid), distance=distance.reshape(K, grid, grid), near=near,
        rank_corr=corr, rank_corr_near=corr_near,
    )


def plot_landscape(landscape: Landscape, path: str | Path, title: str = "") -> Path:
    """One row per goal: goal frame | latent cost heatmap | true distance heatmap | cost vs distance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L = landscape
    K = len(L.names)
    fig, axes = plt.subplots(K, 4, figsize=(15, 3.6 * K), squeeze=False)
    extent = (L.xs[0], L.xs[-1], L.ys[-1], L.ys[0])  # row 0 at the top, as in the frames
    for k, name in enumerate(L.names):
        gx, gy = L.goals[k]
        axes[k, 0].imshow(L.goal_images[k], extent=(0, 1, 1, 0))
        axes[k, 0].set_title(f"goal '{name}' ({gx:.2f}, {gy:.2f})")
        for j, (grid, label) in enumerate(((L.latent_cost[k], "latent cost ||z(s) - z(g)||^2"),
                                           (L.distance[k], "true distance to goal"))):
            ax = axes[k, j + 1]
            cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.25")  # walls in grey
            im = ax.imshow(np.ma.masked_invalid(grid), extent=extent, cmap=cmap, interpolation="nearest")
            ax.plot([gx], [gy], marker="*", color="red", markersize=14, markeredgecolor="white")
            fig.colorbar(im, ax=ax, fraction=0.046)
            extra = (f"\nSpearman all {L.rank_corr[k]:.2f}, within {L.near:g}: {L.rank_corr_near[k]:.2f}"
                     if j == 0 else "")
            ax.set_title(label + extra, fontsize=9)
        ax = axes[k, 3]
        ok = L.free
        ax.scatter(L.distance[k][ok], L.latent_cost[k][ok], s=3, alpha=0.4)
        ax.axvline(L.near, color="0.5", lw=0.8, ls="--")
        ax.set_xlabel("true distance")
        ax.set_ylabel("latent cost")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- ranking
def candidate_ranking(agent: Any, env: Any, pairs: list[Any], samples: int = 64, seed: int = 0) -> dict[str, Any]:
    """How well the model ranks the candidates of a planner's first draw, per start/goal pair.

    From each pair's start, ``samples`` action sequences of ``plan.horizon`` blocks are drawn as CEM
    draws them first (normal, std ``plan.init_std`` in normalised units around 0), then scored three
    ways: ``predicted`` (the agent's cost: the predictor's last latent against the goal image's),
    ``true latent`` (the same encoder distance on the rendered true end state: perfect predictions)
    and ``goal distance`` (the env's own distance of the true end state, what success tests).
    Returns the mean over pairs of the Spearman correlation of each two scores, and of the share of
    the 10 best candidates by one score that are among the 10 best by the other.
    """
    from lewm_agent.analysis import rank_correlation

    oracle = OracleActor.from_agent(agent, env, latent_cost=True)  # its simulation and both true scores
    g, pc = oracle.env, agent.plan_cfg
    generator = torch.Generator().manual_seed(seed)
    scores: dict[str, list[float]] = {k: [] for k in ("predicted~true latent", "predicted~goal distance",
                                                      "true latent~goal distance", "top-10 predicted & true latent",
                                                      "top-10 predicted & goal distance")}
    top = min(10, samples)
    for pair in pairs:
        start, goal_state = np.asarray(pair.state, np.float32)[None], np.asarray(pair.goal_state, np.float32)[None]
        z_start = agent.encode(g.render_state(start[0])[None])
        z_goal = agent.encode(g.render_state(goal_state[0])[None])
        blocks = torch.randn(1, samples, pc.horizon, agent.model.cfg.action_block_dim, generator=generator)
        blocks = blocks * pc.init_std
        with torch.inference_mode():
            z_pred = agent.model.rollout_samples(z_context=z_start[:, None], a_context=None,
                                                 a_plan=blocks.to(agent.device)).float()[0, :, -1]
        predicted = ((z_pred - z_goal) ** 2).sum(-1).cpu().numpy()
        ends = oracle.end_states(start, blocks)[:, :, -1:]  # (1, S, 1, state_dim)
        true_latent = oracle.latent_cost(ends, z_goal.float().cpu())[0].numpy()
        distance = oracle.goal_cost(ends, goal_state)[0].numpy()  # squared: the same ranks
        best = lambda x: set(np.argsort(x)[:top].tolist())  # noqa: E731
        scores["predicted~true latent"].append(rank_correlation(predicted, true_latent))
        scores["predicted~goal distance"].append(rank_correlation(predicted, distance))
        scores["true latent~goal distance"].append(rank_correlation(true_latent, distance))
        scores["top-10 predicted & true latent"].append(len(best(predicted) & best(true_latent)) / top)
        scores["top-10 predicted & goal distance"].append(len(best(predicted) & best(distance)) / top)
    return {"samples": samples, "pairs": len(pairs),
            **{k: round(float(np.nanmean(v)), 3) for k, v in scores.items()}}


# ---------------------------------------------------------------------------------------------- the run
def parse_plan_setting(text: str) -> dict[str, Any]:
    """``"samples=300,iterations=30"`` -> typed PlanConfig overrides, each item in ``lewm --plan``'s grammar
    (:mod:`lewm_agent.settings`), checked by PlanConfig; unknown fields and bad values fail loudly."""
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise DiagnoseError(f"--plan {text!r} names no PlanConfig field; pass e.g. --plan samples=300,iterations=30.")
    try:
        apply_settings(PlanConfig(), items, "--plan")  # ranges and choices, before any work
        return parse_settings(PlanConfig, items)
    except ValueError as e:
        raise DiagnoseError(str(e)) from None


def _label(overrides: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in overrides.items())


def _row(name: str, result: Any, actor: Any, plan_cfg: PlanConfig | None) -> dict[str, Any]:
    return {
        "name": name, "success_rate": result.success_rate, "ci95": list(result.ci95), "successes": result.successes,
        "episodes": result.num_episodes, "mean_steps_to_success": result.mean_steps_to_success,
        "seconds_per_plan": getattr(actor, "seconds_per_plan", None), "eval_seconds": result.seconds,
        "plan": dataclasses.asdict(plan_cfg) if plan_cfg is not None else None,
        "per_pair_success": [e["success"] for e in result.episodes],
    }


def diagnose(
    agent_dir: str | Path,
    eval_data: str | Path,
    out_dir: str | Path,
    episodes: int = 50,
    plan_settings: list[dict[str, Any]] | None = None,
    landscape: bool = True,
    grid: int = 48,
    device: str = "auto",
    progress: bool = True,
    ranking: int = 64,
    rows: bool = True,
) -> dict[str, Any]:
    """Agent vs oracle vs more search vs random on the same pairs (+ the landscape, + :func:`candidate_ranking`
    with ``ranking`` samples per pair unless 0); writes ``out_dir``. ``rows=False`` evaluates no actor: only the
    ranking and the landscape (minutes instead of the oracle rows' quarter of an hour on PushT).

    Returns the contents of ``out_dir/diagnose.json``.
    """
    from lewm_agent import envs
    from lewm_agent.agent import LeWMAgent
    from lewm_agent.checkpoint import CheckpointError
    from lewm_agent.data import DatasetError, load_episodes
    from lewm_agent.evaluation import EvalProtocol, RandomActor, evaluate, sample_pairs

    agent_dir, eval_data, out_dir = Path(agent_dir), Path(eval_data), Path(out_dir)
    if not (agent_dir / "config.json").is_file():
        raise DiagnoseError(f"no agent at {agent_dir} (config.json missing); pass the agent directory that "
                            "`lewm train` writes (RUN/agent).")
    if ranking < 0:
        raise DiagnoseError(f"--ranking {ranking}: pass the candidates per pair for the ranking (e.g. 64), "
                            "or 0 to skip.")
    if not rows and not ranking:
        raise DiagnoseError("--ranking-only with --ranking 0 leaves nothing to measure; pass --ranking N (e.g. 64).")
    plan_settings = [{"samples": 300, "iterations": 30}] if plan_settings is None else plan_settings
    try:
        agent = LeWMAgent.load(agent_dir, device=device)
        for overrides in plan_settings:
            replace(agent.plan_cfg, **overrides).validate()
    except CheckpointError as e:
        raise DiagnoseError(str(e)) from e
    except ValueError as e:
        raise DiagnoseError(f"bad --plan setting: {e}") from e
    env_id, env_kwargs = agent.metadata.get("env_id"), dict(agent.metadata.get("env_kwargs", {}))
    if not env_id:
        raise DiagnoseError(f"agent {agent_dir} records no env_id; train it from a `lewm collect` file.")
    try:
        data = load_episodes(eval_data)
    except (DatasetError, OSError) as e:
        raise DiagnoseError(f"cannot read --eval-data {eval_data}: {e}") from e
    data_env = data.attrs.get("env_id")
    if data_env and data_env != env_id:
        raise DiagnoseError(f"--eval-data {eval_data} was collected on {data_env} but the agent acts on {env_id}; "
                            f"collect an eval file with `lewm collect --env {env_id}`.")
    make_env = lambda: envs.make_env(env_id, **env_kwargs)  # noqa: E731
    probe = make_env()
    _goal_env(probe)  # fail before any evaluation if the oracle cannot simulate this env
    if landscape:
        _tworoom(probe)
    protocol = EvalProtocol(num_episodes=episodes, goal_offset=25, budget=50)
    pairs = sample_pairs(data, np.arange(data.num_episodes), protocol, env=probe.unwrapped)

    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    jobs: list[tuple[str, Callable[[], tuple[Any, PlanConfig | None]]]] = [
        ("agent", lambda: (agent, agent.plan_cfg)),
        ("oracle", lambda: (OracleActor.from_agent(agent, make_env()), agent.plan_cfg)),
        ("true dynamics, latent cost", lambda: (OracleActor.from_agent(agent, make_env(), latent_cost=True),
                                                agent.plan_cfg)),
    ]
    for overrides in plan_settings:
        def more(o=overrides):
            a = LeWMAgent.load(agent_dir, device=device, **o)
            return a, a.plan_cfg

        def oracle_more(o=overrides):
            cfg = replace(agent.plan_cfg, **o)
            return OracleActor.from_agent(agent, make_env(), cfg), cfg

        jobs += [(f"agent {_label(overrides)}", more), (f"oracle {_label(overrides)}", oracle_more)]
    jobs.append(("random", lambda: (RandomActor(agent.action_low, agent.action_high, seed=protocol.seed), None)))

    bar = tqdm(jobs if rows else [], desc="diagnose", disable=not progress or not rows)
    for name, build in bar:
        bar.set_postfix_str(name)
        actor, cfg = build()
        result = evaluate(actor, make_env, pairs, protocol, progress=progress)
        results.append(_row(name, result, actor, cfg))
    out: dict[str, Any] = {
        "agent_dir": str(agent_dir), "eval_data": str(eval_data), "env_id": env_id, "env_kwargs": env_kwargs,
        "protocol": dataclasses.asdict(protocol), "frameskip": agent.model.cfg.frameskip,
        "training_step": agent.metadata.get("train_step"), "results": results,
    }
    if results:
        by_name = {r["name"]: r for r in results}
        a, o = np.array(by_name["agent"]["per_pair_success"]), np.array(by_name["oracle"]["per_pair_success"])
        out.update(pairs_oracle_only=int((o & ~a).sum()), pairs_agent_only=int((a & ~o).sum()))
    if ranking:
        out["ranking"] = candidate_ranking(agent, probe, pairs, samples=ranking)
    if landscape:
        land = latent_landscape(agent, probe, grid=grid)
        plot_landscape(land, out_dir / "landscape.png", title=f"{agent_dir} on {env_id} {env_kwargs}")
        out["landscape"] = land.summary()
    probe.close()
    atomic_write_json(out_dir / "diagnose.json", out)
    return out


def format_table(out: dict[str, Any]) -> str:
    """The results as a plain-text table (plus the landscape correlations)."""
    lines = []
    if out["results"]:
        w = max(len(r["name"]) for r in out["results"])
        lines.append(f"{'actor':<{w}} {'success':>8} {'95% CI':>15} {'s/plan':>8}")
        for r in out["results"]:
            lo, hi = r["ci95"]
            spp = f"{r['seconds_per_plan']:.3f}" if r["seconds_per_plan"] is not None else "-"
            lines.append(f"{r['name']:<{w}} {r['success_rate']:>8.0%} {f'[{lo:.0%}, {hi:.0%}]':>15} {spp:>8}")
        lines.append(f"pairs the oracle solves and the agent does not: {out['pairs_oracle_only']}; "
                     f"the reverse: {out['pairs_agent_only']}")
    if "ranking" in out:
        r = out["ranking"]
        lines.append(f"ranking of {r['samples']} first-draw candidates per pair (mean Spearman / top-10 overlap):")
        lines += [f"  {k}: {v}" for k, v in r.items() if k not in ("samples", "pairs")]
    if "landscape" in out:
        for name, g in out["landscape"]["goals"].items():
            lines.append(f"landscape '{name}': Spearman all {g['rank_corr']}, within {out['landscape']['near']}: "
                         f"{g['rank_corr_near']}, latent argmin {g['argmin_distance']} from the goal")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("agent_dir", type=Path, help="a trained agent directory (RUN/agent)")
    p.add_argument("--eval-data", type=Path, required=True, help="held-out episode file (every episode is used)")
    p.add_argument("--out", type=Path, required=True, help="output directory (diagnose.json, landscape.png)")
    p.add_argument("--episodes", type=int, default=50, help="start/goal pairs")
    p.add_argument("--plan", action="append", metavar="KEY=VALUE,...",
                   help="a more-search PlanConfig override set, repeatable (default: samples=300,iterations=30; "
                        "'none': no more-search rows)")
    p.add_argument("--grid", type=int, default=48, help="landscape positions per side")
    p.add_argument("--no-landscape", action="store_true", help="skip the latent landscape (non-TwoRoom envs)")
    p.add_argument("--ranking", type=int, default=64, metavar="N",
                   help="candidates per pair for the ranking of predicted vs true costs (0: skip)")
    p.add_argument("--ranking-only", action="store_true",
                   help="evaluate no actor (agent, oracles, random): only the ranking (and the landscape)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        settings = (None if not args.plan else [] if args.plan == ["none"]
                    else [parse_plan_setting(s) for s in args.plan])
        out = diagnose(args.agent_dir, args.eval_data, args.out, args.episodes, settings, not args.no_landscape,
                       args.grid, args.device, not args.no_progress, args.ranking, not args.ranking_only)
    except DiagnoseError as e:
        raise SystemExit(f"error: {e}") from None
    print(format_table(out))
    print(f"wrote {args.out / 'diagnose.json'}" + ("" if args.no_landscape else f" and {args.out / 'landscape.png'}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
