"""Shared fixtures: a tiny TwoRoom episode file and a tiny trained agent, made once per session."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
# checkpoints the tests' runs write are trusted in a store of this session, not in the user's ~/.cache
os.environ.setdefault("LEWM_TRUSTED_CHECKPOINTS", __import__("tempfile").mkdtemp(prefix="lewm-trusted-"))

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """16 expert TwoRoom episodes at 32x32 (~1,000 frames)."""
    from lewm_agent.data import collect

    path = tmp_path_factory.mktemp("data") / "tworoom.h5"
    collect("lewm/TwoRoom-v0", path, num_episodes=16, policy="expert", seed=0,
            env_kwargs={"image_size": 32}, progress=False)
    return path


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory):
    """A `tiny`-preset LeWM trained 20 steps on ``tiny_data``; returns the run directory."""
    from lewm_agent.config import preset, replace
    from lewm_agent.train import train

    p = preset("tiny")
    out = tmp_path_factory.mktemp("run")
    train(tiny_data, out, p.model, replace(p.train, steps=20), p.plan, progress=False)
    return out
