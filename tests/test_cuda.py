"""The CUDA paths (training with bf16 autocast and pinned batches, planning, the policy) on a GPU.

Skipped where no GPU is present (CI); run on a GPU machine with ``pytest tests/test_cuda.py``.
"""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def cuda_run(tiny_data, tmp_path_factory):
    from lewm_agent.config import preset, replace
    from lewm_agent.train import train

    p = preset("tiny")
    out = tmp_path_factory.mktemp("cuda_run")
    result = train(tiny_data, out, p.model, replace(p.train, steps=30, device="cuda"), p.plan, progress=False)
    assert result.steps == 30 and np.isfinite(result.final["train/loss"])
    return out


def test_cuda_training_resumes_and_plans_in_bf16(cuda_run):
    import gymnasium as gym

    import lewm_agent.envs  # noqa: F401
    from lewm_agent import LeWMAgent

    agent = LeWMAgent.load(cuda_run / "agent", device="cuda")
    assert agent.device.type == "cuda" and agent.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    env = gym.make("lewm/TwoRoom-v0", image_size=32)
    obs, _ = env.reset(seed=0)
    batch = {k: np.stack([v] * 4) for k, v in obs.items()}
    for planner in ("cem", "mppi", "adam"):
        agent = LeWMAgent.load(cuda_run / "agent", device="cuda", planner=planner, samples=32, iterations=3)
        actions = agent.act(batch)
        assert actions.shape == (4, 2) and np.all(np.isfinite(actions))


def test_cuda_fast_rollout_matches_cpu(cuda_run):
    from lewm_agent import LeWMAgent

    cpu = LeWMAgent.load(cuda_run / "agent", device="cpu", precision="fp32")
    gpu = LeWMAgent.load(cuda_run / "agent", device="cuda", precision="fp32")
    cfg = cpu.model.cfg
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, cfg.history, cfg.latent_dim, generator=g)
    a = torch.randn(2, cfg.history - 1, cfg.action_block_dim, generator=g)
    plan = torch.randn(2, 8, 3, cfg.action_block_dim, generator=g)
    with torch.no_grad():
        ref = cpu.model.rollout_samples(z, a, plan)
        out = gpu.model.rollout_samples(z.cuda(), a.cuda(), plan.cuda()).cpu()
    torch.testing.assert_close(out, ref, atol=1e-3, rtol=1e-3)


def test_cuda_policy_fit_and_policy_mode(cuda_run, tmp_path):
    import shutil

    from lewm_agent import LeWMAgent
    from lewm_agent.policy import PolicyConfig, fit_policy

    shutil.copytree(cuda_run / "agent", tmp_path / "agent")
    fit_policy(tmp_path / "agent", PolicyConfig(steps=50, batch_size=64), device="cuda", progress=False)
    agent = LeWMAgent.load(tmp_path / "agent", device="cuda", mode="policy")
    z = agent.encode(np.zeros((2, 32, 32, 3), np.uint8))
    assert agent.propose(z, z).shape == (2, agent.plan_cfg.horizon, agent.model.cfg.action_block_dim)
