"""LeWM and its collapse ablation: train on the task's offline episodes, plan toward the goal image.

``lewm``: the world model of :mod:`lewm_agent` trained reward-free on the task's collected
episodes (training split only), acting by latent CEM-MPC. ``lewm-nosigreg``: the same with
SIGReg's weight set to 0, the ablation whose embeddings are expected to collapse.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import register
from .base import CellContext, Task, TrainClock, Trained, budget_from

__all__ = ["Budget", "train_lewm", "lewm", "lewm_nosigreg"]


@dataclass
class Budget:
    """LeWM's budget; 0 means "the preset's value"."""

    preset: str = "cpu"
    """Model/training/planning preset of :mod:`lewm_agent.config` (``tiny``, ``cpu``, ``paper``)."""
    steps: int = 0
    """Optimiser steps."""
    batch_size: int = 0
    """Clips per optimiser step."""
    patch_size: int = 0
    """ViT patch size; needed when the preset's does not divide the task's image size (paper: 14)."""


def train_lewm(task: Task, ctx: CellContext, budget: dict[str, Any], sigreg: bool = True) -> Trained:
    """Train (resuming from ``ctx.work_dir``) and load a LeWM agent for ``task``."""
    from lewm_agent.agent import LeWMAgent
    from lewm_agent.config import preset, replace
    from lewm_agent.train import train

    b = budget_from(Budget, budget)
    p = preset(b.preset)
    image_size = int(task.env_kwargs.get("image_size", p.model.image_size))
    model_over: dict[str, Any] = {"image_size": image_size}
    if b.patch_size:
        model_over["patch_size"] = b.patch_size
    if image_size % model_over.get("patch_size", p.model.patch_size):
        raise ValueError(f"LeWM preset {b.preset!r} has patch_size {p.model.patch_size}, which does not divide the task's "
                         f"image_size {image_size}; set lewm.patch_size=<a divisor of {image_size}> (e.g. 8).")
    if not sigreg:
        model_over["sigreg_lambda"] = 0.0
    model_cfg = replace(p.model, **model_over)
    train_over: dict[str, Any] = {"seed": task.seed, "device": ctx.device}
    if b.steps:
        train_over.update(steps=b.steps, ckpt_every=min(p.train.ckpt_every, b.steps),
                          val_every=min(p.train.val_every, b.steps))
    if b.batch_size:
        train_over["batch_size"] = b.batch_size
    train_cfg = replace(p.train, **train_over)

    work = ctx.work_dir
    work.mkdir(parents=True, exist_ok=True)
    clock = TrainClock(work)
    if not (work / "agent" / "config.json").exists():
        tic = time.perf_counter()
        result = train(task.data_path, work, model_cfg, train_cfg, p.plan,
                       resume=(work / "checkpoint" / "config.json").exists(), progress=ctx.progress, tb_dir=ctx.tb_dir)
        clock.add(time.perf_counter() - tic, final=result.final)
    record = clock.read()
    agent = LeWMAgent.load(work / "agent", device=ctx.device)
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(ctx.tb_dir))  # the search diagnostics of every evaluation decision: plan/*
    agent.log_to(writer)
    val = [int(i) for i in agent.metadata["val_episodes"]]
    if val != list(task.held_out_episodes):
        raise RuntimeError(f"LeWM held out episodes {val[:5]}... but the task's evaluation pairs come from "
                           f"{task.held_out_episodes[:5]}...; the train/validation split settings differ.")
    import h5py

    with h5py.File(task.data_path, "r") as f:
        ep_len = np.asarray(f["ep_len"])
    frames = int(ep_len[task.train_episodes].sum())
    return Trained(actor=agent, data_used=frames, data_kind="offline transitions",
                   train_seconds=float(record.get("seconds", 0.0)), params=sum(p.numel() for p in agent.model.parameters()),
                   extra={"param_breakdown": agent.model.num_params(), "preset": b.preset, "steps": train_cfg.steps, "batch_size": train_cfg.batch_size,
                          "sigreg_lambda": model_cfg.sigreg_lambda, "final": record.get("final", {}),
                          "plan": dataclasses.asdict(agent.plan_cfg)},
                   close=writer.close)


@register("lewm")
def lewm(task: Task, ctx: CellContext, budget: dict[str, Any]) -> Trained:
    """LeWM: offline, reward-free world model + latent CEM-MPC toward the goal image."""
    return train_lewm(task, ctx, budget, sigreg=True)


@register("lewm-nosigreg")
def lewm_nosigreg(task: Task, ctx: CellContext, budget: dict[str, Any]) -> Trained:
    """The collapse ablation: LeWM with SIGReg's weight lambda = 0."""
    return train_lewm(task, ctx, budget, sigreg=False)
