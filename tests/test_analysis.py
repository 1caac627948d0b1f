"""Linear probes and latent geometry: correct on synthetic data, runnable on a trained agent."""

import numpy as np

from lewm_agent.agent import LeWMAgent
from lewm_agent.analysis import linear_probe, probe_agent, rank_correlation
from lewm_agent.data import load_episodes


def test_linear_probe_recovers_a_linear_code_and_not_noise():
    rng = np.random.default_rng(0)
    s = rng.uniform(size=(600, 2))
    z = s @ rng.normal(size=(2, 16)) + 0.01 * rng.normal(size=(600, 16))
    assert np.all(linear_probe(z[:400], s[:400], z[400:], s[400:]) > 0.99)
    noise = rng.normal(size=(600, 16))
    assert np.all(np.abs(linear_probe(noise[:400], s[:400], noise[400:], s[400:])) < 0.3)


def test_rank_correlation():
    a = np.arange(10.0)
    assert abs(rank_correlation(a, a**3) - 1.0) < 1e-12 and abs(rank_correlation(a, -a) + 1.0) < 1e-12


def test_probe_agent_runs_on_held_out_episodes(tiny_run):
    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    episodes = load_episodes(agent.metadata["data_path"])
    out = probe_agent(agent, episodes, np.asarray(agent.metadata["val_episodes"]), num_frames=60)
    assert len(out["probe_r_per_dim"]) == 2 and -1 <= out["probe_r"] <= 1 and -1 <= out["distance_rank_corr"] <= 1
    assert -1 <= out["local_rank_corr"] <= 1
