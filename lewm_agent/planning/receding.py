"""Receding-horizon bookkeeping shared by every MPC loop (the agent, the oracle): what is left of a plan after some
env steps, and the mean of overlapping plans."""

from __future__ import annotations

from collections import deque

import numpy as np
import torch


def shift_plan(blocks: torch.Tensor, steps: int, frameskip: int) -> torch.Tensor:
    """The unexecuted tail of a plan, padded with zeros to its length: the next plan's warm start.

    Args:
        blocks: (..., H, Ad) action blocks, each ``frameskip`` env actions of A = Ad / frameskip numbers.
        steps: env steps executed from the plan (0 <= steps <= H * frameskip; need not fill whole blocks).
        frameskip: env actions per block.

    Returns:
        (..., H, Ad): the plan's env actions from ``steps`` on, then ``steps`` zero actions, regrouped into blocks.
    """
    *lead, H, Ad = blocks.shape
    if Ad % frameskip or not 0 <= steps <= H * frameskip:
        raise ValueError(f"shift_plan: {H} blocks of {Ad} numbers cannot drop {steps} steps of frameskip {frameskip}.")
    flat = blocks.reshape(*lead, H * frameskip, Ad // frameskip)
    tail = torch.cat([flat[..., steps:, :], torch.zeros_like(flat[..., :steps, :])], dim=-2)
    return tail.reshape(*lead, H, Ad)


class PlanEnsemble:
    """Temporal ensembling (ACT, Zhao et al. 2023) for one env: the plans still running, and per env step the
    mean of what they proposed for it (``PlanConfig.ensemble``)."""

    def __init__(self) -> None:
        self._plans: deque[tuple[int, np.ndarray]] = deque()
        """(decision step, env actions (L, A) from that step on) of every plan that covers a step ahead."""

    def add(self, step: int, actions: np.ndarray, k: int) -> np.ndarray:
        """Add the plan decided at env step ``step`` and return the next ``k`` env actions (k, A), float32: for
        each step, the mean of every running plan's action for it (the new plan's included)."""
        self._plans.append((step, np.asarray(actions)))
        while self._plans[0][0] + len(self._plans[0][1]) <= step:
            self._plans.popleft()
        out = np.empty((k, self._plans[-1][1].shape[1]), np.float64)
        for i, t in enumerate(range(step, step + k)):
            out[i] = np.mean([a[t - d] for d, a in self._plans if t - d < len(a)], axis=0)
        return out.astype(np.float32)
