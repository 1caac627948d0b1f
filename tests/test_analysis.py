"""Linear probes and latent geometry: correct on synthetic data, runnable on a trained agent."""

import dataclasses

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


class _StateCode:
    """A stand-in agent whose latent is an isometric linear code of the state: ``encode`` gets row
    indices (the episodes' pixels replaced by them) and records every row it was asked for."""

    def __init__(self, state, latent_dim=8):
        q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(latent_dim, state.shape[1])))
        self.state, self.code, self.rows = state, q.T, []  # code: (S, D) with orthonormal rows

    def encode(self, rows):
        import torch

        self.rows.extend(np.asarray(rows).tolist())
        return torch.as_tensor(self.state[rows] @ self.code)


def test_probe_agent_reads_only_held_out_episodes_and_recovers_a_linear_code(tiny_data):
    episodes = load_episodes(tiny_data)
    by_row = dataclasses.replace(episodes, pixels=np.arange(episodes.num_frames))
    held_out = np.array([3, 7, 11])
    agent = _StateCode(episodes.state)
    out = probe_agent(agent, by_row, held_out, num_frames=60)
    assert set(agent.rows) <= set(episodes.rows(held_out).tolist())  # no frame of another episode
    assert len(out["probe_r_per_dim"]) == 2 and out["probe_r"] > 0.999
    assert np.all(np.array(out["probe_rmse_per_dim"]) < 1e-6 * np.abs(episodes.state).max())  # exact code
    # squared latent distance = squared state distance: the rankings agree exactly
    assert out["distance_rank_corr"] > 0.999 and out["local_rank_corr"] > 0.999
    noise = _StateCode(np.random.default_rng(2).normal(size=episodes.state.shape))  # a code of something else
    out = probe_agent(noise, by_row, held_out, num_frames=60)
    assert out["probe_r"] < 0.5 and out["distance_rank_corr"] < 0.5
    # no code of the state: the error is about the state's own spread, in its units
    spread = episodes.state[episodes.rows(held_out)].std(0)
    assert np.all(np.array(out["probe_rmse_per_dim"]) > 0.5 * spread)


def test_probe_agent_runs_on_a_trained_agent(tiny_run):
    agent = LeWMAgent.load(tiny_run / "agent", device="cpu")
    episodes = load_episodes(agent.metadata["data_path"])
    out = probe_agent(agent, episodes, np.asarray(agent.metadata["val_episodes"]), num_frames=60)
    values = [out["probe_r"], out["distance_rank_corr"], out["local_rank_corr"], *out["probe_r_per_dim"]]
    assert len(out["probe_r_per_dim"]) == 2 and np.isfinite(values).all()
