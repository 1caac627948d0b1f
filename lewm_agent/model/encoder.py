"""Pixel encoder: a ViT in plain torch, followed by LeWM's BatchNorm projector.

    pixels uint8 (B, H, W, 3)
      -> float, ImageNet-normalised, resized to image_size       (B, 3, S, S)
      -> patch embedding (Conv2d patch x patch, stride patch)    (B, N, C)   N = (S/patch)^2
      -> [CLS] + positions (learned, or fixed sin-cos)
         -> depth x pre-LN blocks                                 (B, N+1, C)
      -> final LayerNorm, CLS token (enc_readout="cls")           (B, C)
         or every patch token, flattened ("flatten")              (B, N*C)
      -> projector Linear -> BatchNorm1d -> GELU -> Linear        (B, D)

The projector's BatchNorm matters: LeWM reports that the ViT's final LayerNorm alone keeps
SIGReg from being optimised.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


SHORT_SEQUENCE = 32
"""Up to this many tokens, CPU attention is computed with plain matmuls (measured faster, see Attention)."""


class Attention(nn.Module):
    """Multi-head self-attention (optionally causal) on top of ``scaled_dot_product_attention``."""

    def __init__(self, width: int, heads: int, head_dim: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(width, 3 * heads * head_dim)
        self.proj = nn.Linear(heads * head_dim, width)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3x (B, h, T, d)
        drop = self.dropout if self.training else 0.0
        if x.device.type == "cpu" and T <= SHORT_SEQUENCE and not causal and drop == 0.0:
            # softmax(q k^T / sqrt(d)) v in three plain ops: on CPU, for short sequences, about half
            # the time of the fused kernel forward + backward (ViT 64/16: 17 tokens)
            y = torch.matmul(q * self.head_dim**-0.5, k.transpose(-2, -1)).softmax(dim=-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=causal)  # (B, h, T, d)
        return self.proj(y.transpose(1, 2).reshape(B, T, self.heads * self.head_dim))


class MLP(nn.Sequential):
    def __init__(self, width: int, hidden: int, dropout: float = 0.0):
        super().__init__(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN(x)), x + mlp(LN(x))."""

    def __init__(self, width: int, heads: int, mlp_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads, width // heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Projector(nn.Sequential):
    """LeWM's projector: Linear -> BatchNorm1d -> GELU -> Linear, on (B, in_dim) inputs."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(*lead, -1)


def sincos_2d(n: int, width: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding (as in MAE) for an n x n patch grid plus a CLS slot.

    Half of the ``width`` channels encode the patch row, half the column, each as sin/cos pairs at
    ``width / 4`` frequencies ``1 / 10000^(k / (width / 4))``; the CLS slot is zero. Returns (1, n*n + 1, width).
    """
    if width % 4:
        raise ValueError(f"sincos position embedding needs a width divisible by 4, got {width}.")
    q = width // 4
    freq = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)  # (q,)
    grid = torch.arange(n, dtype=torch.float64)
    rows, cols = torch.meshgrid(grid, grid, indexing="ij")
    def enc(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1) * freq  # (n*n, q)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (n*n, 2q)
    grid = torch.cat([enc(rows), enc(cols)], dim=1)  # (n*n, width)
    return torch.cat([torch.zeros(1, width, dtype=torch.float64), grid]).unsqueeze(0).float()


class ViTEncoder(nn.Module):
    """uint8 pixels (B, H, W, 3) -> latent z (B, latent_dim). Any H = W is resized to ``image_size``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.image_size, self.patch_size, C = cfg.image_size, cfg.patch_size, cfg.enc_width
        num_patches = (cfg.image_size // cfg.patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, C, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, C))
        if cfg.enc_pos_embed == "sincos":  # fixed: each patch token carries its grid position at unit scale
            self.register_buffer("pos_embed", sincos_2d(cfg.image_size // cfg.patch_size, C), persistent=False)
        else:  # learned, trunc-normal-like init of std 0.02 (HF ViT, the LeWM reference)
            self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, C) * 0.02)
        self.blocks = nn.ModuleList(Block(C, cfg.enc_heads, cfg.enc_mlp_dim) for _ in range(cfg.enc_depth))
        self.norm = nn.LayerNorm(C)
        self.readout = cfg.enc_readout
        readout_dim = C if cfg.enc_readout == "cls" else C * num_patches
        self.projector = Projector(readout_dim, cfg.projector_hidden, cfg.latent_dim)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> normalised float (B, 3, S, S)."""
        x = pixels.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    def embed_patches(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> patch tokens (B, N, C): ``patch_embed(preprocess(pixels))`` flattened.

        The same function, computed more cheaply: the stride-p convolution is a linear map of each
        p x p x 3 patch, and the ImageNet normalisation (an affine map per channel) is folded into
        its weight and bias, so the full-size image is converted from uint8 once (to a float
        patch matrix, channel last) instead of being normalised in three passes and convolved.
        """
        B, H, W, _ = pixels.shape
        S, p = self.image_size, self.patch_size
        n = S // p
        conv = self.patch_embed
        scale = 1.0 / (255.0 * self.std.view(3))  # x_norm = x * scale + shift, x in [0, 255]
        shift = -self.mean.view(3) / self.std.view(3)
        if H != S or W != S:  # resize on the [0, 255] scale (bilinear resizing commutes with the affine map)
            x = F.interpolate(pixels.permute(0, 3, 1, 2).float(), size=(S, S), mode="bilinear",
                              align_corners=False, antialias=True)  # (B, 3, S, S)
            patches = x.reshape(B, 3, n, p, n, p).permute(0, 2, 4, 3, 5, 1)  # (B, n, n, p, p, 3)
        else:
            patches = pixels.reshape(B, n, p, n, p, 3).permute(0, 1, 3, 2, 4, 5)  # (B, n, n, p, p, 3)
        patches = patches.to(torch.float32, memory_format=torch.contiguous_format).reshape(B, n * n, p * p * 3)
        weight = conv.weight.permute(0, 2, 3, 1)  # (C, p, p, 3): the patches' layout
        bias = conv.bias + (weight * shift).flatten(1).sum(1)  # (C,)
        return F.linear(patches, (weight * scale).flatten(1), bias)  # (B, N, C)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.embed_patches(pixels)  # (B, N, C)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed  # (B, N+1, C)
        for block in self.blocks:
            x = block(x)
        if self.readout == "flatten":  # every patch token in its own slot -> (B, N*C) -> (B, D)
            return self.projector(self.norm(x[:, 1:]).flatten(1))
        return self.projector(self.norm(x[:, 0]))  # CLS -> (B, D)
