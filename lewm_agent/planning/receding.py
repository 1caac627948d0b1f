"""Receding-horizon bookkeeping shared by every MPC loop: what is left of a plan after some env steps."""

from __future__ import annotations

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
