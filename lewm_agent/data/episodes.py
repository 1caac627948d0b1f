"""Read an episode file: :class:`Episodes` (the columns as arrays) and :func:`load_episodes`, with the
pixels in memory or left on disk (:class:`~lewm_agent.data.pixels.DiskPixels`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lewm_agent.data.errors import fail
from lewm_agent.data.h5 import open_file, read, read_attrs
from lewm_agent.data.pixels import DEFAULT_CACHE_BYTES, DiskPixels
from lewm_agent.data.validate import validate_episode_file

__all__ = ["Episodes", "load_episodes"]


@dataclass
class Episodes:
    """All episodes of a file: the small columns in memory, the pixels in memory or on disk.

    Attributes:
        pixels: uint8 (N, H, W, 3): an array, or a :class:`~lewm_agent.data.pixels.DiskPixels` that reads
            the rows it is indexed with from the file (``load_episodes(..., stream=True)``).
        action: float32 (N, A); NaN on each episode's last row (:func:`load_episodes` sets it, whatever
            the file holds there: no next frame follows that action).
        state: float32 (N, S), or None.
        ep_len: int64 (E,) frames per episode.
        ep_offset: int64 (E,) first row of each episode.
        attrs: the file attributes.
        path: where they were loaded from (None if built in memory).
    """

    pixels: np.ndarray | DiskPixels
    action: np.ndarray
    state: np.ndarray | None
    ep_len: np.ndarray
    ep_offset: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def num_episodes(self) -> int:
        return int(self.ep_len.size)

    @property
    def num_frames(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.action.shape[1])

    def rows(self, episode_ids: np.ndarray) -> np.ndarray:
        """int64 row indices (into pixels/action/state) of the given episodes, in order."""
        ids = np.asarray(episode_ids, dtype=np.int64)
        return np.concatenate([np.arange(self.ep_offset[i], self.ep_offset[i] + self.ep_len[i]) for i in ids])

    def transition_rows(self, episode_ids: np.ndarray) -> np.ndarray:
        """int64 rows of the given episodes whose action leads to a next frame: all but each one's last."""
        ids = np.asarray(episode_ids, dtype=np.int64)
        if ids.size == 0:
            return np.zeros(0, np.int64)
        return np.concatenate([np.arange(self.ep_offset[i], self.ep_offset[i] + self.ep_len[i] - 1) for i in ids])

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """Episode ``i`` as views: ``pixels`` (T, H, W, 3), ``action`` (T, A), ``state`` (T, S) if any."""
        if not -self.num_episodes <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range; there are {self.num_episodes} episodes")
        i %= self.num_episodes
        rows = slice(int(self.ep_offset[i]), int(self.ep_offset[i] + self.ep_len[i]))
        out = {"pixels": self.pixels[rows], "action": self.action[rows]}
        if self.state is not None:
            out["state"] = self.state[rows]
        return out


def load_episodes(path: str | os.PathLike, validate: bool = True, stream: bool = False,
                  cache_bytes: int = DEFAULT_CACHE_BYTES) -> Episodes:
    """Read an episode file: every column but the pixels into memory; the pixels too unless ``stream``.

    Each episode's last action is set to NaN (it leads to no next frame; stable-worldmodel 0.1.1
    leaves a finite value there). Columns other than ``pixels``, ``action``, ``state``, ``ep_len``
    and ``ep_offset`` are not read.

    Args:
        path: the episode file.
        validate: run :func:`validate_episode_file` first.
        stream: leave the pixels on disk: ``Episodes.pixels`` is a :class:`DiskPixels` that reads rows
            when indexed, keeping at most ``cache_bytes`` of decoded chunks per process. Without it the
            pixels take N * H * W * 3 bytes of memory (100k frames: 1.2 GB at 64 px, 15 GB at 224 px).
    """
    path = Path(path)
    if validate:
        validate_episode_file(path)
    try:
        with open_file(path) as f:
            ep_len = read(path, f["ep_len"]).astype(np.int64, copy=False)
            ep_offset = read(path, f["ep_offset"]).astype(np.int64, copy=False)
            action = read(path, f["action"]).astype(np.float32, copy=False)
            action[ep_offset + ep_len - 1] = np.nan
            return Episodes(
                pixels=DiskPixels(path, cache_bytes) if stream else read(path, f["pixels"]),
                action=action,
                state=read(path, f["state"]).astype(np.float32, copy=False) if "state" in f else None,
                ep_len=ep_len,
                ep_offset=ep_offset,
                attrs=read_attrs(f),
                path=path,
            )
    except (OSError, KeyError) as err:
        raise fail(path, f"cannot load: {err}", "run validate_episode_file(path) to see what is wrong") from err

