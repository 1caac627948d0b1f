"""What the offline goal-conditioned baselines share: budget, training loop, checkpoints, actor.

A baseline supplies a :class:`Learner`: an ``nn.Module`` holding every network it trains, with
``update(batch_fn, rng) -> losses`` (one optimiser step on batches it draws itself) and ``policy``
(the network that acts: (B, 6, H, W) in [0, 1] -> (B, A) in [-1, 1]). :func:`fit_offline` trains
it on the task's training episodes only, with a tqdm bar, TensorBoard scalars, an atomic
checkpoint every ``save_every`` steps (an interrupted cell resumes exactly: the batches of step s
come from a generator seeded by (seed, s)), and returns a :class:`Trained` whose actor is a
:class:`GoalPolicyActor`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn

from .base import CellContext, Task, TrainClock, Trained
from .hindsight import HindsightSampler
from .pixel_nets import random_shift, to_input

__all__ = ["OfflineBudget", "Learner", "BatchFn", "GoalPolicyActor", "fit_offline"]


@dataclass
class OfflineBudget:
    """Settings every offline goal-conditioned baseline has (its own budget class adds the rest)."""

    steps: int = 3000
    """Optimiser steps."""
    batch_size: int = 128
    """Samples per optimiser step."""
    lr: float = 3e-4
    """Adam learning rate."""
    augment_pad: int = 0
    """Random-shift augmentation (pixels of padding; 0: none), drawn per sample, the same for observation and goal."""
    save_every: int = 500
    """Steps between resumable checkpoints."""
    log_every: int = 50
    """Steps between TensorBoard points."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}.")
        if self.lr <= 0 or self.augment_pad < 0:
            raise ValueError(f"{type(self).__name__}: lr must be > 0 and augment_pad >= 0.")


class BatchFn(Protocol):
    def __call__(self, obs_rows: np.ndarray, goal_rows: np.ndarray) -> torch.Tensor:
        """(B,) observation rows and goal rows -> float (B, 6, H, W) input, augmented when training."""


class Learner(Protocol):
    policy: nn.Module

    def update(self, sampler: HindsightSampler, batch_fn: BatchFn, rng: np.random.Generator,
               batch_size: int) -> dict[str, float]:
        """One optimiser step; returns the losses to log."""

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers whose state a checkpoint keeps (by name)."""


class GoalPolicyActor:
    """Batched actor of a goal-conditioned pixel policy: ``act({"pixels", "goal"}) -> (N, A)`` in env units."""

    def __init__(self, policy: nn.Module, to_env_action: Callable[[np.ndarray], np.ndarray], device: torch.device):
        self.policy, self.to_env_action, self.device = policy.eval(), to_env_action, device

    def reset(self, num_envs: int | None = None) -> None:
        """Nothing to reset: the policy is memoryless."""

    @torch.inference_mode()
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        x = to_input(np.asarray(obs["pixels"]), np.asarray(obs["goal"]), self.device)
        return self.to_env_action(self.policy(x).float().cpu().numpy())


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def fit_offline(name: str, task: Task, ctx: CellContext, budget: OfflineBudget,
                build: Callable[[int, int, OfflineBudget], Any]) -> Trained:
    """Train (resuming from ``ctx.work_dir``) or load the learner ``build(image_size, action_dim, budget)``.

    The learner sees the task's training episodes only (``task.train_episodes``); the finished
    weights are ``<work>/final.pt``, so a rerun of a finished cell only evaluates.
    """
    from lewm_agent.data import load_episodes
    from tqdm.auto import tqdm

    device = _device(ctx.device)
    episodes = load_episodes(task.data_path)
    env = task.make_env()
    low, high = env.action_space.low, env.action_space.high
    image_size = int(env.observation_space["pixels"].shape[0])
    env.close()
    sampler = HindsightSampler(episodes, np.asarray(task.train_episodes), low, high)
    torch.manual_seed(task.seed)
    learner = build(image_size, int(np.prod(low.shape)), budget).to(device)
    work = ctx.work_dir
    work.mkdir(parents=True, exist_ok=True)
    final, ckpt, clock = work / "final.pt", work / "checkpoint.pt", TrainClock(work)
    pixels = episodes.pixels

    def batch_fn(obs_rows: np.ndarray, goal_rows: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        x = to_input(pixels[obs_rows], pixels[goal_rows], device)
        return random_shift(x, budget.augment_pad, rng) if rng is not None else x

    if final.exists():
        learner.load_state_dict(torch.load(final, map_location=device, weights_only=True))
    else:
        start = 0
        if ckpt.exists():
            state = torch.load(ckpt, map_location=device, weights_only=False)
            learner.load_state_dict(state["learner"])
            for key, opt in learner.optimizers().items():
                opt.load_state_dict(state["optim"][key])
            start = int(state["step"])
        else:
            clock.reset()
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(ctx.tb_dir), purge_step=start or None)
        if start == 0:
            writer.add_text("budget", json.dumps(dataclasses.asdict(budget)))
        learner.train()
        tic, last = time.perf_counter(), {}
        bar = tqdm(total=budget.steps, initial=start, desc=name, disable=not ctx.progress, dynamic_ncols=True)
        for step in range(start, budget.steps):
            rng = np.random.default_rng([task.seed, step])
            last = learner.update(sampler, lambda o, g: batch_fn(o, g, rng), rng, budget.batch_size)
            bar.update(1)
            if (step + 1) % budget.log_every == 0 or step + 1 == budget.steps:
                for k, v in last.items():
                    writer.add_scalar(f"train/{k}", v, step + 1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in last.items()})
            if (step + 1) % budget.save_every == 0 and step + 1 < budget.steps:
                _atomic_torch_save({"learner": learner.state_dict(), "step": step + 1,
                                    "optim": {k: o.state_dict() for k, o in learner.optimizers().items()}}, ckpt)
                clock.add(time.perf_counter() - tic)
                tic = time.perf_counter()
        bar.close()
        writer.close()
        _atomic_torch_save(learner.state_dict(), final)
        clock.add(time.perf_counter() - tic, final=last)
        ckpt.unlink(missing_ok=True)
    actor = GoalPolicyActor(learner.policy, sampler.to_env_action, device)
    return Trained(actor=actor, data_used=int(episodes.ep_len[np.asarray(task.train_episodes)].sum()),
                   data_kind="offline transitions", train_seconds=clock.seconds,
                   params=sum(p.numel() for p in learner.policy.parameters()),
                   extra={"budget": dataclasses.asdict(budget), "final": clock.read().get("final", {}),
                          "params_total": sum(p.numel() for p in learner.parameters()),
                          "transitions": sampler.num_transitions})
