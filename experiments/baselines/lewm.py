"""LeWM and its collapse ablation: train on the task's offline episodes, plan toward the goal image.

``lewm``: the world model of :mod:`lewm_agent` trained reward-free on the task's collected
episodes (training split only), acting by latent CEM-MPC. ``lewm-nosigreg``: the same with
SIGReg's weight set to 0, the ablation whose embeddings are expected to collapse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from . import register
from .base import CellContext, Task, Trained, budget_from

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

    def __post_init__(self) -> None:
        from lewm_agent.config import PRESETS, check_fields

        check_fields(self, {"preset": ("in", sorted(PRESETS)), "steps": (">=", 0), "batch_size": (">=", 0),
                            "patch_size": (">=", 0)})

    def resolved(self) -> dict[str, Any]:
        """The configs the preset's name stands for now (model, train, plan, as dicts): part of a comparison
        cell's key, so that a cell trained under an earlier version of the preset is not reused."""
        from lewm_agent.config import preset

        p = preset(self.preset)
        out = {"model": asdict(p.model), "train": asdict(p.train), "plan": asdict(p.plan)}
        if p.latent_policy is not None:  # only then: the keys of presets without one stay as they were
            out["latent_policy"] = asdict(p.latent_policy)
        return out


def train_lewm(task: Task, ctx: CellContext, budget: dict[str, Any], sigreg: bool = True) -> Trained:
    """Train (resuming from ``ctx.work_dir``) and load a LeWM agent for ``task``, on the task's own split
    (:func:`lewm_agent.pipeline.train_lewm_on_task`, which ``lewm run`` uses too)."""
    from lewm_agent.config import preset, replace
    from lewm_agent.pipeline import train_lewm_on_task

    b = budget_from(Budget, budget)
    p = preset(b.preset)
    image_size = int(task.env_kwargs.get("image_size", p.model.image_size))
    model_over: dict[str, Any] = {"image_size": image_size}
    if b.patch_size:
        model_over["patch_size"] = b.patch_size
    if image_size % model_over.get("patch_size", p.model.patch_size):
        raise ValueError(f"LeWM preset {b.preset!r} has patch_size {p.model.patch_size}, which does not divide the "
                         f"task's image_size {image_size}; set lewm.patch_size=<a divisor of {image_size}> (e.g. 8).")
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

    agent, figures, close = train_lewm_on_task(task, ctx.work_dir, model_cfg, train_cfg, p.plan,
                                               policy_cfg=p.latent_policy, tb_dir=ctx.tb_dir, device=ctx.device,
                                               progress=ctx.progress)
    extra = figures.pop("extra")
    extra = {"param_breakdown": extra.pop("param_breakdown"), "preset": b.preset, **extra}
    return Trained(actor=agent, extra=extra, close=close, **figures)


@register("lewm", budget=Budget)
def lewm(task: Task, ctx: CellContext, budget: dict[str, Any]) -> Trained:
    """LeWM: offline, reward-free world model + latent CEM-MPC toward the goal image."""
    return train_lewm(task, ctx, budget, sigreg=True)


@register("lewm-nosigreg", budget=Budget)
def lewm_nosigreg(task: Task, ctx: CellContext, budget: dict[str, Any]) -> Trained:
    """The collapse ablation: LeWM with SIGReg's weight lambda = 0 (with the preset's latent policy, if any)."""
    return train_lewm(task, ctx, budget, sigreg=False)
