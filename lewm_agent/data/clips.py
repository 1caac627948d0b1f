"""Training clips: ``num_frames`` kept frames ``frameskip`` raw steps apart, and between
consecutive kept frames one *action block* = the ``frameskip`` raw actions concatenated, z-scored
by an :class:`~lewm_agent.data.actions.ActionNormalizer`.
"""

from __future__ import annotations

import numpy as np
import torch

from lewm_agent.data.actions import ActionNormalizer
from lewm_agent.data.episodes import Episodes
from lewm_agent.data.errors import DatasetError

__all__ = ["ClipDataset"]


class ClipDataset(torch.utils.data.Dataset):
    """Training clips: ``num_frames`` kept frames ``frameskip`` raw steps apart, plus action blocks.

    A clip starts at every raw row s of an episode with ``s + (num_frames - 1) * frameskip <
    ep_len``, so an episode of length L gives ``max(0, L - (num_frames - 1) * frameskip)``
    clips. For a clip starting at s (rows relative to the episode):

    - ``pixels`` uint8 (T, H, W, 3): frames s, s + fs, ..., s + (T - 1) * fs;
    - ``action`` float32 (T - 1, fs * A): block t = normalised actions[s + t*fs : s + (t+1)*fs]
      flattened (the fs actions that lead from kept frame t to kept frame t + 1; never NaN);
    - ``state`` float32 (T, S) raw states of the kept frames (only if the file has states).

    ``get_batch(clip_indices)`` returns the same with a leading batch dimension (B, ...), built
    with numpy fancy indexing; the training loop samples clip indices and calls it directly.

    Args:
        episodes: loaded episodes; with ``load_episodes(..., stream=True)`` their pixels stay on disk and
            ``get_batch`` reads only the rows of its clips (the same values as from memory).
        episode_ids: int (E',) ids of the episodes to draw clips from (e.g. a split).
        num_frames: T >= 1 kept frames per clip (history + targets).
        frameskip: fs >= 1 raw steps between kept frames.
        normalizer: action statistics (its action_dim must match the data).
    """

    def __init__(
        self,
        episodes: Episodes,
        episode_ids: np.ndarray,
        num_frames: int,
        frameskip: int,
        normalizer: ActionNormalizer,
    ) -> None:
        where = episodes.path if episodes.path is not None else "<in-memory episodes>"
        if num_frames < 1 or frameskip < 1:
            raise DatasetError(f"{where}: num_frames and frameskip must be >= 1, got {num_frames} and {frameskip}")
        if normalizer.action_dim != episodes.action_dim:
            raise DatasetError(
                f"{where}: normalizer has action_dim {normalizer.action_dim} but the data has "
                f"{episodes.action_dim}; build it with ActionNormalizer.from_actions(episodes.action)"
            )
        ids = np.asarray(episode_ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise DatasetError(f"{where}: episode_ids must be a 1-D integer array, got {ids.dtype} {ids.shape}")
        ids = ids.astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= episodes.num_episodes):
            raise DatasetError(
                f"{where}: episode_ids must be in [0, {episodes.num_episodes}), got range [{ids.min()}, {ids.max()}]"
            )
        self.episodes = episodes
        self.episode_ids = ids
        self.num_frames = int(num_frames)
        self.frameskip = int(frameskip)
        self.normalizer = normalizer
        span = (self.num_frames - 1) * self.frameskip  # raw steps from first to last kept frame

        counts = np.maximum(episodes.ep_len[ids] - span, 0)  # clips per episode
        if counts.sum() == 0:
            longest = int(episodes.ep_len[ids].max()) if ids.size else 0
            raise DatasetError(
                f"{where}: no clip fits: a clip of num_frames={num_frames} with frameskip={frameskip} spans "
                f"{span + 1} frames but the longest selected episode has {longest}; lower num_frames or "
                "frameskip, or collect longer episodes"
            )
        # Global start row of every clip: ep_offset[e] + 0 .. counts[e]-1 for each episode e.
        self.clip_episode = np.repeat(ids, counts)  # (num_clips,) episode id of each clip
        first_clip = np.cumsum(counts) - counts  # clip index where each episode's clips begin
        within = np.arange(counts.sum()) - np.repeat(first_clip, counts)
        self.clip_start = episodes.ep_offset[self.clip_episode] + within  # (num_clips,) int64 rows

        self._frame_steps = np.arange(self.num_frames) * self.frameskip  # (T,)
        self._action_steps = np.arange(span)  # ((T-1)*fs,)
        # Normalise once; NaN rows (episode ends) are never inside a clip's blocks.
        self._action = np.asarray(normalizer.normalize(episodes.action), dtype=np.float32)

    @property
    def action_block_dim(self) -> int:
        """fs * A: the width of one action block."""
        return self.frameskip * self.episodes.action_dim

    def __len__(self) -> int:
        return int(self.clip_start.size)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(f"clip {i} out of range; the dataset has {len(self)} clips")
        s, T, fs = int(self.clip_start[i]), self.num_frames, self.frameskip
        end = s + (T - 1) * fs
        out = {
            "pixels": torch.from_numpy(self.episodes.pixels[s:end + 1:fs].copy()),
            "action": torch.from_numpy(self._action[s:end].reshape(T - 1, self.action_block_dim).copy()),
        }
        if self.episodes.state is not None:
            out["state"] = torch.from_numpy(self.episodes.state[s:end + 1:fs].copy())
        return out

    def get_batch(self, clip_indices: np.ndarray) -> dict[str, torch.Tensor]:
        """Clips ``clip_indices`` (int (B,)) stacked: pixels (B, T, H, W, 3) uint8,
        action (B, T-1, fs*A) float32, state (B, T, S) float32 if present."""
        idx = np.asarray(clip_indices)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise IndexError(f"clip_indices must be a 1-D integer array, got {idx.dtype} {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"clip_indices must be in [0, {len(self)}), got range [{idx.min()}, {idx.max()}]")
        starts = self.clip_start[idx]  # (B,)
        B, T = idx.size, self.num_frames
        frame_rows = starts[:, None] + self._frame_steps  # (B, T)
        action_rows = starts[:, None] + self._action_steps  # (B, (T-1)*fs)
        out = {
            "pixels": torch.from_numpy(self.episodes.pixels[frame_rows]),  # (B, T, H, W, 3)
            "action": torch.from_numpy(
                self._action[action_rows].reshape(B, T - 1, self.action_block_dim)  # (B, T-1, fs*A)
            ),
        }
        if self.episodes.state is not None:
            out["state"] = torch.from_numpy(self.episodes.state[frame_rows])  # (B, T, S)
        return out
