"""Validate an episode file: every column's shape and type, the episode table, and one pixel chunk.

The reference tooling's files validate as they are: any integer type for ``ep_len`` /
``ep_offset`` (stable-worldmodel 0.1.1 writes int32 ``ep_len``), extra columns ignored, and an
episode's last action may hold anything (it is never used). One pixel chunk is decoded, so a
filter this Python lacks (e.g. Blosc without ``hdf5plugin``) is named here, with the fix, and
not in the middle of training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lewm_agent.data.errors import fail
from lewm_agent.data.h5 import FORMAT_VERSION, REQUIRED_COLUMNS, open_file, read, read_attrs

__all__ = ["EpisodeFileInfo", "validate_episode_file"]


@dataclass
class EpisodeFileInfo:
    """Summary of a validated episode file."""

    path: Path
    num_episodes: int
    num_frames: int
    image_size: tuple[int, int]  # (H, W) pixels
    action_dim: int
    state_dim: int | None  # None when the file has no state column
    attrs: dict[str, Any] = field(default_factory=dict)


def validate_episode_file(path: str | os.PathLike) -> EpisodeFileInfo:
    """Check an episode file thoroughly and summarise it.

    Checks: the file opens as HDF5; columns ``pixels``, ``action``, ``ep_len``, ``ep_offset``
    exist; ``pixels`` is uint8 (N, H, W, 3); ``action`` (and ``state``) are 2-D floats with N
    rows; ``ep_len``/``ep_offset`` are 1-D integers describing contiguous episodes of >= 2
    frames covering all N rows; only an episode's last action row may be non-finite.

    Raises:
        DatasetError: naming the file, the problem and what to do.
    """
    path = Path(path)
    regen = "re-create it (e.g. `lewm collect`)"
    if not path.is_file():
        raise fail(path, "episode file not found", "check the path or collect data first (`lewm collect`)")
    try:
        f = open_file(path)
    except OSError as err:
        raise fail(path, f"not a readable HDF5 file (corrupt or truncated?): {err}", regen) from err
    with f:
        try:
            return _validate_open_file(f, path, regen)
        except (OSError, KeyError, RuntimeError) as err:  # a truncated file can open but fail on read
            raise fail(path, f"cannot read the data (corrupt or truncated?): {err}", regen) from err


def _validate_open_file(f: h5py.File, path: Path, regen: str) -> EpisodeFileInfo:
    attrs = read_attrs(f)
    version = attrs.get("format_version", FORMAT_VERSION)
    if isinstance(version, (int, np.integer)) and version > FORMAT_VERSION:
        raise fail(path, f"format_version {version} is newer than this library's {FORMAT_VERSION}",
                    "upgrade lewm-agent")
    for name in REQUIRED_COLUMNS:
        if name not in f or not isinstance(f[name], h5py.Dataset):
            raise fail(path, f"missing required column {name!r} (has {sorted(f.keys())})",
                        f"an episode file needs {list(REQUIRED_COLUMNS)}; {regen}")
    pixels, action = f["pixels"], f["action"]
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise fail(path, f"column 'pixels' must be uint8 (N, H, W, 3), got {pixels.dtype} {pixels.shape}",
                    regen)
    if pixels.shape[1] != pixels.shape[2] or pixels.shape[1] < 8:
        raise fail(path, f"frames are {pixels.shape[1]}x{pixels.shape[2]} pixels; LeWM takes square frames of "
                    "at least 8x8", f"resize or crop them to a square, or {regen}")
    n = pixels.shape[0]
    columns = [("action", action)] + ([("state", f["state"])] if "state" in f else [])
    for name, ds in columns:
        if ds.dtype.kind != "f" or ds.ndim != 2:
            raise fail(path, f"column {name!r} must be a 2-D float array (N, dim), got {ds.dtype} {ds.shape}",
                        regen)
        if ds.shape[0] != n:
            raise fail(path, f"column {name!r} has {ds.shape[0]} rows but 'pixels' has {n}",
                        f"all columns need one row per frame; {regen}")
    if n:  # one pixel chunk: a filter this Python lacks shows here, not in the middle of training
        read(path, pixels, slice(0, 1))
    ep_len, ep_offset = read(path, f["ep_len"]), read(path, f["ep_offset"])
    for name, arr in (("ep_len", ep_len), ("ep_offset", ep_offset)):
        if arr.dtype.kind not in "iu" or arr.ndim != 1:
            raise fail(path, f"column {name!r} must be a 1-D integer array, got {arr.dtype} {arr.shape}",
                        regen)
    ep_len, ep_offset = ep_len.astype(np.int64), ep_offset.astype(np.int64)  # e.g. int32 ep_len (swm 0.1.1)
    if ep_len.shape != ep_offset.shape or ep_len.size == 0:
        raise fail(path, f"'ep_len' {ep_len.shape} and 'ep_offset' {ep_offset.shape} must have the same "
                    "length >= 1 (one entry per episode)", regen)
    short = np.flatnonzero(ep_len < 2)
    if short.size:
        e = int(short[0])
        raise fail(path, f"episode {e} has length {int(ep_len[e])}; episodes need >= 2 frames", regen)
    expected_offset = np.concatenate([[0], np.cumsum(ep_len)[:-1]])
    bad = np.flatnonzero(ep_offset != expected_offset)
    if bad.size:
        e = int(bad[0])
        raise fail(path, f"ep_offset[{e}] = {int(ep_offset[e])} but episodes must be contiguous from row 0 "
                    f"(expected {int(expected_offset[e])} = sum of the previous ep_len)", regen)
    total = int(ep_len.sum())
    if total != n:
        raise fail(path, f"ep_len sums to {total} frames but the columns have N = {n} rows", regen)

    finite = np.all(np.isfinite(read(path, action)), axis=1)  # (N,)
    last_rows = ep_offset + ep_len - 1
    finite[last_rows] = True  # the last action of an episode is never used: NaN or anything
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        e = int(np.searchsorted(ep_offset, row, side="right") - 1)
        raise fail(path, f"non-finite action in episode {e} at row {row - int(ep_offset[e])} (file row "
                    f"{row}); only an episode's last action row may be NaN", regen)
    if "state" in f:  # states score success and feed probes: a non-finite one is a broken file
        bad_state = np.flatnonzero(~np.all(np.isfinite(read(path, f["state"])), axis=1))
        if bad_state.size:
            row = int(bad_state[0])
            e = int(np.searchsorted(ep_offset, row, side="right") - 1)
            raise fail(path, f"non-finite state in episode {e} at row {row - int(ep_offset[e])} (file row {row})",
                        f"every state must be finite; {regen}")
    return EpisodeFileInfo(
        path=path,
        num_episodes=int(ep_len.size),
        num_frames=int(n),
        image_size=(int(pixels.shape[1]), int(pixels.shape[2])),
        action_dim=int(action.shape[1]),
        state_dim=int(f["state"].shape[1]) if "state" in f else None,
        attrs=attrs,
    )

