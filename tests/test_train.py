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
    train(tiny_data, tmp_path / "full", p.model, cfg, p.plan, progress=False)
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


def test_a_given_split_is_used_exactly_and_the_configs_are_hparams(tiny_data, tmp_path):
    from lewm_agent.checkpoint import CheckpointError
    from lewm_agent.data import load_episodes
    from lewm_agent.hparams import read_hparams

    p = preset("tiny")
    cfg = replace(p.train, steps=4, ckpt_every=2, log_every=2, val_every=2)
    train_ids, val_ids = [0, 2, 3, 5, 6, 7, 8, 9, 10, 11], [1, 4, 13]  # not split_episodes' split; 12, 14, 15 unused
    train(tiny_data, tmp_path / "run", p.model, cfg, p.plan, progress=False, stop_at=2, split=(train_ids, val_ids))
    train(tiny_data, tmp_path / "run", p.model, cfg, p.plan, progress=False, resume=True, split=(train_ids, val_ids))
    config, _ = read_checkpoint(tmp_path / "run" / "agent")
    assert config["metadata"]["val_episodes"] == val_ids and config["metadata"]["train_episodes"] == len(train_ids)
    episodes = load_episodes(tiny_data)
    clips = json.loads((tmp_path / "run" / "train_config.json").read_text())["train_clips"]
    horizon = (p.model.num_frames - 1) * p.model.frameskip  # raw steps a clip spans
    assert clips == sum(max(0, int(episodes.ep_len[i]) - horizon) for i in train_ids)  # only the given episodes
    with pytest.raises(CheckpointError, match="other episodes"):  # resuming with another split is refused
        train(tiny_data, tmp_path / "run", p.model, cfg, p.plan, progress=False, resume=True, split=([0, 1], [2]))
    for bad, match in ((([0, 1], [1, 2]), "in both parts"), (([0], [99]), "outside"), (([0.5], [1]), "lists of ints"),
                       (([], [1]), "at least one")):
        with pytest.raises(ValueError, match=match):
            train(tiny_data, tmp_path / "bad", p.model, cfg, p.plan, progress=False, split=bad)
    hp = read_hparams(tmp_path / "run" / "tb")  # the training log holds its configs as hparams
    assert hp["model.latent_dim"] == p.model.latent_dim and hp["train.steps"] == 4 and hp["plan.samples"] == 32
    assert hp["val_episodes"] == 3 and hp["train_episodes"] == len(train_ids)


def _clips(tiny_data):
    from lewm_agent.data import ActionNormalizer, ClipDataset, load_episodes

    episodes = load_episodes(tiny_data)
    normalizer = ActionNormalizer.from_actions(episodes.action[episodes.rows(np.arange(episodes.num_episodes))])
    return ClipDataset(episodes, np.arange(episodes.num_episodes), 3, 2, normalizer)


def test_prefetched_batches_equal_the_batches_built_in_the_loop(tiny_data):
    from lewm_agent.train import BatchStream

    clips = _clips(tiny_data)
    with BatchStream(clips, 7, 1, 5, 3, 9, "cpu", prefetch=False) as plain:
        expected = list(plain)
    with BatchStream(clips, 7, 1, 5, 3, 9, "cpu", prefetch=True) as stream:
        got = list(stream)
    assert len(got) == len(expected) == 6
    for (seed_a, a), (seed_b, b) in zip(got, expected):
        assert seed_a == seed_b and a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k])
    with BatchStream(clips, 7, 1, 5, 0, 1000, "cpu") as stream:  # stopping early ends the thread
        next(iter(stream))
    assert stream._thread is None


def test_training_with_and_without_prefetching_gives_the_same_weights(tiny_data, tmp_path):
    p = preset("tiny")
    cfg = replace(p.train, steps=6, ckpt_every=3, log_every=3, val_every=6)
    train(tiny_data, tmp_path / "a", p.model, cfg, p.plan, progress=False)
    train(tiny_data, tmp_path / "b", p.model, replace(cfg, prefetch=False), p.plan, progress=False, stop_at=3)
    train(tiny_data, tmp_path / "b", p.model, replace(cfg, prefetch=False), p.plan, progress=False, resume=True)
    _, w_a = read_checkpoint(tmp_path / "a" / "agent")
    _, w_b = read_checkpoint(tmp_path / "b" / "agent")
    for k in w_a:
        torch.testing.assert_close(w_a[k], w_b[k], rtol=1e-5, atol=1e-6)


def test_the_same_training_seed_gives_byte_identical_weights_and_another_seed_others(tiny_data, tmp_path):
    p = preset("tiny")
    cfg = replace(p.train, steps=4, ckpt_every=4, log_every=2, val_every=4)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        train(tiny_data, tmp_path / name, p.model, replace(cfg, seed=seed), p.plan, progress=False)
    weights = {name: (tmp_path / name / "agent" / "model.safetensors").read_bytes() for name in "abc"}
    assert weights["a"] == weights["b"], "same seed, same data: the same bytes"
    assert weights["a"] != weights["c"], "the seed changes the initial weights and the batches"


@pytest.mark.parametrize("name,side", [("cpu", 64), ("cpu", 48), ("tiny", 32), ("tiny", 40)])
def test_patch_embedding_is_the_convolution_of_the_normalised_image(name, side):
    from lewm_agent.model.encoder import ViTEncoder

    torch.manual_seed(0)
    enc = ViTEncoder(preset(name).model)
    pixels = torch.randint(0, 256, (3, side, side, 3), dtype=torch.uint8)
    fast = enc.embed_patches(pixels)
    grads = torch.autograd.grad(fast.square().sum(), [enc.patch_embed.weight, enc.patch_embed.bias])
    slow = enc.patch_embed(enc.preprocess(pixels)).flatten(2).transpose(1, 2)
    expected = torch.autograd.grad(slow.square().sum(), [enc.patch_embed.weight, enc.patch_embed.bias])
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=2e-5)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("tokens", [5, 17, 40])
def test_short_sequence_attention_equals_the_fused_kernel(tokens):
    import torch.nn.functional as F

    from lewm_agent.model.encoder import Attention

    torch.manual_seed(0)
    attn = Attention(32, 4, 8)
    x = torch.randn(6, tokens, 32)
    q, k, v = attn.qkv(x).view(6, tokens, 3, 4, 8).permute(2, 0, 3, 1, 4)
    expected = attn.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(6, tokens, 32))
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-6)


def test_cpu_bf16_setting():
    from lewm_agent.train import cpu_bf16_enabled

    cpu, paper = preset("cpu"), preset("paper")
    assert cpu.train.cpu_bf16 == "auto" and not cpu_bf16_enabled(cpu.train, cpu.model)  # small model: fp32
    assert cpu_bf16_enabled(replace(cpu.train, cpu_bf16="on"), cpu.model)
    assert cpu_bf16_enabled(replace(cpu.train, cpu_bf16=True), cpu.model)
    assert not cpu_bf16_enabled(replace(paper.train, cpu_bf16="off"), paper.model)
    assert not cpu_bf16_enabled(replace(paper.train, cpu_bf16=False), paper.model)
    with pytest.raises(ValueError, match="cpu_bf16"):
        cpu_bf16_enabled(replace(cpu.train, cpu_bf16="sometimes"), cpu.model)


def test_time_limit_checkpoints_and_stops_then_resume_finishes(tiny_data, tmp_path):
    p = preset("tiny")
    cfg = replace(p.train, steps=12, ckpt_every=100)
    part = train(tiny_data, tmp_path / "run", p.model, cfg, p.plan, progress=False, time_limit_s=1e-9)
    assert 1 <= part.steps < 12 and not (tmp_path / "run" / "agent").exists()
    state = torch.load(tmp_path / "run" / "checkpoint" / TRAIN_STATE, weights_only=True)
    assert state["step"] == part.steps  # checkpointed where it stopped, though ckpt_every is far away
    done = train(tiny_data, tmp_path / "run", p.model, cfg, p.plan, resume=True, progress=False)
    assert done.steps == 12 and (tmp_path / "run" / "agent" / "config.json").exists()
    with pytest.raises(ValueError, match="time_limit_s"):
        train(tiny_data, tmp_path / "x", p.model, cfg, p.plan, progress=False, time_limit_s=0)


def test_every_task_preset_names_a_registered_task_and_validates():
    import gymnasium as gym

    import lewm_agent.envs  # noqa: F401  (registers the tasks)
    from lewm_agent.config import PRESETS

    tasks = [name for name in PRESETS if preset(name).env_id is not None]
    assert set(tasks) >= {"tworoom", "reacher", "pusht", "cube", "metaworld-push"}
    for name in tasks:
        p = preset(name)
        assert p.env_id in gym.registry and p.policy in ("expert", "random"), name
        p.model.validate(), p.plan.validate()
        assert p.model.image_size % p.model.patch_size == 0 and p.episodes >= 100


def test_rollout_loss_training_logs_both_terms_and_keeps_the_one_step_validation(tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    p = preset("tiny")
    model = replace(p.model, rollout_loss_steps=2)
    result = train(tiny_data, tmp_path, model, replace(p.train, steps=6, log_every=3, val_every=3), p.plan,
                   progress=False)
    assert result.final["val/rollout_loss"] > 0 and result.final["val/pred_loss"] > 0
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert {"train/one_step_loss", "train/rollout_loss", "val/rollout_loss"} <= set(acc.Tags()["scalars"])
    config, _ = read_checkpoint(tmp_path / "agent")
    assert config["model"]["rollout_loss_steps"] == 2
