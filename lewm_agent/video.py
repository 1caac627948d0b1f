"""Rollout videos: observation | goal side by side, upscaled, written as mp4 with imageio."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["side_by_side", "write_video"]


def side_by_side(obs: np.ndarray, goal: np.ndarray, scale: int = 4,
                 border: tuple[int, int, int] | None = None) -> np.ndarray:
    """uint8 (H, W, 3) observation and goal -> uint8 (scale*H, 2*scale*W + gap, 3) frame.

    ``border`` paints a 2-pixel frame (e.g. green once the episode has succeeded).
    """
    gap = np.full((obs.shape[0], 2, 3), 255, np.uint8)
    frame = np.concatenate([obs, gap, goal], axis=1)
    frame = frame.repeat(scale, axis=0).repeat(scale, axis=1)  # nearest-neighbour upscaling
    if border is not None:
        frame = frame.copy()
        frame[:3], frame[-3:], frame[:, :3], frame[:, -3:] = border, border, border, border
    # mp4 encoders want even sides (macro blocks of 16 are best)
    h, w = frame.shape[:2]
    pad_h, pad_w = (-h) % 16, (-w) % 16
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=255)
    return frame


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: int = 10) -> Path:
    """Write uint8 (H, W, 3) frames to an mp4 (H.264 through imageio-ffmpeg); the file appears atomically."""
    import imageio.v2 as imageio

    if len(frames) == 0:
        raise ValueError(f"write_video({path}): no frames to write.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=16) as writer:
        for frame in frames:
            writer.append_data(np.asarray(frame, dtype=np.uint8))
    os.replace(tmp, path)
    return path
