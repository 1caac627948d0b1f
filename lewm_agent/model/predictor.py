"""Action-conditioned causal predictor with AdaLN-zero, and the action-block encoder.

    latents z (B, T, D), action blocks a (B, T, frameskip*A)
      -> tokens: Linear(D -> W) + learned position over the history window   (B, T, W)
      -> action encoder: Linear -> SiLU -> Linear                               (B, T, W)
      -> depth x AdaLN-zero blocks, causal over time; the action embedding of
         step t modulates the token of step t                                  (B, T, W)
      -> final LayerNorm -> projector (Linear -> BatchNorm1d -> GELU -> Linear)  (B, T, D)

Output t is the prediction of z_{t+1} from z_{<=t} and a_{<=t}.
AdaLN-zero (DiT): per block SiLU -> Linear(W -> 6W), zero-initialised, gives shift/scale/gate
for the attention and MLP branches, so every block starts as the identity.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..config import ModelConfig
from .encoder import MLP, Attention, Projector


class ActionEncoder(nn.Sequential):
    """One action block (the ``frameskip`` actions between two kept frames, concatenated) -> (W,)."""

    def __init__(self, block_dim: int, width: int):
        super().__init__(nn.Linear(block_dim, width), nn.SiLU(), nn.Linear(width, width))


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class AdaLNBlock(nn.Module):
    """Causal transformer block whose LayerNorms are modulated by the action embedding."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        W = cfg.pred_width
        self.norm1 = nn.LayerNorm(W, elementwise_affine=False)
        self.attn = Attention(W, cfg.pred_heads, cfg.pred_head_dim, dropout=cfg.pred_dropout)
        self.norm2 = nn.LayerNorm(W, elementwise_affine=False)
        self.mlp = MLP(W, cfg.pred_mlp_dim, dropout=cfg.pred_dropout)
        self.drop = nn.Dropout(cfg.pred_dropout)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(W, 6 * W))
        nn.init.zeros_(self.ada[1].weight)  # AdaLN-zero: each block starts as the identity
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # x: (B, T, W) frame tokens; c: (B, T, W) action embeddings, one per step
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)
        x = x + gate1 * self.drop(self.attn(_modulate(self.norm1(x), shift1, scale1), causal=True))
        return x + gate2 * self.drop(self.mlp(_modulate(self.norm2(x), shift2, scale2)))


class Predictor(nn.Module):
    """(z (B, T, D), action blocks (B, T, k*A)) -> predicted next latents (B, T, D), T <= history."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        W = cfg.pred_width
        self.history = cfg.history
        self.input = nn.Linear(cfg.latent_dim, W)
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.history, W) * 0.02)
        self.action_encoder = ActionEncoder(cfg.action_block_dim, W)
        self.blocks = nn.ModuleList(AdaLNBlock(cfg) for _ in range(cfg.pred_depth))
        self.norm = nn.LayerNorm(W)
        self.projector = Projector(W, cfg.projector_hidden, cfg.latent_dim)

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        B, T, _ = z.shape
        if T > self.history:
            raise ValueError(f"Predictor got {T} time steps but was built for history={self.history}.")
        x = self.input(z) + self.pos_embed[:, :T]  # (B, T, W)
        c = self.action_encoder(actions)  # (B, T, W)
        for block in self.blocks:
            x = block(x, c)
        return self.projector(self.norm(x))  # (B, T, D)
