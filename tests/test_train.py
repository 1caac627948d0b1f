"""Training: resume after an interruption continues exactly; logs and checkpoints are written."""

import json

import numpy as np
import pytest
import torch

from lewm_agent.checkpoint import read_checkpoint
from lewm_agent.config import preset, replace
from lewm_agent.train import TRAIN_STATE, train


def test_interrupted_training_resumes_at_the_same_step_with_the_same_optimiser(tiny_data, tmp_path):
    p = preset("tiny")
    cfg = replace(p.train, steps=12, ckpt_every=4, log_every=2, val_every=6)
    full = train(tiny_data, tmp_path / "full", p.model, cfg, p.plan, progress=False)
    # "killed" after step 6: the last checkpoint is at step 6 (stop_at checkpoints, like ckpt_every)
    part = train(tiny_data, tmp_path / "part", p.model, cfg, p.plan, progress=False, stop_at=6)
    assert part.steps == 6 and not (tmp_path / "part" / "agent").exists()
    state = torch.load(tmp_path / "part" / "checkpoint" / TRAIN_STATE, weights_only=True)
    assert state["step"] == 6 and state["scheduler"]["last_epoch"] == 6
    exp_avg = [s["exp_avg"].clone() for s in state["optimizer"]["state"].values()]
    resumed = train(tiny_data, tmp_path / "part", p.model, cfg, p.plan, resume=True, progress=False, stop_at=7)
    assert resumed.steps == 7  # continued from 6, not from 0
    state7 = torch.load(tmp_path / "part" / "checkpoint" / TRAIN_STATE, weights_only=True)
    assert any(not torch.equal(a, s["exp_avg"]) for a, s in zip(exp_avg, state7["optimizer"]["state"].values()))
    train(tiny_data, tmp_path / "part", p.model, cfg, p.plan, resume=True, progress=False)
    _, w_full = read_checkpoint(tmp_path / "full" / "agent")
    _, w_part = read_checkpoint(tmp_path / "part" / "agent")
    for k in w_full:  # identical to the uninterrupted run: same step, optimiser state and batches
        torch.testing.assert_close(w_part[k], w_full[k], rtol=1e-5, atol=1e-6)


def test_resume_without_a_checkpoint_is_a_clear_error(tiny_data, tmp_path):
    p = preset("tiny")
    with pytest.raises(ValueError, match="no checkpoint"):
        train(tiny_data, tmp_path / "x", p.model, p.train, p.plan, resume=True, progress=False)


def test_outputs_tensorboard_and_agent_metadata(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tiny_run / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("train/loss", "train/pred_loss", "train/sigreg_loss", "train/lr", "train/emb_std",
                "train/eff_rank", "val/pred_loss"):
        assert tag in tags, tag
    config, _ = read_checkpoint(tiny_run / "agent")
    assert config["metadata"]["env_id"] == "lewm/TwoRoom-v0"
    assert config["metadata"]["val_episodes"]  # the held-out episodes the protocol draws from
    assert config["agent"]["obs_shape"] == [32, 32, 3]
    assert json.loads((tiny_run / "train_config.json").read_text())["train_clips"] > 0
    lr = [e.value for e in acc.Scalars("train/lr")]
    assert lr[0] > 0 and np.argmax(lr) < len(lr) - 1  # warm-up then decay
