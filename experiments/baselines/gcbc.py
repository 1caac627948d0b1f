"""GCBC: goal-conditioned behaviour cloning with hindsight goals, on LeWM's own training episodes.

The policy maps (observation, goal image) to the action the data took, where the goal is a later
frame of the same episode (uniform over the rest of it, OGBench's GCBC default). It sees no reward
and the same reward-free episodes as LeWM, so it is the simplest same-data baseline: it learns
what the collection policy did on the way to where the episode went. Loss: mean squared error on
actions scaled to [-1, 1] (a Gaussian policy of fixed variance); it acts with its tanh mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from . import register
from .base import CellContext, Task, Trained, budget_from
from .hindsight import GoalMix, HindsightSampler
from .offline_loop import BatchFn, OfflineBudget, fit_offline
from .pixel_nets import GoalPixelEncoder, mlp

__all__ = ["GCBCBudget", "GoalPolicy", "GCBC", "gcbc"]


@dataclass
class GCBCBudget(OfflineBudget):
    """GCBC's budget: the shared settings plus where its goals come from."""

    lr: float = 1e-3
    """Adam learning rate (3e-4 learned the goal's direction more slowly on TwoRoom)."""
    p_current: float = 0.0
    """Probability that a sample's goal is its own frame."""
    p_future: float = 1.0
    """Probability that a sample's goal is a later frame of its episode."""
    p_random: float = 0.0
    """Probability that a sample's goal is a frame of a random training episode."""


class GoalPolicy(nn.Module):
    """(B, 6, H, W) observation+goal in [0, 1] -> (B, A) actions in [-1, 1] (tanh)."""

    def __init__(self, image_size: int, action_dim: int):
        super().__init__()
        self.encoder = GoalPixelEncoder(image_size)
        self.head = mlp(self.encoder.feature_dim, action_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(self.encoder(x)))


class GCBC(nn.Module):
    """The learner: one policy, regressed onto the data's actions toward hindsight goals."""

    def __init__(self, image_size: int, action_dim: int, budget: GCBCBudget):
        super().__init__()
        self.policy = GoalPolicy(image_size, action_dim)
        self.mix = GoalMix(budget.p_current, budget.p_future, budget.p_random)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=budget.lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"policy": self.opt}

    def update(self, sampler: HindsightSampler, batch_fn: BatchFn, rng: np.random.Generator,
               batch_size: int) -> dict[str, float]:
        b = sampler.sample(rng, batch_size, self.mix)
        x = batch_fn(b.obs, b.goal)
        target = torch.from_numpy(b.action).to(x.device)
        loss = (self.policy(x) - target).pow(2).sum(-1).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"bc_loss": loss.item()}


@register("gcbc", budget=GCBCBudget)
def gcbc(task: Task, ctx: CellContext, budget: dict[str, Any]) -> Trained:
    """GCBC: goal-conditioned behaviour cloning on LeWM's training episodes (hindsight goals)."""
    b = budget_from(GCBCBudget, budget)
    return fit_offline("gcbc", task, ctx, b, lambda size, adim, bud: GCBC(size, adim, bud))
