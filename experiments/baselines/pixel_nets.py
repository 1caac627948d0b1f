"""Small pixel networks for the offline goal-conditioned baselines (GCBC, GCIQL).

The observation and the goal image are stacked channel-wise (early fusion, as OGBench's
goal-conditioned agents do on pixels) and read by the Nature DQN conv stack (the one the
Stable-Baselines3 baselines use on each image): (B, 6, H, W) in [0, 1] -> (B, ``feature_dim``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["GoalPixelEncoder", "mlp", "to_input", "random_shift"]


class GoalPixelEncoder(nn.Module):
    """Conv encoder of an (observation, goal) pair of RGB frames.

    Input: float (B, 6, H, W) in [0, 1] (observation channels first, then the goal's). Convs
    8x8/4 -> 4x4/2 -> 3x3/1 with ``widths`` channels (Nature DQN), GELU, then Linear -> LayerNorm
    to ``feature_dim``. At 64 px: 15x15 -> 6x6 -> 4x4 maps.
    """

    def __init__(self, image_size: int, widths: tuple[int, int, int] = (32, 64, 64), feature_dim: int = 256):
        super().__init__()
        if image_size < 36:
            raise ValueError(f"GoalPixelEncoder needs frames of at least 36 px, got {image_size}.")
        c1, c2, c3 = widths
        self.convs = nn.Sequential(nn.Conv2d(6, c1, 8, stride=4), nn.GELU(), nn.Conv2d(c1, c2, 4, stride=2), nn.GELU(),
                                   nn.Conv2d(c2, c3, 3, stride=1), nn.GELU())
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, 6, image_size, image_size)).numel()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, feature_dim), nn.LayerNorm(feature_dim))
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(x))


def mlp(in_dim: int, out_dim: int, hidden: int = 256, depth: int = 2) -> nn.Sequential:
    """``depth`` hidden layers of ``hidden`` units (GELU), then a linear output."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.GELU()]
        d = hidden
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def to_input(obs: np.ndarray, goal: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (B, H, W, 3) observation and goal -> float (B, 6, H, W) in [0, 1] on ``device``."""
    x = torch.from_numpy(np.concatenate([obs, goal], axis=-1)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def random_shift(x: torch.Tensor, pad: int, rng: np.random.Generator) -> torch.Tensor:
    """DrQ's augmentation: pad by ``pad`` pixels (edge values) and crop back at a random offset per sample.

    ``x``: (B, C, H, W); offsets come from ``rng`` (so a resumed run draws the same ones).
    """
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, b))
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
