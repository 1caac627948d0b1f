"""GCIQL: goal-conditioned implicit Q-learning, on LeWM's own training episodes.

Implicit Q-learning (Kostrikov et al., 2022) in the goal-conditioned form of OGBench: a sparse
reward (0 when the goal is the current frame, else -1; the bootstrap stops there), goals for the
value functions drawn 20% current / 50% future (geometric, discount 0.99) / 30% random frames,
and for the actor from the future of the same episode.

- V(s, g): expectile regression (``expectile``) toward min(Q1, Q2) of a slowly updated target
  critic at the data's action;
- Q1, Q2(s, a, g): toward r + discount * mask * V(s', g);
- the actor: DDPG+BC, maximise Q(s, pi(s, g), g) (scaled by the batch's mean |Q|) plus
  ``alpha`` times the squared error to the data's action.

V and the two Q heads share one pixel encoder (the critic's); the actor has its own. Nothing
here sees a reward the environment gives: the reward is computed from the relabelled goals.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from . import register
from .base import CellContext, Task, Trained, budget_from
from .gcbc import GoalPolicy
from .hindsight import GoalMix, HindsightSampler
from .offline_loop import BatchFn, OfflineBudget, fit_offline
from .pixel_nets import GoalPixelEncoder, mlp

__all__ = ["GCIQLBudget", "GCIQL", "gciql"]


@dataclass
class GCIQLBudget(OfflineBudget):
    """GCIQL's budget (OGBench's GCIQL defaults where they apply)."""

    discount: float = 0.99
    """Discount per env step of the goal-reaching value."""
    expectile: float = 0.9
    """Expectile of the value regression (IQL; 0.5 = the mean)."""
    tau: float = 0.005
    """Target critic update rate (Polyak)."""
    alpha: float = 1.0
    """Weight of the behaviour-cloning term in the actor's loss."""
    value_p_current: float = 0.2
    """Critic samples: probability that the goal is the sample's own frame."""
    value_p_future: float = 0.5
    """Critic samples: probability that the goal is a later frame of the episode."""
    value_p_random: float = 0.3
    """Critic samples: probability that the goal is a random training frame."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (0 < self.discount < 1 and 0 < self.expectile < 1 and 0 < self.tau <= 1 and self.alpha >= 0):
            raise ValueError("GCIQLBudget: discount and expectile must be in (0, 1), tau in (0, 1], alpha >= 0.")


class Critic(nn.Module):
    """V(s, g) and Q1, Q2(s, a, g) on one shared pixel encoder."""

    def __init__(self, image_size: int, action_dim: int):
        super().__init__()
        self.encoder = GoalPixelEncoder(image_size)
        d = self.encoder.feature_dim
        self.v = mlp(d, 1)
        self.q = nn.ModuleList([mlp(d + action_dim, 1) for _ in range(2)])

    def value(self, feat: torch.Tensor) -> torch.Tensor:
        return self.v(feat).squeeze(-1)

    def qs(self, feat: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """(2, B): both Q heads."""
        fa = torch.cat([feat, action], -1)
        return torch.stack([q(fa).squeeze(-1) for q in self.q])


class GCIQL(nn.Module):
    """The learner: critic (V, Q1, Q2), its Polyak target, and the actor (``policy``)."""

    def __init__(self, image_size: int, action_dim: int, budget: GCIQLBudget):
        super().__init__()
        self.b = budget
        self.critic = Critic(image_size, action_dim)
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        self.policy = GoalPolicy(image_size, action_dim)
        self.value_mix = GoalMix(budget.value_p_current, budget.value_p_future, budget.value_p_random,
                                 geometric=True, discount=budget.discount)
        self.actor_mix = GoalMix(0.0, 1.0, 0.0)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=budget.lr)
        self.actor_opt = torch.optim.Adam(self.policy.parameters(), lr=budget.lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic": self.critic_opt, "actor": self.actor_opt}

    def update(self, sampler: HindsightSampler, batch_fn: BatchFn, rng: np.random.Generator,
               batch_size: int) -> dict[str, float]:
        b = sampler.sample(rng, batch_size, self.value_mix)
        x, x_next = batch_fn(b.obs, b.goal), batch_fn(b.next_obs, b.goal)
        dev = x.device
        a = torch.from_numpy(b.action).to(dev)
        r, m = torch.from_numpy(b.reward).to(dev), torch.from_numpy(b.mask).to(dev)
        with torch.no_grad():
            target_q = self.target.qs(self.target.encoder(x), a).min(0).values
            next_v = self.critic.value(self.critic.encoder(x_next))
        feat = self.critic.encoder(x)
        v = self.critic.value(feat)
        diff = target_q - v
        weight = torch.where(diff > 0, self.b.expectile, 1 - self.b.expectile)
        value_loss = (weight * diff.pow(2)).mean()
        q = self.critic.qs(feat, a)
        critic_loss = (q - (r + self.b.discount * m * next_v)).pow(2).mean(-1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        (value_loss + critic_loss).backward()
        self.critic_opt.step()
        with torch.no_grad():
            for p, tp in zip(self.critic.parameters(), self.target.parameters()):
                tp.lerp_(p, self.b.tau)

        goal = sampler.goals(rng, b.obs, b.end, self.actor_mix)
        xa = batch_fn(b.obs, goal)
        pi = self.policy(xa)
        with torch.no_grad():
            feat_a = self.critic.encoder(xa)
        q_pi = self.critic.qs(feat_a, pi).min(0).values
        q_loss = -q_pi.mean() / q_pi.abs().mean().detach().clamp_min(1e-6)
        bc_loss = (pi - a).pow(2).sum(-1).mean()
        actor_loss = q_loss + self.b.alpha * bc_loss
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.critic.zero_grad(set_to_none=True)  # the actor's loss reached the Q heads; that is not their update
        return {"value_loss": value_loss.item(), "critic_loss": critic_loss.item(), "actor_q": q_pi.mean().item(),
                "bc_loss": bc_loss.item(), "v_mean": v.mean().item()}


@register("gciql", budget=GCIQLBudget)
def gciql(task: Task, ctx: CellContext, budget: dict[str, Any]) -> Trained:
    """GCIQL: goal-conditioned implicit Q-learning on LeWM's training episodes (sparse hindsight reward)."""
    b = budget_from(GCIQLBudget, budget)
    return fit_offline("gciql", task, ctx, b, lambda size, adim, bud: GCIQL(size, adim, bud))
