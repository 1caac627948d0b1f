"""SIGReg is what prevents collapse: the same short training with lambda = 0 collapses, with 0.09 it does not.

No stop-gradient, no EMA: without SIGReg the prediction loss is minimised by mapping every frame
to (nearly) the same latent. This test fails if SIGReg is removed from LeWM.loss.
"""

import numpy as np
import pytest
import torch

from lewm_agent.agent import LeWMAgent
from lewm_agent.config import preset, replace
from lewm_agent.data import load_episodes
from lewm_agent.metrics import effective_rank, embedding_std, participation_ratio
from lewm_agent.train import train

STEPS = 300


def _embeddings(run_dir, frames):
    agent = LeWMAgent.load(run_dir / "agent", device="cpu")  # eval mode: BatchNorm running statistics
    return agent.encode(frames)


@pytest.fixture(scope="module")
def frames(tiny_data):
    pixels = load_episodes(tiny_data).pixels
    return pixels[np.random.default_rng(0).choice(len(pixels), 256, replace=False)]


@pytest.mark.parametrize("lam", [0.0, 0.09])
def test_sigreg_prevents_collapse(lam, tiny_data, frames, tmp_path):
    p = preset("tiny")
    torch.manual_seed(0)
    train(tiny_data, tmp_path, replace(p.model, sigreg_lambda=lam),
          replace(p.train, steps=STEPS, batch_size=32, lr=2e-3, warmup_steps=10, val_every=STEPS, ckpt_every=STEPS),
          p.plan, progress=False)
    z = _embeddings(tmp_path, frames)
    std, dim, rank = embedding_std(z), participation_ratio(z), effective_rank(z)
    # TwoRoom frames have two degrees of freedom (the dot's position), so even a collapsing encoder
    # keeps ~2 directions; measured (300 steps, 32 px, glow 0.2): lambda 0 -> std 0.18, participation
    # ratio 1.9, entropy rank 4.5; lambda 0.09 -> std 0.84, participation ratio 4.8, entropy rank 7.8 (of 16).
    if lam == 0.0:
        assert std < 0.3 and dim < 2.5 and rank < 5.5, (std, dim, rank)  # collapsed: std and rank far down
    else:
        assert std > 0.6 and dim > 3.5 and rank > 6.5, (std, dim, rank)  # near-unit std, high rank
