"""Physical understanding of the latents: linear probes and latent geometry.

LeWM reports that a linear probe recovers the physical state from the latents (TwoRoom agent
position r = 0.996). ``probe_agent`` measures that on held-out frames, plus how well latent
distance ranks physical distance (what the planner's cost relies on).
"""

from __future__ import annotations

import numpy as np

__all__ = ["linear_probe", "rank_correlation", "probe_agent"]


def linear_probe(z_train: np.ndarray, s_train: np.ndarray, z_test: np.ndarray, s_test: np.ndarray) -> np.ndarray:
    """Least-squares affine map latents (N, D) -> states (N, S); Pearson r per state dim on the test set, (S,)."""
    X = np.c_[z_train, np.ones(len(z_train))]
    w, *_ = np.linalg.lstsq(X, s_train, rcond=None)
    pred = np.c_[z_test, np.ones(len(z_test))] @ w
    return np.array([np.corrcoef(pred[:, k], s_test[:, k])[0, 1] for k in range(s_test.shape[1])])


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays (no ties correction; continuous data)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def probe_agent(agent, episodes, episode_ids: np.ndarray, num_frames: int = 2000, seed: int = 0) -> dict[str, float]:
    """Probe a LeWMAgent's encoder on frames of the given episodes (their ``state`` column).

    Returns ``probe_r`` (mean Pearson r over state dims, fitted on 2/3 of the frames, tested on
    the rest), ``probe_r_per_dim`` and ``distance_rank_corr`` (Spearman between squared latent
    distance and physical-state distance over random frame pairs).
    """
    if episodes.state is None:
        raise ValueError("Probing needs a `state` column in the episode file; recollect with `lewm collect`.")
    rows = episodes.rows(episode_ids)
    rng = np.random.default_rng(seed)
    rows = rng.choice(rows, size=min(num_frames, len(rows)), replace=False)
    z = np.concatenate([agent.encode(episodes.pixels[chunk]).cpu().numpy() for chunk in np.array_split(rows, max(1, len(rows) // 256))])
    s = episodes.state[rows]
    split = 2 * len(rows) // 3
    r = linear_probe(z[:split], s[:split], z[split:], s[split:])
    i, j = rng.integers(0, len(rows), 4000), rng.integers(0, len(rows), 4000)
    dz = ((z[i] - z[j]) ** 2).sum(1)
    ds = np.linalg.norm(s[i] - s[j], axis=1)
    return {"probe_r": float(r.mean()), "probe_r_per_dim": r.tolist(), "distance_rank_corr": rank_correlation(dz, ds)}
