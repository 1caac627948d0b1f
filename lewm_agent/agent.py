"""LeWMAgent: a trained LeWM world model that acts by latent CEM-MPC toward a goal image.

    agent = LeWMAgent.load("runs/tworoom/agent")      # device="auto"
    agent.reset()                                     # new episode: clears plans and history
    action = agent.act(obs)                           # one obs dict, or a batch from a VecEnv
    actions, state = agent.predict(obs, state=None, episode_start=None, deterministic=True)

``predict`` follows Stable-Baselines3's ``PolicyPredictor`` protocol, so
``stable_baselines3.common.evaluation.evaluate_policy(agent, vec_env)`` works unchanged.

How one decision is made, for N environments at once:
1. goals: any env whose goal image changed since the last call has it encoded (once per episode);
2. history: at every action-block boundary (each ``frameskip`` env steps) the observation is
   encoded, if the predictor needs more than one latent of history;
3. plan: every env whose queue of planned actions is empty is planned for, all together: the
   N_plan x samples candidate sequences go through the predictor in one call per rollout step;
4. act: each env pops its next action. ``receding_horizon`` blocks are queued per plan; the
   unexecuted tail warm-starts the next plan's mean.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .checkpoint import CheckpointError, load_state_checked, read_checkpoint, write_checkpoint
from .config import ModelConfig, PlanConfig, config_from_dict, replace
from .model import LeWM
from .planning import cem_plan, latent_goal_cost

__all__ = ["LeWMAgent", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA if available, else CPU; anything else as torch understands it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class LeWMAgent:
    """Goal-image-conditioned agent planning in LeWM's latent space.

    Args:
        model: a trained :class:`LeWM` (put in eval mode here).
        action_mean, action_std: (A,) dataset statistics; the model plans in normalised units.
        action_low, action_high: (A,) bounds of the env's action space; executed actions are clipped.
        obs_shape: (H, W, 3) shape of the observations (``pixels`` and ``goal``) this agent accepts.
        plan: CEM-MPC settings.
        device: ``auto``, ``cpu``, ``cuda``, ...
        metadata: free-form, JSON-able information saved with the agent (env id, data, training).
    """

    def __init__(
        self,
        model: LeWM,
        action_mean: np.ndarray,
        action_std: np.ndarray,
        action_low: np.ndarray,
        action_high: np.ndarray,
        obs_shape: tuple[int, int, int],
        plan: PlanConfig | None = None,
        device: str | torch.device = "auto",
        metadata: dict[str, Any] | None = None,
    ):
        cfg = model.cfg
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.plan_cfg = (plan or PlanConfig()).validate()
        self.metadata = dict(metadata or {})
        A = cfg.action_dim
        arrays = {"action_mean": action_mean, "action_std": action_std, "action_low": action_low, "action_high": action_high}
        for name, arr in arrays.items():
            if np.asarray(arr).shape != (A,):
                raise ValueError(f"LeWMAgent: {name} must have shape ({A},) (model action_dim), got {np.asarray(arr).shape}.")
        self.action_mean = np.asarray(action_mean, np.float32)
        self.action_std = np.asarray(action_std, np.float32)
        self.action_low = np.asarray(action_low, np.float32)
        self.action_high = np.asarray(action_high, np.float32)
        if np.any(self.action_std <= 0):
            raise ValueError(f"LeWMAgent: action_std must be > 0, got {self.action_std}.")
        self.obs_shape = tuple(int(s) for s in obs_shape)
        if len(self.obs_shape) != 3 or self.obs_shape[2] != 3:
            raise ValueError(f"LeWMAgent: obs_shape must be (H, W, 3), got {self.obs_shape}.")
        # bounds of one action block in normalised units, for the planner's clamp
        fs = cfg.frameskip
        lo = (self.action_low - self.action_mean) / self.action_std
        hi = (self.action_high - self.action_mean) / self.action_std
        self._block_low = torch.as_tensor(np.tile(lo, fs), device=self.device)
        self._block_high = torch.as_tensor(np.tile(hi, fs), device=self.device)
        self.num_plans = 0
        self.plan_seconds = 0.0
        self.reset()

    # ------------------------------------------------------------------ persistence
    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto", **plan_overrides: Any) -> "LeWMAgent":
        """Load an agent saved by :meth:`save` (or by ``lewm train``). ``plan_overrides`` replace PlanConfig fields."""
        config, state_dict = read_checkpoint(path)
        try:
            model_cfg = config_from_dict(ModelConfig, config["model"])
            plan_cfg = replace(config_from_dict(PlanConfig, config["plan"]), **plan_overrides)
            agent_cfg = config["agent"]
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"Checkpoint config {Path(path) / 'config.json'} is malformed: {e}") from e
        model = LeWM(model_cfg)
        load_state_checked(model, state_dict, where=f"checkpoint {path}")
        return cls(
            model,
            action_mean=np.asarray(agent_cfg["action_mean"]),
            action_std=np.asarray(agent_cfg["action_std"]),
            action_low=np.asarray(agent_cfg["action_low"]),
            action_high=np.asarray(agent_cfg["action_high"]),
            obs_shape=tuple(agent_cfg["obs_shape"]),
            plan=plan_cfg,
            device=device,
            metadata=config.get("metadata", {}),
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` to directory ``path`` (atomically)."""
        config = self.checkpoint_config(
            self.model.cfg, self.plan_cfg, self.action_mean, self.action_std,
            self.action_low, self.action_high, self.obs_shape, self.metadata,
        )
        return write_checkpoint(path, config, self.model.state_dict())

    @staticmethod
    def checkpoint_config(
        model_cfg: ModelConfig,
        plan_cfg: PlanConfig,
        action_mean: np.ndarray,
        action_std: np.ndarray,
        action_low: np.ndarray,
        action_high: np.ndarray,
        obs_shape: tuple[int, int, int],
        metadata: dict[str, Any],
    ) -> dict[str, Any]:
        """The JSON half of an agent checkpoint (the training loop writes agents through it too)."""
        as_list = lambda x: np.asarray(x, dtype=np.float32).tolist()  # noqa: E731
        return {
            "library_version": __version__,
            "model": dataclasses.asdict(model_cfg),
            "plan": dataclasses.asdict(plan_cfg),
            "agent": {
                "action_mean": as_list(action_mean),
                "action_std": as_list(action_std),
                "action_low": as_list(action_low),
                "action_high": as_list(action_high),
                "obs_shape": [int(s) for s in obs_shape],
            },
            "metadata": metadata,
        }

    # ------------------------------------------------------------------ episode state
    def reset(self, num_envs: int | None = None) -> None:
        """Start new episodes: clear plan queues, history and cached goals; reseed the planner."""
        self._n = num_envs or 0
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(self.plan_cfg.seed)
        self._init_state(self._n)

    def _init_state(self, n: int) -> None:
        cfg = self.model.cfg
        self._n = n
        self._queue: list[list[np.ndarray]] = [[] for _ in range(n)]  # env actions waiting to run
        self._warm: list[torch.Tensor | None] = [None] * n  # (H, Ad) warm-start mean
        self._t = np.zeros(n, dtype=np.int64)  # env steps since reset
        self._z_hist: list[list[torch.Tensor]] = [[] for _ in range(n)]  # latents at block boundaries
        self._a_hist: list[list[torch.Tensor]] = [[] for _ in range(n)]  # executed blocks between them
        self._cur_block: list[list[np.ndarray]] = [[] for _ in range(n)]  # normalised actions of this block
        self._goal_img: list[np.ndarray | None] = [None] * n
        self._z_goal = torch.zeros(n, cfg.latent_dim, device=self.device)

    def _reset_envs(self, idx: np.ndarray) -> None:
        for i in idx:
            self._queue[i], self._warm[i], self._t[i] = [], None, 0
            self._z_hist[i], self._a_hist[i], self._cur_block[i] = [], [], []
            self._goal_img[i] = None

    # ------------------------------------------------------------------ acting
    def _check_obs(self, obs: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        if not isinstance(obs, dict) or "pixels" not in obs or "goal" not in obs:
            keys = list(obs.keys()) if isinstance(obs, dict) else type(obs).__name__
            raise ValueError(f"LeWMAgent expects an observation dict with keys 'pixels' and 'goal', got {keys}.")
        arrays = {}
        for key in ("pixels", "goal"):
            x = np.asarray(obs[key])
            if x.dtype != np.uint8:
                raise ValueError(
                    f"LeWMAgent: obs[{key!r}] must be uint8 RGB in [0, 255], got dtype {x.dtype}. "
                    "Pass the env's raw pixels, not normalised floats."
                )
            if x.shape[-3:] != self.obs_shape or x.ndim not in (3, 4):
                raise ValueError(
                    f"LeWMAgent: obs[{key!r}] has shape {x.shape}; this agent was trained on "
                    f"{self.obs_shape} (H, W, 3) images, one or a batch (N, H, W, 3). Make the env "
                    f"with image_size={self.obs_shape[0]}."
                )
            arrays[key] = x
        pixels, goal = arrays["pixels"], arrays["goal"]
        batched = pixels.ndim == 4
        if goal.shape != pixels.shape:
            raise ValueError(f"LeWMAgent: obs['goal'] shape {goal.shape} differs from obs['pixels'] {pixels.shape}.")
        if not batched:
            pixels, goal = pixels[None], goal[None]
        return pixels, goal, batched

    @torch.inference_mode()
    def _encode(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        with self._autocast():
            return self.model.encode(x).float()

    def _autocast(self):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Next action(s): ``obs`` holds uint8 ``pixels`` and ``goal`` of (H, W, 3) or (N, H, W, 3).

        Returns float32 actions (A,) or (N, A) within the env's action bounds.
        """
        pixels, goal, batched = self._check_obs(obs)
        n = pixels.shape[0]
        if n != self._n:
            self._init_state(n)
        fs, history = self.model.cfg.frameskip, self.model.cfg.history

        # 1. goals: encode only the goal images that changed (once per episode)
        changed = [i for i in range(n) if self._goal_img[i] is None or not np.array_equal(self._goal_img[i], goal[i])]
        if changed:
            self._z_goal[changed] = self._encode(goal[changed])
            for i in changed:
                self._goal_img[i] = goal[i].copy()

        # 2. history: latents at block boundaries (only needed beyond the current frame if history > 1).
        # Plans hold receding_horizon * frameskip actions, so replanning always falls on a boundary too.
        at_boundary = self._t % fs == 0
        need_plan = np.array([len(q) == 0 for q in self._queue])
        need_latent = np.flatnonzero(need_plan | (at_boundary & (history > 1)))
        if len(need_latent):
            z = self._encode(pixels[need_latent])
            for j, i in enumerate(need_latent):
                if self._t[i] > 0 and self._cur_block[i]:  # the block that led here joins the history
                    self._a_hist[i].append(self._block_tensor(self._cur_block[i]))
                    self._cur_block[i] = []
                self._z_hist[i].append(z[j])
                del self._z_hist[i][:-history]  # keep the last `history` latents
                del self._a_hist[i][: len(self._a_hist[i]) - (history - 1)]  # and the blocks between them

        # 3. plan for every env with an empty queue, grouped by context length (one group when in lockstep)
        plan_idx = np.flatnonzero(need_plan)
        groups: dict[int, list[int]] = {}
        for i in plan_idx:
            groups.setdefault(len(self._z_hist[i]), []).append(int(i))
        for idx in groups.values():
            self._plan(idx)

        # 4. act
        actions = np.stack([self._queue[i].pop(0) for i in range(n)])  # (N, A)
        normed = (actions - self.action_mean) / self.action_std
        for i in range(n):
            self._cur_block[i].append(normed[i])
        self._t += 1
        return actions if batched else actions[0]

    def _block_tensor(self, block: list[np.ndarray]) -> torch.Tensor:
        return torch.as_tensor(np.concatenate(block), dtype=torch.float32, device=self.device)

    @torch.inference_mode()
    def _plan(self, idx: list[int]) -> None:
        cfg, pc = self.model.cfg, self.plan_cfg
        start = time.perf_counter()
        E, S, H, Ad = len(idx), pc.samples, pc.horizon, cfg.action_block_dim
        z_ctx = torch.stack([torch.stack(self._z_hist[i]) for i in idx])  # (E, c, D)
        c = z_ctx.shape[1]
        a_ctx = torch.stack([torch.stack(self._a_hist[i]) for i in idx]) if c > 1 else None  # (E, c-1, Ad)
        z_goal = self._z_goal[idx]  # (E, D)
        mean = torch.zeros(E, H, Ad, device=self.device)
        if pc.warm_start:
            for j, i in enumerate(idx):
                if self._warm[i] is not None:
                    mean[j] = self._warm[i]

        # the context is the same for every sample of an env: expand it once, not once per iteration
        zc = z_ctx.repeat_interleave(S, dim=0)  # (E*S, c, D)
        ac = a_ctx.repeat_interleave(S, dim=0) if a_ctx is not None else None  # (E*S, c-1, Ad)

        def cost_fn(actions: torch.Tensor) -> torch.Tensor:  # (E, S, H, Ad) -> (E, S)
            flat = actions.reshape(E * S, H, Ad)
            with self._autocast():
                z_pred = self.model.rollout(zc, ac, flat).float()  # (E*S, H, D)
            return latent_goal_cost(z_pred.view(E, S, H, -1), z_goal[:, None], pc.cost)

        result = cem_plan(cost_fn, mean, pc, self._block_low, self._block_high, self._generator)
        plan = result.actions.cpu().numpy()  # (E, H, Ad), normalised
        fs, A, R = cfg.frameskip, cfg.action_dim, pc.receding_horizon
        env_actions = plan.reshape(E, H * fs, A) * self.action_std + self.action_mean
        env_actions = np.clip(env_actions, self.action_low, self.action_high).astype(np.float32)
        for j, i in enumerate(idx):
            self._queue[i] = list(env_actions[j, : R * fs])
            tail = result.actions[j, R:]
            self._warm[i] = torch.cat([tail, torch.zeros(R, Ad, device=self.device)]) if pc.warm_start else None
        self.num_plans += E
        self.plan_seconds += time.perf_counter() - start

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: tuple | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple | None]:
        """Stable-Baselines3 protocol: ``(actions, state)``; ``episode_start`` marks envs that just reset.

        Planning is deterministic given the planner seed whatever ``deterministic`` says; the
        recurrent ``state`` is unused (the agent keeps its own per-env plan queues) and returned as is.
        """
        pixels, _, batched = self._check_obs(observation)
        n = pixels.shape[0]
        if n != self._n:
            self._init_state(n)
        if episode_start is not None:
            starts = np.flatnonzero(np.asarray(episode_start, dtype=bool).reshape(-1))
            self._reset_envs(starts)
        return self.act(observation), state

    @property
    def seconds_per_plan(self) -> float:
        """Mean planning wall-clock per environment decision (s); all envs of a batch share a call."""
        return self.plan_seconds / max(self.num_plans, 1)
