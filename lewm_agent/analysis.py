"""Physical understanding of the latents: linear probes and latent geometry.

LeWM reports that a linear probe recovers the physical state from the latents (TwoRoom agent
position r = 0.996). ``probe_agent`` measures that on held-out frames, plus how well latent
distance ranks physical distance (what the planner's cost relies on).
"""

from __future__ import annotations

import numpy as np

__all__ = ["linear_probe", "linear_probe_predict", "rank_correlation", "probe_agent"]


def linear_probe_predict(z_train: np.ndarray, s_train: np.ndarray, z_test: np.ndarray) -> np.ndarray:
    """Least-squares affine map latents (N, D) -> states (N, S) fitted on the train set; its predictions
    of the test latents (M, D), (M, S) in the states' units."""
    X = np.c_[z_train, np.ones(len(z_train))]
    w, *_ = np.linalg.lstsq(X, s_train, rcond=None)
    return np.c_[z_test, np.ones(len(z_test))] @ w


def _pearson_per_dim(pred: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Pearson r of each column of ``pred`` (M, S) with the same column of ``s`` (M, S), (S,)."""
    return np.array([np.corrcoef(pred[:, k], s[:, k])[0, 1] for k in range(s.shape[1])])


def linear_probe(z_train: np.ndarray, s_train: np.ndarray, z_test: np.ndarray, s_test: np.ndarray) -> np.ndarray:
    """Least-squares affine map latents (N, D) -> states (N, S); Pearson r per state dim on the test set, (S,)."""
    return _pearson_per_dim(linear_probe_predict(z_train, s_train, z_test), s_test)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays (no ties correction; continuous data)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def probe_agent(agent, episodes, episode_ids: np.ndarray, num_frames: int = 2000, seed: int = 0,
                local_offset: int = 25) -> dict[str, float]:
    """Probe a LeWMAgent's encoder on frames of the given episodes (their ``state`` column).

    Returns ``probe_r`` (mean Pearson r over state dims, fitted on 2/3 of the frames, tested on
    the rest), ``probe_r_per_dim``, ``probe_rmse_per_dim`` (the probe's root-mean-square error per
    state dim on the test frames, in the state's own units: how finely the latents place what a
    success test measures, e.g. metres for a cube), ``distance_rank_corr`` (Spearman between squared latent
    distance and physical-state distance over random frame pairs) and ``local_rank_corr`` (the
    same over pairs of frames of one episode at most ``local_offset`` rows apart: the distances a
    planner meets when the goal is ``local_offset`` steps ahead).
    """
    if episodes.state is None:
        raise ValueError("Probing needs a `state` column in the episode file; recollect with `lewm collect`.")
    if local_offset < 1:
        raise ValueError(f"local_offset={local_offset} must be >= 1 rows.")
    rows = episodes.rows(episode_ids)
    rng = np.random.default_rng(seed)
    rows = rng.choice(rows, size=min(num_frames, len(rows)), replace=False)

    def encode(idx: np.ndarray) -> np.ndarray:
        return np.concatenate([agent.encode(episodes.pixels[chunk]).cpu().numpy()
                               for chunk in np.array_split(idx, max(1, len(idx) // 256))])

    z = encode(rows)
    s = episodes.state[rows]
    split = 2 * len(rows) // 3
    pred = linear_probe_predict(z[:split], s[:split], z[split:])
    r = _pearson_per_dim(pred, s[split:])
    rmse = np.sqrt(((pred - s[split:]) ** 2).mean(0))
    i, j = rng.integers(0, len(rows), 4000), rng.integers(0, len(rows), 4000)
    dz = ((z[i] - z[j]) ** 2).sum(1)
    ds = np.linalg.norm(s[i] - s[j], axis=1)
    # local pairs: (row, row + k) inside one episode, k uniform in [1, local_offset]
    ids = np.asarray(episode_ids)
    lengths = episodes.ep_len[ids]
    ok = ids[lengths > 1]
    ep = rng.choice(ok, size=1000)
    n = episodes.ep_len[ep]
    k = np.minimum(rng.integers(1, local_offset + 1, size=len(ep)), n - 1)
    a = episodes.ep_offset[ep] + (rng.random(len(ep)) * (n - k)).astype(np.int64)
    za, zb = encode(a), encode(a + k)
    local = rank_correlation(((za - zb) ** 2).sum(1), np.linalg.norm(episodes.state[a] - episodes.state[a + k], axis=1))
    return {"probe_r": float(r.mean()), "probe_r_per_dim": r.tolist(), "probe_rmse_per_dim": rmse.tolist(),
            "distance_rank_corr": rank_correlation(dz, ds),
            "local_rank_corr": local}
