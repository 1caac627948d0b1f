"""Amortised acting: a small goal-conditioned policy on LeWM's latents.

The planner searches, for every decision, for the action blocks that bring the predicted latent
to the goal's. A :class:`LatentPolicy` learns that map once, from the same offline episodes, by
behaviour cloning with hindsight goals in latent space: for a start frame t and a goal frame
t + k * frameskip of the same episode (k = 1 .. ``max_goal_blocks`` blocks ahead), it regresses
the ``horizon`` action blocks the data took from t, given (z_t, z_goal). Its proposal
warm-starts the planner's mean (so fewer CEM iterations suffice), or acts alone
(``PlanConfig.mode="policy"``) in about a millisecond.

    from lewm_agent.policy import PolicyConfig, fit_policy
    metrics = fit_policy("runs/tworoom/agent", PolicyConfig(steps=3000))   # or `lewm policy DIR`

Units: the policy outputs *normalised* action blocks, the planner's units: one block is
``frameskip`` consecutive actions, each z-scored with the agent's ``action_mean`` /
``action_std``, concatenated to ``frameskip * A`` numbers.

The encoder is frozen: every frame of the training episodes is encoded once, then the MLP
trains on latents only (seconds to a minute on a CPU).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import PolicyConfig
from .data import Episodes
from .precision import autocast

__all__ = ["PolicyConfig", "LatentPolicy", "train_policy", "fit_policy", "has_policy", "ensure_policy",
           "policy_samples"]


# --------------------------------------------------------------------------- the network
class LatentPolicy(nn.Module):
    """(z, z_goal) -> ``horizon`` normalised action blocks.

    Features ``[w, w_goal, w_goal - w]`` with ``w = (z - z_mean) @ z_whiten``, the training
    latents' mean and a whitening matrix (buffers, saved with the weights; identity until
    :meth:`set_input_transform`), then an MLP of ``depth``
    Linear -> LayerNorm -> GELU layers of width ``hidden`` and a linear head (zero-initialised,
    so an untrained policy proposes the all-zero mean the planner starts from anyway).

    Args:
        latent_dim: D, the world model's latent size.
        block_dim: frameskip * A, the width of one action block.
        horizon: H, action blocks per proposal (the planner's horizon).
        hidden, depth: MLP width and number of hidden layers.
    """

    _CONFIG_KEYS = ("latent_dim", "block_dim", "horizon", "hidden", "depth")

    def __init__(self, latent_dim: int, block_dim: int, horizon: int, hidden: int = 512, depth: int = 3):
        super().__init__()
        for name, value in (("latent_dim", latent_dim), ("block_dim", block_dim), ("horizon", horizon),
                            ("hidden", hidden), ("depth", depth)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LatentPolicy: {name} must be an integer >= 1, got {value!r}.")
        self.latent_dim, self.block_dim, self.horizon = int(latent_dim), int(block_dim), int(horizon)
        self.hidden, self.depth = int(hidden), int(depth)
        self.register_buffer("z_mean", torch.zeros(self.latent_dim))
        self.register_buffer("z_whiten", torch.eye(self.latent_dim))
        layers: list[nn.Module] = []
        width = 3 * self.latent_dim
        for _ in range(self.depth):
            layers += [nn.Linear(width, self.hidden), nn.LayerNorm(self.hidden), nn.GELU()]
            width = self.hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, self.horizon * self.block_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, z: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        """z (N, D), z_goal (N, D) -> (N, horizon, block_dim) normalised action blocks."""
        if z.ndim != 2 or z.shape[-1] != self.latent_dim or z_goal.shape != z.shape:
            raise ValueError(f"LatentPolicy: z and z_goal must both be (N, {self.latent_dim}), "
                             f"got {tuple(z.shape)} and {tuple(z_goal.shape)}.")
        z, z_goal = z.float(), z_goal.float()
        w = (z - self.z_mean) @ self.z_whiten
        wg = (z_goal - self.z_mean) @ self.z_whiten
        x = torch.cat([w, wg, wg - w], dim=-1)
        return self.head(self.body(x)).view(-1, self.horizon, self.block_dim)

    @torch.no_grad()
    def set_input_transform(self, latents: torch.Tensor, floor: float = 1e-3) -> None:
        """Whiten the inputs with the statistics of ``latents`` (N, D): mean, then PCA whitening with
        eigenvalues floored at ``floor`` x the largest (identity if the latents are constant)."""
        z = latents.detach().to("cpu", torch.float64)
        mean = z.mean(0)
        if z.shape[0] < 2:
            whiten = torch.eye(self.latent_dim, dtype=torch.float64)
        else:
            ev, vec = torch.linalg.eigh(torch.cov((z - mean).T).reshape(self.latent_dim, self.latent_dim))
            top = float(ev.max())
            if top > 1e-12:
                whiten = vec / ev.clamp_min(floor * top).sqrt()
            else:
                whiten = torch.eye(self.latent_dim, dtype=torch.float64)
        self.z_mean.copy_(mean.float())
        self.z_whiten.copy_(whiten.float())

    def config_dict(self) -> dict[str, int]:
        """The constructor arguments (JSON-able); ``LatentPolicy.from_config_dict`` rebuilds the module."""
        return {k: int(getattr(self, k)) for k in self._CONFIG_KEYS}

    @classmethod
    def from_config_dict(cls, d: dict[str, Any]) -> "LatentPolicy":
        """A fresh (untrained) policy from :meth:`config_dict`; load its ``state_dict`` after."""
        if not isinstance(d, dict):
            raise ValueError(f"LatentPolicy config must be a dict with keys {list(cls._CONFIG_KEYS)}, "
                             f"got {type(d).__name__}.")
        missing = [k for k in cls._CONFIG_KEYS if k not in d]
        unknown = sorted(set(d) - set(cls._CONFIG_KEYS))
        if missing or unknown:
            raise ValueError(f"LatentPolicy config: missing keys {missing}, unknown keys {unknown}; expected "
                             f"exactly {list(cls._CONFIG_KEYS)} (re-save the agent with this library version).")
        return cls(**{k: d[k] for k in cls._CONFIG_KEYS})

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


# --------------------------------------------------------------------------- samples
@dataclass
class _Samples:
    """(start, goal) samples of some episodes, in compact row units (rows of the encoded frames)."""

    start: np.ndarray  # int64 (S,) compact row of each valid start
    kmax: np.ndarray  # int64 (S,) goals may lie 1..kmax blocks ahead of that start

    @property
    def pairs(self) -> int:
        return int(self.kmax.sum())

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n (start row, k) pairs: a uniform start, then a uniform goal offset for it."""
        i = rng.integers(0, self.start.size, size=n)
        k = 1 + np.floor(rng.random(n) * self.kmax[i]).astype(np.int64)
        return self.start[i], k


def policy_samples(ep_len: np.ndarray, finite: np.ndarray, horizon: int, frameskip: int,
                   max_goal_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Valid starts of contiguous episodes and their largest goal offset, vectorised.

    Args:
        ep_len: int (E,) lengths of episodes stored back to back (compact rows from 0).
        finite: bool (sum(ep_len),) whether each row's action is finite.
        horizon, frameskip: a start t needs the ``horizon * frameskip`` actions t .. t+H*fs-1,
            all finite, inside its episode.
        max_goal_blocks: goals lie k = 1 .. max_goal_blocks blocks ahead, frame t + k*fs inside
            the episode.

    Returns:
        ``(start, kmax)``: int64 compact rows of the valid starts, and for each the largest k (>= 1).
    """
    ep_len = np.asarray(ep_len, dtype=np.int64)
    n = int(ep_len.sum())
    span = horizon * frameskip
    offset = np.concatenate([[0], np.cumsum(ep_len)[:-1]])
    ep_of_row = np.repeat(np.arange(ep_len.size), ep_len)
    t = np.arange(n) - offset[ep_of_row]  # position within the episode
    remaining = ep_len[ep_of_row] - 1 - t  # frames after t in its episode
    ok = remaining >= span  # actions t .. t+span-1 lie in rows before the episode's last
    bad = np.concatenate([[0], np.cumsum(~np.asarray(finite, dtype=bool))])
    end = np.minimum(np.arange(n) + span, n)
    ok &= (bad[end] - bad[np.arange(n)]) == 0  # no non-finite action in the window
    start = np.flatnonzero(ok).astype(np.int64)
    kmax = np.minimum(max_goal_blocks, remaining[start] // frameskip).astype(np.int64)
    return start, kmax


def _split_ids(ids: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, dtype=np.int64)
    if fraction <= 0 or ids.size < 2:
        return ids, ids[:0]
    n_val = min(max(int(round(ids.size * fraction)), 1), ids.size - 1)
    perm = np.random.default_rng([seed, 1]).permutation(ids.size)
    return np.sort(ids[perm[n_val:]]), np.sort(ids[perm[:n_val]])


def _encode_rows(model, encode: Callable[[np.ndarray], torch.Tensor] | None, pixels: np.ndarray, rows: np.ndarray,
                 device: torch.device, batch: int = 512, progress: bool = False) -> torch.Tensor:
    """Latents (len(rows), D) float32 on ``device`` of frames ``pixels[rows]``, frozen encoder."""
    if encode is None:
        def encode(images: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
            with autocast("bf16" if device.type == "cuda" else "fp32", device):
                return model.encode(x).float()
    out = []
    with torch.inference_mode():
        for i in tqdm(range(0, rows.size, batch), desc="policy: encode", disable=not progress, leave=False,
                      dynamic_ncols=True):
            out.append(encode(pixels[rows[i:i + batch]]).float().to(device))
    # clone outside inference mode: the latents take part in autograd-recorded ops later
    return torch.cat(out).clone() if out else torch.zeros(0, model.cfg.latent_dim, device=device)


# --------------------------------------------------------------------------- training
def train_policy(
    model,
    episodes: Episodes,
    train_ids,
    action_mean,
    action_std,
    horizon: int,
    cfg: PolicyConfig | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    tb_writer=None,
    encode: Callable[[np.ndarray], torch.Tensor] | None = None,
) -> tuple[LatentPolicy, dict[str, Any]]:
    """Train a :class:`LatentPolicy` on frozen LeWM latents of ``episodes[train_ids]``.

    Args:
        model: the trained LeWM (its encoder is used frozen, in eval mode; not modified).
        episodes: the episode file in memory (:func:`lewm_agent.data.load_episodes`).
        train_ids: int episode ids to learn from; ``cfg.val_fraction`` of them are held out
            for the validation loss.
        action_mean, action_std: (A,) the agent's action statistics (the planner's units).
        horizon: action blocks per proposal (the agent's ``plan_cfg.horizon``).
        cfg: :class:`PolicyConfig` (defaults if None).
        device: where the encoder and the policy run.
        progress: tqdm bars (encoding, training).
        tb_writer: a TensorBoard ``SummaryWriter``; ``policy/*`` scalars are written to it.
        encode: uint8 images (N, H, W, 3) -> latents (N, D), e.g. ``agent.encode`` (the precision
            the agent acts with); default ``model.encode`` (bf16 autocast on CUDA, fp32 elsewhere).

    Returns:
        ``(policy, metrics)``: the policy in eval mode on ``device``, and ``train_loss`` /
        ``val_loss`` (MSE per normalised action number on fixed sample sets, after training;
        ``val_loss`` None without held-out episodes), ``zero_loss`` (the validation (or training)
        loss of always proposing zeros, the planner's default mean; ``train_zero_loss`` on the
        training set), ``seconds`` (all of it),
        ``encode_seconds``, ``samples`` / ``val_samples`` ((start, goal) pairs available),
        ``episodes`` / ``val_episodes``, ``steps``, ``params``.
    """
    t0 = time.perf_counter()
    cfg = (cfg or PolicyConfig()).validate()
    device = torch.device(device)
    mcfg = model.cfg
    fs, A, D = int(mcfg.frameskip), int(mcfg.action_dim), int(mcfg.latent_dim)
    H = int(horizon)
    if H < 1:
        raise ValueError(f"train_policy: horizon must be >= 1, got {horizon}.")
    if episodes.action_dim != A:
        raise ValueError(f"train_policy: the episodes have {episodes.action_dim}-D actions but the model "
                         f"takes {A}-D; use the episode file the agent was trained on.")
    mean = np.asarray(action_mean, np.float32).reshape(-1)
    std = np.asarray(action_std, np.float32).reshape(-1)
    if mean.shape != (A,) or std.shape != (A,) or np.any(std <= 0):
        raise ValueError(f"train_policy: action_mean and action_std must be ({A},) with std > 0, "
                         f"got {mean.shape} and {std.shape}.")
    ids = np.unique(np.asarray(train_ids, dtype=np.int64))
    if ids.size == 0 or ids.min() < 0 or ids.max() >= episodes.num_episodes:
        raise ValueError(f"train_policy: train_ids must be a non-empty set of episode ids in "
                         f"[0, {episodes.num_episodes}), got {len(ids)} ids.")
    K = cfg.goal_blocks(H)
    fit_ids, val_ids = _split_ids(ids, cfg.val_fraction, cfg.seed)

    def samples_of(sel: np.ndarray) -> tuple[np.ndarray, _Samples]:
        rows = episodes.rows(sel) if sel.size else np.zeros(0, np.int64)
        finite = np.all(np.isfinite(episodes.action[rows]), axis=1)
        start, kmax = policy_samples(episodes.ep_len[sel], finite, H, fs, K)
        return rows, _Samples(start, kmax)

    fit_rows, fit = samples_of(fit_ids)
    val_rows, val = samples_of(val_ids)
    if fit.start.size == 0:
        longest = int(episodes.ep_len[fit_ids].max())
        raise ValueError(f"train_policy: no training sample: a sample needs horizon * frameskip + 1 = "
                         f"{H * fs + 1} frames but the longest training episode has {longest}; lower the "
                         "planning horizon or collect longer episodes.")

    # (1) encode every frame of the selected episodes once, frozen encoder
    was_training = model.training
    model.eval()
    t_enc = time.perf_counter()
    all_rows = np.concatenate([fit_rows, val_rows])
    Z = _encode_rows(model, encode, episodes.pixels, all_rows, device, progress=progress)
    encode_seconds = time.perf_counter() - t_enc
    model.train(was_training)
    a_norm = (np.nan_to_num(episodes.action[all_rows]) - mean) / std  # NaN rows never enter a window
    act = torch.as_tensor(a_norm, dtype=torch.float32, device=device)  # (R, A)
    n_fit = fit_rows.size
    val_start = _Samples(val.start + n_fit, val.kmax)  # val rows follow the training rows

    steps_ahead = torch.arange(H * fs, device=device)

    def batch_of(start: np.ndarray, k: np.ndarray):
        s = torch.as_tensor(start, device=device)
        g = torch.as_tensor(start + k * fs, device=device)
        target = act[s[:, None] + steps_ahead].reshape(-1, H, fs * A)
        return Z[s], Z[g], target

    # fixed evaluation sets (same draws whatever the steps)
    eval_rng = np.random.default_rng([cfg.seed, 2])
    fit_eval = fit.draw(eval_rng, min(4096, 8 * fit.pairs))
    val_eval = val_start.draw(eval_rng, min(4096, 8 * val.pairs)) if val.start.size else None

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        policy = LatentPolicy(D, fs * A, H, cfg.hidden, cfg.depth)
    policy.set_input_transform(Z[:n_fit], cfg.whiten_floor)
    policy.to(device)

    @torch.no_grad()
    def loss_on(pairs) -> tuple[float, float]:
        was_training = policy.training
        policy.eval()
        total, zero, n = 0.0, 0.0, 0
        for i in range(0, pairs[0].size, 2048):
            z, zg, target = batch_of(pairs[0][i:i + 2048], pairs[1][i:i + 2048])
            total += F.mse_loss(policy(z, zg), target, reduction="sum").item()
            zero += target.pow(2).sum().item()
            n += target.numel()
        policy.train(was_training)
        return total / max(n, 1), zero / max(n, 1)

    # (3) behaviour cloning: MSE, AdamW, warm-up + cosine
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = min(100, max(1, cfg.steps // 20))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup
        else 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, cfg.steps - warmup)))))
    rng = np.random.default_rng([cfg.seed, 3])
    policy.train()
    bar = tqdm(range(cfg.steps), desc="policy", disable=not progress, dynamic_ncols=True)
    running = None
    log_every = max(1, min(50, cfg.steps // 20))
    for step in bar:
        z, zg, target = batch_of(*fit.draw(rng, cfg.batch_size))
        loss = F.mse_loss(policy(z, zg), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            value = loss.item()
            running = value if running is None else 0.9 * running + 0.1 * value
            bar.set_postfix(loss=f"{running:.4f}")
            if tb_writer is not None:
                tb_writer.add_scalar("policy/batch_loss", value, step + 1)
                tb_writer.add_scalar("policy/lr", sched.get_last_lr()[0], step + 1)
    bar.close()
    policy.eval()

    train_loss, train_zero = loss_on(fit_eval)
    val_loss, val_zero = loss_on(val_eval) if val_eval is not None else (None, None)
    metrics: dict[str, Any] = {
        "train_loss": train_loss,
        "val_loss": val_loss,
        "zero_loss": val_zero if val_zero is not None else train_zero,
        "train_zero_loss": train_zero,
        "seconds": time.perf_counter() - t0,
        "encode_seconds": encode_seconds,
        "samples": fit.pairs,
        "val_samples": val.pairs,
        "episodes": int(fit_ids.size),
        "val_episodes": int(val_ids.size),
        "steps": cfg.steps,
        "max_goal_blocks": K,
        "params": policy.num_params(),
    }
    if tb_writer is not None:
        for key in ("train_loss", "val_loss", "zero_loss"):
            if metrics[key] is not None:
                tb_writer.add_scalar(f"policy/{key}", metrics[key], cfg.steps)
    return policy, metrics


# --------------------------------------------------------------------------- agent directories
def has_policy(agent_dir: str | os.PathLike) -> bool:
    """Whether the saved agent at ``agent_dir`` holds a latent policy (its ``config.json`` names one)."""
    import json

    path = Path(agent_dir) / "config.json"
    return path.is_file() and bool(json.loads(path.read_text()).get("policy"))


def ensure_policy(agent_dir: str | os.PathLike, cfg: PolicyConfig, device: str | torch.device = "auto",
                  progress: bool = True) -> dict[str, Any] | None:
    """:func:`fit_policy` unless the saved agent at ``agent_dir`` already holds a policy (a resumed run): its
    metrics, or None when nothing was trained."""
    return None if has_policy(agent_dir) else fit_policy(agent_dir, cfg, device=device, progress=progress)


def fit_policy(
    agent_dir: str | os.PathLike,
    cfg: PolicyConfig | None = None,
    data_path: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Train a latent policy for the agent at ``agent_dir`` and save the agent back with it.

    The episodes are ``data_path`` (default: the file the agent was trained on,
    ``agent.metadata["data_path"]``). On the agent's own file the agent's held-out episodes
    (``metadata["val_episodes"]``) are left out; another file is used whole. The planning
    horizon is the agent's ``plan_cfg.horizon``. The policy's config and metrics are recorded
    in the agent's ``metadata["policy_training"]``. Returns the metrics of :func:`train_policy`.
    """
    from .agent import LeWMAgent
    from .data import load_episodes, validate_episode_file
    import h5py

    cfg = (cfg or PolicyConfig()).validate()
    agent = LeWMAgent.load(agent_dir, device=device)
    mcfg = agent.model.cfg
    H, fs = int(agent.plan_cfg.horizon), int(mcfg.frameskip)
    own = agent.metadata.get("data_path")
    if data_path is None:
        if not own:
            raise ValueError(f"fit_policy: the agent at {agent_dir} records no training data file; "
                             "pass data_path (lewm policy --data FILE).")
        data_path = own
    data_path = Path(data_path)
    if not data_path.is_file():
        raise FileNotFoundError(f"fit_policy: episode file {data_path} not found; pass the agent's training "
                                "episodes with data_path (lewm policy --data FILE).")
    info = validate_episode_file(data_path)
    if info.action_dim != mcfg.action_dim:
        raise ValueError(f"fit_policy: {data_path} has {info.action_dim}-D actions but the agent takes "
                         f"{mcfg.action_dim}-D; pass the episode file of the agent's task.")
    if tuple(info.image_size) != tuple(agent.obs_shape[:2]):
        raise ValueError(f"fit_policy: {data_path} has {info.image_size} images but the agent takes "
                         f"{tuple(agent.obs_shape[:2])}; pass the episode file of the agent's task.")
    with h5py.File(data_path, "r") as f:
        ep_len = f["ep_len"][()].astype(np.int64)
    same_file = own is not None and Path(own).resolve() == data_path.resolve()
    held_out = np.asarray(agent.metadata.get("val_episodes", []) if same_file else [], dtype=np.int64)
    if held_out.size and (held_out.min() < 0 or held_out.max() >= ep_len.size):
        raise ValueError(f"fit_policy: the agent's held-out episode ids reach {int(held_out.max())} but "
                         f"{data_path} has {ep_len.size} episodes; was the file changed since training? "
                         "Pass the right file with data_path.")
    train_ids = np.setdiff1d(np.arange(ep_len.size), held_out)
    if train_ids.size == 0:
        raise ValueError(f"fit_policy: no training episode in {data_path} (all are held out); pass another file.")
    need = H * fs + 1
    if int(ep_len[train_ids].max()) < need:
        raise ValueError(f"fit_policy: the training episodes of {data_path} have at most "
                         f"{int(ep_len[train_ids].max())} frames but a sample needs horizon * frameskip + 1 = "
                         f"{need}; collect longer episodes or load the agent with a shorter horizon.")

    episodes = load_episodes(data_path, validate=False, stream=True)  # frames read as encoded, not all held
    policy, metrics = train_policy(agent.model, episodes, train_ids, agent.action_mean, agent.action_std, H, cfg,
                                   device=agent.device, progress=progress, encode=agent.encode)
    agent.policy = policy
    agent.metadata["policy_training"] = {
        "config": dataclasses.asdict(cfg), "data_path": str(data_path.resolve()),
        "metrics": {k: v for k, v in metrics.items()},
    }
    agent.save(agent_dir)
    return metrics
