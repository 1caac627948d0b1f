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
from lewm_agent.metrics import effective_rank, embedding_std
from lewm_agent.train import train

STEPS = 150


def _embeddings(run_dir, frames):
    agent = LeWMAgent.load(run_dir / "agent", device="cpu")  # eval mode: BatchNorm running statistics
    return agent._encode(frames)


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
    std, rank = embedding_std(z), effective_rank(z)
    D = p.model.latent_dim
    if lam == 0.0:
        assert std < 0.1 and rank < D / 4, (std, rank)  # collapsed
    else:
        assert std > 0.5 and rank > D / 2, (std, rank)  # near-unit std, high rank
