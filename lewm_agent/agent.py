"""LeWMAgent: a trained LeWM world model that acts by latent MPC toward a goal image.

    agent = LeWMAgent.load("runs/tworoom/agent")      # device="auto"
    agent.reset()                                     # new episode: clears plans and history
    action = agent.act(obs)                           # one obs dict, or a batch from a VecEnv
    actions, state = agent.predict(obs, state=None, episode_start=None, deterministic=True)

``predict`` follows Stable-Baselines3's ``PolicyPredictor`` protocol, so
``stable_baselines3.common.evaluation.evaluate_policy(agent, vec_env)`` works unchanged.

How one decision is made, for N environments at once (each env's episode lives in one
:class:`EnvState`):
1. goals: any env whose goal image changed since the last call has it encoded (once per episode);
2. history: every frame a decision or a later context needs is encoded: the context of a decision at
   env step t is the latents of frames t - (history-1) x frameskip, ..., t - frameskip, t and the
   executed action blocks between them (block boundaries when whole blocks are executed, every
   step with ``PlanConfig.replan_every=1`` and history > 1);
3. decide for every env whose queue of actions is empty, all together: ``mode="plan"`` runs the
   planner (``PlanConfig.planner``: CEM/iCEM, MPPI or Adam) on the N_plan x samples candidate
   sequences, scored by the predictor's rollout (:meth:`LeWM.rollout_samples`) in one call per
   iteration; ``mode="policy"`` asks the latent policy instead (no search). The planner's mean
   starts from the policy's proposal if the agent has a policy, else from the last plan's tail;
4. act: each env pops its next action. ``receding_horizon`` blocks are queued per decision, or
   ``replan_every`` env steps (a part of a block, for closed-loop control at the env's rate); with
   ``ensemble`` each queued action is the mean of every still-running plan's proposal for its step.

Planning diagnostics (per plan call: final elite cost, best cost, std, iterations, seconds) are
kept in :attr:`LeWMAgent.last_plan` and written to TensorBoard as ``plan/*`` after
:meth:`LeWMAgent.log_to`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .checkpoint import CheckpointError, check_library_version, load_state_checked, read_checkpoint, write_checkpoint
from .config import ModelConfig, PlanConfig, config_from_dict, replace
from .data.actions import ActionNormalizer
from .model import LeWM
from .planning import PlanEnsemble, PlanResult, latent_goal_cost, plan, shift_plan
from .precision import autocast, planning_precision, resolve_precision

__all__ = ["LeWMAgent", "EnvState", "resolve_device"]

POLICY_PREFIX = "policy."


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA if available, else CPU; anything else as torch understands it.

    Raises:
        ValueError: a name torch does not know (``banana``), or a CUDA device this machine does not have.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (resolved.index or 0) >= count:
            raise ValueError(f"device {device!r}: this machine has {count} CUDA device(s); use --device auto or cpu.")
    return resolved


@dataclass
class EnvState:
    """One environment's episode as the agent sees it."""

    queue: deque = field(default_factory=deque)
    """Env actions (A,) decided and not yet executed."""
    warm: torch.Tensor | None = None
    """(H, Ad) warm-start mean for the next plan: the unexecuted tail of the last one."""
    t: int = 0
    """Env steps since the episode began."""
    z_steps: dict = field(default_factory=dict)
    """Latents (D,) by the env step whose frame they encode: those a later context may still need."""
    actions: list = field(default_factory=list)
    """Normalised actions (A,) of the last ``(history - 1) x frameskip`` env steps, oldest first."""
    ensemble: PlanEnsemble = field(default_factory=PlanEnsemble)
    """``PlanConfig.ensemble``: the plans that still cover a step ahead."""
    goal_img: np.ndarray | None = None
    """The goal image of this episode, to notice a new goal."""
    z_goal: torch.Tensor | None = None
    """(D,) latent of the goal image."""

    def context_steps(self, history: int, frameskip: int) -> list[int]:
        """Env steps of the context frames for a decision now: up to ``history``, ``frameskip`` apart, ending at
        :attr:`t`, oldest first."""
        c = min(history, 1 + self.t // frameskip)
        return [self.t - j * frameskip for j in range(c - 1, -1, -1)]


_NO_POLICY = ("LeWMAgent: PlanConfig.mode='policy' needs a latent policy; train one with `lewm policy AGENT_DIR` "
              "(lewm_agent.policy.fit_policy) or use mode='plan'.")


class LeWMAgent:
    """Goal-image-conditioned agent acting in LeWM's latent space.

    Args:
        model: a trained :class:`LeWM` (put in eval mode here).
        action_mean, action_std: (A,) dataset statistics; the model plans in normalised units.
        action_low, action_high: (A,) bounds of the env's action space; executed actions are clipped.
        obs_shape: (H, W, 3) shape of the observations (``pixels`` and ``goal``) this agent accepts.
        plan: planner / MPC settings.
        device: ``auto``, ``cpu``, ``cuda``, ...
        metadata: free-form, JSON-able information saved with the agent (env id, data, training).
        policy: optional latent policy (:class:`lewm_agent.policy.LatentPolicy`) that proposes
            ``(N, horizon, Ad)`` normalised action blocks from (z, z_goal); it warm-starts the
            planner and acts alone when ``plan.mode == "policy"`` (acting raises without one; an agent saved
            with that mode before its policy was trained loads, so that ``lewm policy`` can add it).
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
        policy: torch.nn.Module | None = None,
    ):
        cfg = model.cfg
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.plan_cfg = (plan or PlanConfig()).validate()
        self.metadata = dict(metadata or {})
        self.policy = policy.to(self.device).eval() if policy is not None else None
        if self.policy is not None and getattr(self.policy, "horizon", self.plan_cfg.horizon) < self.plan_cfg.horizon:
            raise ValueError(f"LeWMAgent: the policy proposes {self.policy.horizon} blocks but PlanConfig.horizon="
                             f"{self.plan_cfg.horizon}; plan with horizon <= {self.policy.horizon} or retrain the "
                             "policy.")
        A = cfg.action_dim
        arrays = {"action_mean": action_mean, "action_std": action_std, "action_low": action_low,
                  "action_high": action_high}
        for name, arr in arrays.items():
            if np.asarray(arr).shape != (A,):
                raise ValueError(f"LeWMAgent: {name} must have shape ({A},) (model action_dim), "
                                 f"got {np.asarray(arr).shape}.")
            if not np.isfinite(np.asarray(arr, np.float64)).all():
                raise ValueError(f"LeWMAgent: {name} must be finite, got {np.asarray(arr)}.")
        if np.any(np.asarray(action_std) <= 0):
            raise ValueError(f"LeWMAgent: action_std must be > 0, got {np.asarray(action_std)}.")
        try:
            self.normalizer = ActionNormalizer(action_mean, action_std)
        except ValueError as err:
            raise ValueError(f"LeWMAgent: the action statistics are invalid: {err}.") from None
        """Training's action z-scoring: the planner and the model work in its units."""
        self.action_low = np.asarray(action_low, np.float32)
        self.action_high = np.asarray(action_high, np.float32)
        self.obs_shape = tuple(int(s) for s in obs_shape)
        if len(self.obs_shape) != 3 or self.obs_shape[2] != 3:
            raise ValueError(f"LeWMAgent: obs_shape must be (H, W, 3), got {self.obs_shape}.")
        self.plan_cfg.steps_per_decision(cfg.frameskip)  # replan_every within the plan, before any work
        self.precision = resolve_precision(self.plan_cfg.precision, self.device)
        """``fp32`` or ``bf16``: the arithmetic actually used (``PlanConfig.precision`` resolved)."""
        # bounds of one action block in normalised units, for the planner's clamp
        fs = cfg.frameskip
        normalize = self.normalizer.normalize_blocks
        self._block_low = torch.as_tensor(normalize(np.tile(self.action_low, fs)), device=self.device)
        self._block_high = torch.as_tensor(normalize(np.tile(self.action_high, fs)), device=self.device)
        self.num_plans = 0
        """Env decisions made by the planner or the policy since construction."""
        self.plan_seconds = 0.0
        """Wall-clock spent in those decisions (s)."""
        self.encoded_images = 0
        """Images encoded since construction (goals and observations)."""
        self.decide_calls = 0
        """Batched decision calls (one per group of envs deciding together)."""
        self.last_plan: dict[str, Any] = {}
        """Diagnostics of the last decision call (see :meth:`_log_plan`)."""
        self._writer = None
        self.reset()

    # ------------------------------------------------------------------ persistence
    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto", **plan_overrides: Any) -> "LeWMAgent":
        """Load an agent saved by :meth:`save` (or by ``lewm train``). ``plan_overrides`` replace PlanConfig fields."""
        config, state_dict = read_checkpoint(path)
        where = Path(path) / "config.json"
        try:
            model_cfg = config_from_dict(ModelConfig, config["model"])
            plan_cfg = config_from_dict(PlanConfig, config["plan"])
            agent_cfg = config["agent"]
            arrays = {name: np.asarray(agent_cfg[name], dtype=np.float64)
                      for name in ("action_mean", "action_std", "action_low", "action_high")}
            obs_shape = tuple(int(s) for s in agent_cfg["obs_shape"])
        except KeyError as e:
            raise CheckpointError(f"Checkpoint config {where} is malformed: it has no {e.args[0]!r} entry; "
                                  "re-save or retrain the checkpoint.") from None
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"Checkpoint config {where} is malformed: {e}") from None
        for name, arr in arrays.items():
            if not np.isfinite(arr).all():
                raise CheckpointError(f"Checkpoint config {where}: agent.{name} holds NaN or infinity "
                                      f"({arr.tolist()}); the checkpoint is corrupt: re-save or retrain it.")
        bad = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise CheckpointError(f"Checkpoint {path}: {len(bad)} weight tensor(s) hold NaN or infinity "
                                  f"(first: {bad[0]}); the training diverged or the file is corrupt: retrain it.")
        check_library_version(config, where)
        plan_cfg = replace(plan_cfg, **plan_overrides)  # the caller's settings: their errors are the caller's
        if plan_overrides.get("mode") == "policy" and not config.get("policy"):
            raise ValueError(_NO_POLICY)
        policy_state = {k[len(POLICY_PREFIX):]: v for k, v in state_dict.items() if k.startswith(POLICY_PREFIX)}
        model_state = {k: v for k, v in state_dict.items() if not k.startswith(POLICY_PREFIX)}
        model = LeWM(model_cfg)
        load_state_checked(model, model_state, where=f"checkpoint {path}")
        policy = None
        if config.get("policy"):
            from .policy import LatentPolicy

            try:
                policy = LatentPolicy.from_config_dict(config["policy"])
            except ValueError as e:
                raise CheckpointError(f"Checkpoint {path}: policy config is malformed: {e}") from e
            load_state_checked(policy, policy_state, where=f"checkpoint {path} (policy)")
        return cls(
            model,
            action_mean=arrays["action_mean"],
            action_std=arrays["action_std"],
            action_low=arrays["action_low"],
            action_high=arrays["action_high"],
            obs_shape=obs_shape,
            plan=plan_cfg,
            device=device,
            metadata=config.get("metadata", {}),
            policy=policy,
        )

    @property
    def action_mean(self) -> np.ndarray:
        """float32 (A,) mean of the training actions (:attr:`normalizer`'s)."""
        return self.normalizer.mean

    @property
    def action_std(self) -> np.ndarray:
        """float32 (A,) std of the training actions (:attr:`normalizer`'s)."""
        return self.normalizer.std

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (model and policy weights) to directory ``path``
        (atomically)."""
        config = self.checkpoint_config(
            self.model.cfg, self.plan_cfg, self.action_mean, self.action_std,
            self.action_low, self.action_high, self.obs_shape, self.metadata,
        )
        state = dict(self.model.state_dict())
        if self.policy is not None:
            config["policy"] = self.policy.config_dict()
            state.update({POLICY_PREFIX + k: v for k, v in self.policy.state_dict().items()})
        return write_checkpoint(path, config, state)

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

    def log_to(self, writer: Any) -> None:
        """Write planning diagnostics to a TensorBoard ``SummaryWriter`` (``plan/*``), one point per decision call."""
        self._writer = writer

    # ------------------------------------------------------------------ episode state
    def reset(self, num_envs: int | None = None) -> None:
        """Start new episodes: clear plan queues, history and cached goals; reseed the planner."""
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(self.plan_cfg.seed)
        self.envs: list[EnvState] = [EnvState() for _ in range(num_envs or 0)]

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
        if batched and pixels.shape[0] == 0:
            raise ValueError("LeWMAgent: the observation batch holds 0 envs; pass at least one observation.")
        if goal.shape != pixels.shape:
            raise ValueError(f"LeWMAgent: obs['goal'] shape {goal.shape} differs from obs['pixels'] {pixels.shape}.")
        if not batched:
            pixels, goal = pixels[None], goal[None]
        return pixels, goal, batched

    @torch.inference_mode()
    def encode(self, images: np.ndarray) -> torch.Tensor:
        """uint8 images (N, H, W, 3) -> float32 latents (N, D) on the agent's device."""
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        self.encoded_images += len(x)
        with autocast(self.precision, self.device):
            return self.model.encode(x).float()

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Next action(s): ``obs`` holds uint8 ``pixels`` and ``goal`` of (H, W, 3) or (N, H, W, 3).

        Returns float32 actions (A,) or (N, A) within the env's action bounds.
        """
        pixels, goal, batched = self._check_obs(obs)
        n = pixels.shape[0]
        if n != len(self.envs):
            self.envs = [EnvState() for _ in range(n)]
        envs, fs, history = self.envs, self.model.cfg.frameskip, self.model.cfg.history

        # 1. goals: encode only the goal images that changed (once per episode)
        changed = [i for i, e in enumerate(envs) if e.goal_img is None or not np.array_equal(e.goal_img, goal[i])]
        if changed:
            z_goal = self.encode(goal[changed])
            for j, i in enumerate(changed):
                envs[i].goal_img, envs[i].z_goal = goal[i].copy(), z_goal[j]

        # 2. history: the current frame's latent where a decision or a later context needs it. Decisions fall every
        # `k` = PlanConfig.steps_per_decision steps, and a context reaches back in strides of frameskip from one,
        # so with history > 1 every step that is a multiple of gcd(k, frameskip) is encoded (block boundaries when
        # whole blocks are executed).
        stride = math.gcd(self.steps_per_decision, fs)
        need = [i for i, e in enumerate(envs) if not e.queue or (history > 1 and e.t % stride == 0)]
        if need:
            z = self.encode(pixels[need])
            for j, i in enumerate(need):
                e = envs[i]
                e.z_steps[e.t] = z[j]
                oldest = e.t - (history - 1) * fs
                for s in [s for s in e.z_steps if s < oldest]:
                    del e.z_steps[s]

        # 3. decide for every env with an empty queue, grouped by context length (one group in lockstep)
        groups: dict[int, list[int]] = {}
        for i, e in enumerate(envs):
            if not e.queue:
                groups.setdefault(len(e.context_steps(history, fs)), []).append(i)
        for idx in groups.values():
            self._decide(idx)

        # 4. act
        actions = np.stack([e.queue.popleft() for e in envs])  # (N, A)
        normed = self.normalizer.normalize(actions)
        keep = (history - 1) * fs
        for i, e in enumerate(envs):
            e.actions.append(normed[i])
            del e.actions[: max(0, len(e.actions) - keep)]
            e.t += 1
        return actions if batched else actions[0]

    def plan_latents(
        self,
        z_context: torch.Tensor,
        a_context: torch.Tensor | None,
        z_goal: torch.Tensor,
        mean: torch.Tensor | None = None,
    ) -> PlanResult:
        """Plan from latents with the agent's planner: the search behind :meth:`act`, for E envs.

        Args:
            z_context: (E, c, D) latents at the last c block boundaries, oldest first (c <= history).
            a_context: (E, c-1, Ad) normalised action blocks executed between them, or None if c == 1.
            z_goal: (E, D) goal latents.
            mean: (E, H, Ad) initial mean (default zeros).

        Returns:
            the planner's :class:`PlanResult` (normalised action blocks, their cost, diagnostics).
        """
        pc = self.plan_cfg
        E, H, Ad = z_context.shape[0], pc.horizon, self.model.cfg.action_block_dim
        if mean is None:
            mean = torch.zeros(E, H, Ad, device=self.device)

        precision = planning_precision(pc.precision, self.precision, self.device, E * pc.samples)

        def cost_fn(actions: torch.Tensor) -> torch.Tensor:  # (E, S, H, Ad) -> (E, S)
            with autocast(precision, self.device):
                z_pred = self.model.rollout_samples(z_context, a_context, actions).float()  # (E, S, H, D)
            return latent_goal_cost(z_pred, z_goal[:, None], pc.cost)

        # the gradient planner differentiates through the rollout: no inference mode for it
        grad_ctx = torch.no_grad() if pc.planner == "adam" else torch.inference_mode()
        with grad_ctx:
            return plan(cost_fn, mean, pc, self._block_low, self._block_high, self._generator)

    @torch.inference_mode()
    def propose(self, z: torch.Tensor, z_goal: torch.Tensor) -> torch.Tensor:
        """The latent policy's proposal: z, z_goal (E, D) -> (E, horizon, Ad) normalised blocks, clamped."""
        if self.policy is None:
            raise ValueError("LeWMAgent.propose: this agent has no latent policy; train one with `lewm policy`.")
        blocks = self.policy(z, z_goal)[:, : self.plan_cfg.horizon].float()
        return torch.maximum(torch.minimum(blocks, self._block_high), self._block_low)

    def _decide(self, idx: list[int]) -> None:
        """Fill the action queues of envs ``idx`` (same context length) by planning or by the policy."""
        cfg, pc = self.model.cfg, self.plan_cfg
        if pc.mode == "policy" and self.policy is None:
            raise ValueError(_NO_POLICY)
        start = time.perf_counter()
        envs = [self.envs[i] for i in idx]
        E, H, Ad = len(idx), pc.horizon, cfg.action_block_dim
        fs = cfg.frameskip
        steps = [e.context_steps(cfg.history, fs) for e in envs]
        z_ctx = torch.stack([torch.stack([e.z_steps[s] for s in st]) for e, st in zip(envs, steps)])  # (E, c, D)
        a_ctx = None
        if z_ctx.shape[1] > 1:  # the action blocks between consecutive context frames: (E, c-1, Ad)
            blocks_np = [np.stack([np.concatenate(e.actions[len(e.actions) - (e.t - s):][:fs]) for s in st[:-1]])
                         for e, st in zip(envs, steps)]
            a_ctx = torch.as_tensor(np.stack(blocks_np), dtype=torch.float32, device=self.device)
        z_goal = torch.stack([e.z_goal for e in envs])  # (E, D)
        result = None
        if self.policy is not None and (pc.mode == "policy" or pc.policy_warm_start):
            mean = self.propose(z_ctx[:, -1], z_goal)
        else:
            mean = torch.zeros(E, H, Ad, device=self.device)
            if pc.warm_start:
                for j, e in enumerate(envs):
                    if e.warm is not None:
                        mean[j] = e.warm
        if pc.mode == "policy":
            blocks = mean
        else:
            result = self.plan_latents(z_ctx, a_ctx, z_goal, mean)
            blocks = result.actions
        plan_np = blocks.detach().float().cpu().numpy()  # (E, H, Ad), normalised
        A, k = cfg.action_dim, self.steps_per_decision
        env_actions = self.normalizer.denormalize(plan_np.reshape(E, H * fs, A))
        env_actions = np.clip(env_actions, self.action_low, self.action_high).astype(np.float32)
        warm = shift_plan(blocks.detach(), k, fs) if pc.warm_start else None
        for j, e in enumerate(envs):
            e.queue = deque(e.ensemble.add(e.t, env_actions[j], k) if pc.ensemble else env_actions[j, :k])
            e.warm = None if warm is None else warm[j]
        seconds = time.perf_counter() - start
        self.num_plans += E
        self.plan_seconds += seconds
        self.decide_calls += 1
        self._log_plan(result, E, seconds)

    def _log_plan(self, result: PlanResult | None, envs: int, seconds: float) -> None:
        """Keep the last decision's diagnostics and write them to TensorBoard (``plan/*``) if asked."""
        info: dict[str, Any] = {"envs": envs, "seconds": seconds, "seconds_per_env": seconds / envs}
        if result is not None:
            d = result.diagnostics
            info.update(iterations=result.iterations, cost=float(result.cost.float().mean()),
                        **{k: v[-1] for k, v in d.items() if v}, curves=d)
        self.last_plan = info
        if self._writer is not None:
            for k, v in info.items():
                if isinstance(v, (int, float)):
                    self._writer.add_scalar(f"plan/{k}", v, self.decide_calls)

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: tuple | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple | None]:
        """Stable-Baselines3 protocol: ``(actions, state)``; ``episode_start`` marks envs that just reset.

        Planning is deterministic given the planner seed whatever ``deterministic`` says; the
        recurrent ``state`` is unused (the agent keeps its own per-env state) and returned as is.
        """
        pixels, _, batched = self._check_obs(observation)
        n = pixels.shape[0]
        if n != len(self.envs):
            self.envs = [EnvState() for _ in range(n)]
        if episode_start is not None:
            starts = np.asarray(episode_start).reshape(-1)
            if len(starts) != n:
                raise ValueError(f"LeWMAgent.predict: episode_start has {len(starts)} entries for a batch of {n} envs; "
                                 "pass one flag per env (or None).")
            for i in np.flatnonzero(starts.astype(bool)):
                self.envs[i] = EnvState()
        return self.act(observation), state

    @property
    def train_steps(self) -> int | None:
        """Optimiser steps the world model was trained for (``metadata["train_step"]``, which ``lewm train``
        records); None for an agent saved without it (built by hand, or by an older version)."""
        steps = self.metadata.get("train_step")
        return None if steps is None else int(steps)

    def require_trained(self, what: str = "evaluate") -> "LeWMAgent":
        """Self, or a ValueError if the agent records 0 optimiser steps: its results would be an untrained
        model's, reported as if it were trained."""
        if self.train_steps == 0:
            raise ValueError(f"cannot {what} an untrained agent (0 optimiser steps); train it first "
                             "(lewm train --steps N with N >= 1).")
        return self

    @property
    def num_params(self) -> int:
        """Parameters the agent acts with: the world model's and, if it has one, the latent policy's."""
        policy = 0 if self.policy is None else self.policy.num_params()
        return self.model.num_params()["total"] + policy

    @property
    def steps_per_decision(self) -> int:
        """Env actions queued per decision: ``PlanConfig.replan_every``, or ``receding_horizon`` whole blocks."""
        return self.plan_cfg.steps_per_decision(self.model.cfg.frameskip)

    @property
    def seconds_per_plan(self) -> float:
        """Mean decision wall-clock per environment decision (s); all envs of a batch share a call."""
        return self.plan_seconds / max(self.num_plans, 1)
