"""Split a file's episodes into training and held-out parts (by episode, deterministic)."""

from __future__ import annotations

import numpy as np

from lewm_agent.data.errors import DatasetError

__all__ = ["split_episodes"]


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/validation split by episode id.

    Returns sorted int64 arrays ``(train_ids, val_ids)``, disjoint, covering ``range(num_episodes)``,
    with ``round(num_episodes * val_fraction)`` validation episodes clamped to [1, num_episodes - 1].
    """
    if num_episodes < 2:
        raise DatasetError(
            f"cannot split {num_episodes} episode(s) into train and validation; collect at least 2 episodes"
        )
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = min(max(int(round(num_episodes * val_fraction)), 1), num_episodes - 1)
    perm = np.random.default_rng(seed).permutation(num_episodes)
    return np.sort(perm[n_val:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64)

