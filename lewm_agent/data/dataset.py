"""HDF5 episode files: write (atomically), validate, load, split, normalise, cut into clips.

File layout (the column layout of the LeWM reference tooling, so its files load too):

==============  ===============  =======  ==================================================
dataset         shape            dtype    meaning
==============  ===============  =======  ==================================================
``pixels``      (N, H, W, 3)     uint8    observation o_t (chunked, gzip level 1)
``action``      (N, A)           float32  action a_t taken from o_t; NaN on an episode's last row
``state``       (N, S)           float32  optional physical state s_t (for probes / evaluation)
``ep_len``      (E,)             int64    frames per episode (>= 2); read: any integer type
``ep_offset``   (E,)             int64    first row of each episode (contiguous, from 0)
==============  ===============  =======  ==================================================

File attributes: ``format_version`` (int, 1), and as given by the writer's ``attrs``:
``env_id``, ``image_size``, ``action_low``, ``action_high``, ``policy``, ``seed``, ... Values
that HDF5 cannot store natively (dicts, None, lists of strings) are stored as JSON strings.

Files of the LeWM reference tooling (stable-worldmodel) read as they are:

- any HDF5 filter that ``hdf5plugin`` provides (the published datasets' pixels are Blosc-lz4
  in chunks of 100 rows): the reader imports ``hdf5plugin`` once, when it first opens a file;
  :func:`validate_episode_file` reads one pixel chunk, so a filter this Python cannot decode is
  reported there, by name, with the fix;
- extra columns (``proprio``, ``step_idx``, ``ep_idx``, ``reward``, ...) are ignored; ``ep_len``
  and ``ep_offset`` may be any integer type (stable-worldmodel 0.1.1 writes int32 ``ep_len``);
- no attributes at all: the image size is the pixels' shape, training takes the action bounds
  from the data (see :func:`action_bounds`) and evaluation needs the env named (``lewm eval --env``);
- an episode's last action leads to no next frame, so it is never used (not in a clip, a
  normaliser statistic or a bound), whether it is NaN (this writer, the published datasets)
  or a finite leftover (stable-worldmodel 0.1.1): :func:`load_episodes` sets it to NaN;
- stable-worldmodel 0.1.1 does not record the reset frame: its episodes start at o_1, which
  changes nothing here (a row is still (o_t, a_t)).

Clips (:class:`ClipDataset`) are what training consumes: ``num_frames`` kept frames
``frameskip`` raw steps apart, and between consecutive kept frames one *action block* = the
``frameskip`` raw actions concatenated, z-scored by an :class:`ActionNormalizer`.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

__all__ = [
    "FORMAT_VERSION",
    "REQUIRED_COLUMNS",
    "DatasetError",
    "EpisodeFileWarning",
    "EpisodeWriter",
    "EpisodeFileInfo",
    "validate_episode_file",
    "Episodes",
    "load_episodes",
    "split_episodes",
    "action_bounds",
    "check_action_bounds",
    "warn_data_bounds",
    "ActionNormalizer",
    "ClipDataset",
]

FORMAT_VERSION = 1
REQUIRED_COLUMNS = ("pixels", "action", "ep_len", "ep_offset")
# Attributes that must agree when appending to an existing file.
_IDENTITY_ATTRS = ("env_id", "image_size", "action_low", "action_high")
_CHUNK_BYTES = 1 << 20  # target size of one pixels chunk (a few frames); see _pixels_chunk
_MAX_FRAMES_PER_CHUNK = 16


class DatasetError(ValueError):
    """An episode file or a dataset request is invalid; the message names the file and the fix."""


class EpisodeFileWarning(UserWarning):
    """An episode file lacks something that was filled in another way (e.g. action bounds from the data)."""


# --------------------------------------------------------------------------- HDF5 filters
_FILTER_NAMES = {1: "gzip", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset",
                 307: "bzip2", 32001: "Blosc", 32004: "LZ4", 32008: "Bitshuffle", 32013: "zfp",
                 32015: "Zstandard", 32017: "SZ", 32024: "SZ3", 32026: "Blosc2"}
_plugins_loaded = False
_plugin_import_error: str | None = None  # why ``import hdf5plugin`` failed, if it did


def _load_filter_plugins() -> None:
    """Import ``hdf5plugin`` once (it registers Blosc, LZ4, Zstd, ... with h5py's HDF5)."""
    global _plugins_loaded, _plugin_import_error
    if _plugins_loaded:
        return
    _plugins_loaded = True
    try:
        import hdf5plugin  # noqa: F401  (registration happens on import)
    except ImportError as err:  # a core dependency, but the error is reported only if a file needs it
        _plugin_import_error = str(err) or type(err).__name__


def _open(path: Path) -> h5py.File:
    """``h5py.File(path, "r")`` with the filter plugins loaded."""
    _load_filter_plugins()
    return h5py.File(path, "r")


def _unavailable_filters(ds: h5py.Dataset) -> list[str]:
    """``"Blosc (HDF5 filter 32001)"`` for each filter of ``ds``'s pipeline this HDF5 cannot apply."""
    plist = ds.id.get_create_plist()
    out = []
    for i in range(plist.get_nfilters()):
        code, _flags, _values, name = plist.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            label = _FILTER_NAMES.get(code) or (name.decode("utf-8", "replace") if name else "") or "unknown"
            out.append(f"{label} (HDF5 filter {code})")
    return out


def _read(path: Path, ds: h5py.Dataset, selection: Any = ()) -> np.ndarray:
    """``ds[selection]``; a DatasetError naming the filter and the fix when a filter is unavailable."""
    try:
        return ds[selection]
    except OSError as err:
        missing = _unavailable_filters(ds)
        if not missing:
            raise
        column = ds.name.lstrip("/")
        if _plugin_import_error is not None:
            fix = f"pip install hdf5plugin (importing it failed: {_plugin_import_error})"
        else:
            fix = ("hdf5plugin is imported but does not provide it: install an HDF5 plugin for it and point "
                   "HDF5_PLUGIN_PATH at its directory")
        raise _fail(path, f"column {column!r} is compressed with {', '.join(missing)}, which this Python "
                    "cannot decode", fix) from err


# --------------------------------------------------------------------------- attributes
def _encode_attr(key: str, value: Any) -> Any:
    """A value h5py can store as an attribute (JSON string for dicts, None, mixed lists)."""
    if isinstance(value, (str, bool, int, float, np.integer, np.floating, np.bool_)):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value
    ):
        return np.asarray(value)
    try:
        return json.dumps(value)
    except TypeError as err:
        raise TypeError(
            f"file attribute {key!r} = {value!r} ({type(value).__name__}) cannot be stored; "
            "use a str, number, numeric array or JSON-serialisable value"
        ) from err


def _decode_attr(value: Any) -> Any:
    """Python-friendly attribute value: bytes -> str, numpy scalars -> Python scalars."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _read_attrs(f: h5py.File) -> dict[str, Any]:
    return {k: _decode_attr(v) for k, v in f.attrs.items()}


def _attr_equal(a: Any, b: Any) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return a == b


def _pixels_chunk(height: int, width: int) -> tuple[int, int, int, int]:
    """A few frames per chunk (about 1 MiB): gzip-1 reads as fast as lzf at half the size."""
    frames = max(1, min(_MAX_FRAMES_PER_CHUNK, _CHUNK_BYTES // (height * width * 3)))
    return (frames, height, width, 3)


# --------------------------------------------------------------------------- writer
class EpisodeWriter:
    """Write episodes to an HDF5 episode file, atomically.

    Everything goes to ``<path>.tmp-<pid>`` in the same directory, which replaces ``path``
    (``os.replace``) only on a successful :meth:`close` / ``with`` exit; on an exception the
    temporary file is deleted and any previous file at ``path`` is left untouched.

    Args:
        path: the episode file to create (or extend).
        attrs: file attributes (``env_id``, ``image_size``, ``action_low``, ``action_high``,
            ``policy``, ``seed``, anything else). ``format_version`` is set by the writer.
        append: keep the episodes of an existing file at ``path`` and add new ones after them
            (the file is copied, then extended; still atomic). Identity attributes
            (``env_id``, ``image_size``, action bounds) must agree; other attributes are updated.

    Example::

        with EpisodeWriter("tworoom.h5", attrs={"env_id": "lewm/TwoRoom-v1"}) as w:
            w.add_episode(pixels, action, state)   # (T, H, W, 3) uint8, (T, A), (T, S)
    """

    def __init__(self, path: str | os.PathLike, *, attrs: dict[str, Any], append: bool = False) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        if not self.path.parent.is_dir():
            raise DatasetError(
                f"{self.path}: directory {self.path.parent} does not exist; create it first"
            )
        self._file: h5py.File | None = None
        self._num_episodes = 0
        self._num_frames = 0
        self._shapes: dict[str, tuple[int, ...] | None] | None = None  # per-row shapes once known
        try:
            if append and self.path.exists():
                info = validate_episode_file(self.path)
                for key in _IDENTITY_ATTRS:
                    if key in attrs and key in info.attrs and not _attr_equal(attrs[key], info.attrs[key]):
                        raise DatasetError(
                            f"{self.path}: cannot append, attribute {key!r} is {info.attrs[key]!r} in the file "
                            f"but {attrs[key]!r} for the new episodes; write to a new file instead"
                        )
                self._file = h5py.File(self._tmp, "w")
                self._copy_existing(self.path, info)
            else:
                self._file = h5py.File(self._tmp, "w")
            self._file.attrs["format_version"] = FORMAT_VERSION
            self.update_attrs(attrs)
        except BaseException:
            self.abort()
            raise

    # ---------------------------------------------------------------- public
    @property
    def num_episodes(self) -> int:
        """Episodes in the file so far (including appended-to ones)."""
        return self._num_episodes

    @property
    def num_frames(self) -> int:
        """Rows (frames) in the file so far."""
        return self._num_frames

    def add_episode(self, pixels: np.ndarray, action: np.ndarray, state: np.ndarray | None = None) -> None:
        """Append one episode of T >= 2 frames.

        Args:
            pixels: uint8 (T, H, W, 3), o_0 .. o_{T-1}.
            action: float (T, A), a_t taken from o_t; the last row is set to NaN (no action
                follows the final observation). Rows 0..T-2 must be finite.
            state: float (T, S) physical states, or None. Whether it is given, and H, W, A, S,
                must be the same for every episode of a file.
        """
        if self._file is None:
            raise DatasetError(f"{self.path}: add_episode() after close(); open a new EpisodeWriter")
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise DatasetError(
                f"{self.path}: episode {self._num_episodes}: pixels must be uint8 (T, H, W, 3), "
                f"got {pixels.dtype} {pixels.shape}; convert frames with np.asarray(frames, np.uint8)"
            )
        T = pixels.shape[0]
        if T < 2:
            raise DatasetError(
                f"{self.path}: episode {self._num_episodes} has {T} frame(s); an episode needs >= 2 "
                "(at least one transition)"
            )
        action = self._check_column("action", action, T)
        if not np.all(np.isfinite(action[:-1])):
            row = int(np.flatnonzero(~np.all(np.isfinite(action[:-1]), axis=1))[0])
            raise DatasetError(
                f"{self.path}: episode {self._num_episodes}: action row {row} is not finite "
                f"({action[row].tolist()}); only the last row of an episode may be NaN"
            )
        action[-1] = np.nan
        if state is not None:
            state = self._check_column("state", state, T)

        shapes = {"pixels": pixels.shape[1:], "action": action.shape[1:],
                  "state": None if state is None else state.shape[1:]}
        if self._shapes is None:
            self._create_datasets(shapes)
        elif shapes != self._shapes:
            raise DatasetError(
                f"{self.path}: episode {self._num_episodes} has per-row shapes {shapes} but the file has "
                f"{self._shapes} (state None = no state column); every episode must match"
            )

        f, n0, n1 = self._file, self._num_frames, self._num_frames + T
        columns = {"pixels": pixels, "action": action}
        if state is not None:
            columns["state"] = state
        for name, data in columns.items():
            f[name].resize(n1, axis=0)
            f[name][n0:n1] = data
        for name, value in (("ep_len", T), ("ep_offset", n0)):
            f[name].resize(self._num_episodes + 1, axis=0)
            f[name][self._num_episodes] = value
        self._num_episodes += 1
        self._num_frames = n1

    def update_attrs(self, attrs: dict[str, Any]) -> None:
        """Set (or overwrite) file attributes before closing, e.g. statistics known only at the end."""
        if self._file is None:
            raise DatasetError(f"{self.path}: update_attrs() after close(); open a new EpisodeWriter")
        for key, value in attrs.items():
            if key != "format_version":
                self._file.attrs[key] = _encode_attr(key, value)

    def close(self) -> None:
        """Finish the file and move it onto ``path`` (atomic). Raises if it holds no episode."""
        if self._file is None:
            return
        if self._num_episodes == 0:
            self.abort()
            raise DatasetError(f"{self.path}: no episodes were added; nothing was written")
        try:
            self._file.close()
            self._file = None
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Discard everything written by this writer (``path`` keeps its previous content)."""
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "EpisodeWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # ---------------------------------------------------------------- internals
    def _check_column(self, name: str, data: Any, T: int) -> np.ndarray:
        arr = np.asarray(data)
        if arr.dtype.kind not in "fiu" or arr.ndim != 2 or arr.shape[0] != T:
            raise DatasetError(
                f"{self.path}: episode {self._num_episodes}: {name} must be a float array (T={T}, dim), "
                f"got {arr.dtype} {arr.shape}"
            )
        return np.array(arr, dtype=np.float32)  # a copy: the caller's array is never modified

    def _create_datasets(self, shapes: dict[str, tuple[int, ...] | None]) -> None:
        f = self._file
        assert f is not None
        h, w, _ = shapes["pixels"]
        f.create_dataset("pixels", shape=(0, h, w, 3), maxshape=(None, h, w, 3), dtype=np.uint8,
                         chunks=_pixels_chunk(h, w), compression="gzip", compression_opts=1)
        for name in ("action", "state"):
            if shapes[name] is not None:
                (dim,) = shapes[name]
                f.create_dataset(name, shape=(0, dim), maxshape=(None, dim), dtype=np.float32,
                                 chunks=(4096, dim))
        for name in ("ep_len", "ep_offset"):
            f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(1024,))
        self._shapes = shapes

    def _copy_existing(self, src: Path, info: "EpisodeFileInfo") -> None:
        """Copy an existing file's columns into the (resizable) temporary file."""
        shapes = {"pixels": info.image_size + (3,), "action": (info.action_dim,),
                  "state": None if info.state_dim is None else (info.state_dim,)}
        self._create_datasets(shapes)
        f = self._file
        assert f is not None
        with h5py.File(src, "r") as old:
            for key, value in old.attrs.items():
                f.attrs[key] = value
            n = info.num_frames
            for name in ("pixels", "action", "state"):
                if shapes[name] is None:
                    continue
                f[name].resize(n, axis=0)
                step = 4096
                for i in range(0, n, step):  # block copy: bounded memory for big files
                    f[name][i:i + step] = old[name][i:i + step]
            for name in ("ep_len", "ep_offset"):
                f[name].resize(info.num_episodes, axis=0)
                f[name][:] = old[name][()]
        self._num_episodes, self._num_frames = info.num_episodes, info.num_frames


# --------------------------------------------------------------------------- validation
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


def _fail(path: Path, problem: str, fix: str) -> DatasetError:
    return DatasetError(f"{path}: {problem}; {fix}")


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
        raise _fail(path, "episode file not found", "check the path or collect data first (`lewm collect`)")
    try:
        f = _open(path)
    except OSError as err:
        raise _fail(path, f"not a readable HDF5 file (corrupt or truncated?): {err}", regen) from err
    with f:
        try:
            return _validate_open_file(f, path, regen)
        except (OSError, KeyError, RuntimeError) as err:  # a truncated file can open but fail on read
            raise _fail(path, f"cannot read the data (corrupt or truncated?): {err}", regen) from err


def _validate_open_file(f: h5py.File, path: Path, regen: str) -> EpisodeFileInfo:
    attrs = _read_attrs(f)
    version = attrs.get("format_version", FORMAT_VERSION)
    if isinstance(version, (int, np.integer)) and version > FORMAT_VERSION:
        raise _fail(path, f"format_version {version} is newer than this library's {FORMAT_VERSION}",
                    "upgrade lewm-agent")
    for name in REQUIRED_COLUMNS:
        if name not in f or not isinstance(f[name], h5py.Dataset):
            raise _fail(path, f"missing required column {name!r} (has {sorted(f.keys())})",
                        f"an episode file needs {list(REQUIRED_COLUMNS)}; {regen}")
    pixels, action = f["pixels"], f["action"]
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise _fail(path, f"column 'pixels' must be uint8 (N, H, W, 3), got {pixels.dtype} {pixels.shape}",
                    regen)
    n = pixels.shape[0]
    columns = [("action", action)] + ([("state", f["state"])] if "state" in f else [])
    for name, ds in columns:
        if ds.dtype.kind != "f" or ds.ndim != 2:
            raise _fail(path, f"column {name!r} must be a 2-D float array (N, dim), got {ds.dtype} {ds.shape}",
                        regen)
        if ds.shape[0] != n:
            raise _fail(path, f"column {name!r} has {ds.shape[0]} rows but 'pixels' has {n}",
                        f"all columns need one row per frame; {regen}")
    if n:  # one pixel chunk: a filter this Python lacks shows here, not in the middle of training
        _read(path, pixels, slice(0, 1))
    ep_len, ep_offset = _read(path, f["ep_len"]), _read(path, f["ep_offset"])
    for name, arr in (("ep_len", ep_len), ("ep_offset", ep_offset)):
        if arr.dtype.kind not in "iu" or arr.ndim != 1:
            raise _fail(path, f"column {name!r} must be a 1-D integer array, got {arr.dtype} {arr.shape}",
                        regen)
    ep_len, ep_offset = ep_len.astype(np.int64), ep_offset.astype(np.int64)  # e.g. int32 ep_len (swm 0.1.1)
    if ep_len.shape != ep_offset.shape or ep_len.size == 0:
        raise _fail(path, f"'ep_len' {ep_len.shape} and 'ep_offset' {ep_offset.shape} must have the same "
                    "length >= 1 (one entry per episode)", regen)
    short = np.flatnonzero(ep_len < 2)
    if short.size:
        e = int(short[0])
        raise _fail(path, f"episode {e} has length {int(ep_len[e])}; episodes need >= 2 frames", regen)
    expected_offset = np.concatenate([[0], np.cumsum(ep_len)[:-1]])
    bad = np.flatnonzero(ep_offset != expected_offset)
    if bad.size:
        e = int(bad[0])
        raise _fail(path, f"ep_offset[{e}] = {int(ep_offset[e])} but episodes must be contiguous from row 0 "
                    f"(expected {int(expected_offset[e])} = sum of the previous ep_len)", regen)
    total = int(ep_len.sum())
    if total != n:
        raise _fail(path, f"ep_len sums to {total} frames but the columns have N = {n} rows", regen)

    finite = np.all(np.isfinite(_read(path, action)), axis=1)  # (N,)
    last_rows = ep_offset + ep_len - 1
    finite[last_rows] = True  # the last action of an episode is never used: NaN or anything
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        e = int(np.searchsorted(ep_offset, row, side="right") - 1)
        raise _fail(path, f"non-finite action in episode {e} at row {row - int(ep_offset[e])} (file row "
                    f"{row}); only an episode's last action row may be NaN", regen)
    return EpisodeFileInfo(
        path=path,
        num_episodes=int(ep_len.size),
        num_frames=int(n),
        image_size=(int(pixels.shape[1]), int(pixels.shape[2])),
        action_dim=int(action.shape[1]),
        state_dim=int(f["state"].shape[1]) if "state" in f else None,
        attrs=attrs,
    )


# --------------------------------------------------------------------------- loading
@dataclass
class Episodes:
    """All episodes of a file, in memory.

    Attributes:
        pixels: uint8 (N, H, W, 3).
        action: float32 (N, A); NaN on each episode's last row (:func:`load_episodes` sets it, whatever
            the file holds there: no next frame follows that action).
        state: float32 (N, S), or None.
        ep_len: int64 (E,) frames per episode.
        ep_offset: int64 (E,) first row of each episode.
        attrs: the file attributes.
        path: where they were loaded from (None if built in memory).
    """

    pixels: np.ndarray
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


def load_episodes(path: str | os.PathLike, validate: bool = True) -> Episodes:
    """Load a whole episode file into memory (each column read in one call).

    Each episode's last action is set to NaN (it leads to no next frame; stable-worldmodel 0.1.1
    leaves a finite value there). Columns other than ``pixels``, ``action``, ``state``, ``ep_len``
    and ``ep_offset`` are not read. Memory: N * H * W * 3 bytes of pixels (e.g. 100k frames at
    64 px = 1.2 GB).
    """
    path = Path(path)
    if validate:
        validate_episode_file(path)
    try:
        with _open(path) as f:
            ep_len = _read(path, f["ep_len"]).astype(np.int64, copy=False)
            ep_offset = _read(path, f["ep_offset"]).astype(np.int64, copy=False)
            action = _read(path, f["action"]).astype(np.float32, copy=False)
            action[ep_offset + ep_len - 1] = np.nan
            return Episodes(
                pixels=_read(path, f["pixels"]),
                action=action,
                state=_read(path, f["state"]).astype(np.float32, copy=False) if "state" in f else None,
                ep_len=ep_len,
                ep_offset=ep_offset,
                attrs=_read_attrs(f),
                path=path,
            )
    except (OSError, KeyError) as err:
        raise _fail(path, f"cannot load: {err}", "run validate_episode_file(path) to see what is wrong") from err


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


# --------------------------------------------------------------------------- action bounds
def check_action_bounds(low: Any, high: Any, action_dim: int, where: str | os.PathLike = "") -> (
        tuple[np.ndarray, np.ndarray] | None):
    """Action bounds given by the user, checked: None (neither given) or float32 (A,) arrays.

    Raises:
        DatasetError: only one given, a length other than ``action_dim``, a non-finite value, or
            ``low >= high`` in some dimension; the message names the fix (``lewm train --action-low``).
    """
    if low is None and high is None:
        return None
    prefix = f"{where}: " if str(where) else ""
    flags = "--action-low LOW... --action-high HIGH..."
    if low is None or high is None:
        raise DatasetError(f"{prefix}action bounds need both low and high; give both ({flags}, "
                           f"{action_dim} numbers each)")
    low, high = np.asarray(low, np.float64).reshape(-1), np.asarray(high, np.float64).reshape(-1)
    if low.size != action_dim or high.size != action_dim:
        raise DatasetError(f"{prefix}the actions have {action_dim} dimensions but the bounds have {low.size} "
                           f"(low) and {high.size} (high) values; give {action_dim} numbers each ({flags})")
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise DatasetError(f"{prefix}action bounds must be finite, got low={low.tolist()} high={high.tolist()}; "
                           f"leave them out to use the file's or the data's ({flags})")
    if np.any(low >= high):
        d = int(np.flatnonzero(low >= high)[0])
        raise DatasetError(f"{prefix}action bound low {low[d]} >= high {high[d]} in dimension {d}; "
                           f"give low < high in every dimension ({flags})")
    return low.astype(np.float32), high.astype(np.float32)


def action_bounds(episodes: Episodes, episode_ids: np.ndarray, low: Any = None,
                  high: Any = None) -> tuple[np.ndarray, np.ndarray, str]:
    """``(low, high, source)``: the bounds an agent trained on these episodes clips its actions to.

    ``source`` says where they come from: ``"given"`` (``low`` and ``high``, checked with
    :func:`check_action_bounds`; they win over the file's), ``"file"`` (the attributes
    ``action_low`` / ``action_high``, as ``lewm collect`` records the env's action space), or
    ``"data"`` when the file records none (e.g. stable-worldmodel files have no attributes): the
    per-dimension min and max of the actions of ``episode_ids`` that lead to a next frame (an
    episode's last action is never used). Float32 (A,) arrays.
    """
    A = episodes.action_dim
    where = episodes.path if episodes.path is not None else "<in-memory episodes>"
    given = check_action_bounds(low, high, A, where)
    if given is not None:
        return given[0], given[1], "given"
    attrs = episodes.attrs
    if "action_low" in attrs and "action_high" in attrs:
        file_low = np.asarray(attrs["action_low"], np.float32).reshape(-1)
        file_high = np.asarray(attrs["action_high"], np.float32).reshape(-1)
        if file_low.size != A or file_high.size != A:
            raise _fail(where, f"attributes action_low / action_high have {file_low.size} / "
                        f"{file_high.size} values but the actions have {A} dimensions",
                        "give the bounds instead (lewm train --action-low LOW... --action-high HIGH...)")
        return file_low, file_high, "file"
    actions = episodes.action[episodes.transition_rows(episode_ids)]
    actions = actions[np.all(np.isfinite(actions), axis=1)]
    if actions.shape[0] == 0:
        raise _fail(where, "the file records no action bounds and the episodes have no usable action",
                    "give the bounds (lewm train --action-low LOW... --action-high HIGH...)")
    return actions.min(axis=0).astype(np.float32), actions.max(axis=0).astype(np.float32), "data"


def warn_data_bounds(path: Any, low: np.ndarray, high: np.ndarray) -> None:
    """Warn (:class:`EpisodeFileWarning`, one line) that the action bounds come from the data."""
    fmt = lambda a: "[" + ", ".join(f"{v:.4g}" for v in a) + "]"  # noqa: E731
    dims = " ".join(f"L{d + 1}" for d in range(len(low))), " ".join(f"H{d + 1}" for d in range(len(high)))
    warnings.warn(f"{path}: no action bounds recorded (attributes action_low/action_high); the agent clips its "
                  f"actions to the training actions' min {fmt(low)} and max {fmt(high)}; to use the env's bounds, "
                  f"pass `lewm train --action-low {dims[0]} --action-high {dims[1]}` (train(action_low=..., "
                  "action_high=...))", EpisodeFileWarning, stacklevel=3)


# --------------------------------------------------------------------------- normaliser
Array = np.ndarray | torch.Tensor


@dataclass
class ActionNormalizer:
    """Per-dimension z-scoring of actions: ``(a - mean) / std``.

    Attributes:
        mean: float32 (A,) dataset mean per action dimension.
        std: float32 (A,) dataset std per dimension (dimensions with std < 1e-6 get 1).

    ``normalize``/``denormalize`` take numpy arrays or torch tensors of shape (..., A);
    ``normalize_blocks``/``denormalize_blocks`` take action blocks (..., k * A) (k actions
    concatenated, as in a clip's ``action``) and tile the statistics over the k blocks.
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(self.std, dtype=np.float32).reshape(-1)
        if self.mean.shape != self.std.shape or self.mean.size == 0:
            raise ValueError(f"mean {self.mean.shape} and std {self.std.shape} must be non-empty and the same shape")
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.std)) and np.all(self.std > 0)):
            raise ValueError(f"mean must be finite and std finite and > 0, got mean={self.mean}, std={self.std}")

    @property
    def action_dim(self) -> int:
        return int(self.mean.size)

    @classmethod
    def from_actions(cls, actions: np.ndarray, min_std: float = 1e-6) -> "ActionNormalizer":
        """Statistics of float (N, A) actions, ignoring rows with any NaN (episode ends)."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2:
            raise ValueError(f"actions must be (N, A), got shape {actions.shape}")
        rows = actions[np.all(np.isfinite(actions), axis=1)]
        if rows.shape[0] == 0:
            raise ValueError("no finite action row to compute statistics from")
        std = rows.std(axis=0)
        return cls(mean=rows.mean(axis=0), std=np.where(std < min_std, 1.0, std))

    def _stats(self, a: Array, blocks: bool) -> tuple[Array, Array]:
        A, last = self.action_dim, a.shape[-1] if a.ndim else 0
        if blocks:
            if last == 0 or last % A:
                raise ValueError(f"action blocks must have a last dimension that is a multiple of {A}, got {tuple(a.shape)}")
            reps = last // A
        else:
            if last != A:
                hint = "; for action blocks use normalize_blocks/denormalize_blocks" if last and last % A == 0 else ""
                raise ValueError(f"actions must have shape (..., {A}), got {tuple(a.shape)}{hint}")
            reps = 1
        mean, std = np.tile(self.mean, reps), np.tile(self.std, reps)
        if isinstance(a, torch.Tensor):
            dtype = a.dtype if a.is_floating_point() else torch.float32
            return torch.as_tensor(mean, dtype=dtype, device=a.device), torch.as_tensor(std, dtype=dtype, device=a.device)
        return mean, std

    @staticmethod
    def _as_float(a: Array) -> Array:
        if isinstance(a, torch.Tensor):
            return a if a.is_floating_point() else a.float()
        a = np.asarray(a)
        return a if a.dtype.kind == "f" else a.astype(np.float32)

    def normalize(self, a: Array) -> Array:
        """(..., A) raw actions -> normalised (same type; numpy keeps its float dtype)."""
        a = self._as_float(a)
        mean, std = self._stats(a, blocks=False)
        return (a - mean) / std

    def denormalize(self, a: Array) -> Array:
        """(..., A) normalised actions -> raw actions."""
        a = self._as_float(a)
        mean, std = self._stats(a, blocks=False)
        return a * std + mean

    def normalize_blocks(self, a: Array) -> Array:
        """(..., k * A) raw action blocks -> normalised."""
        a = self._as_float(a)
        mean, std = self._stats(a, blocks=True)
        return (a - mean) / std

    def denormalize_blocks(self, a: Array) -> Array:
        """(..., k * A) normalised action blocks -> raw."""
        a = self._as_float(a)
        mean, std = self._stats(a, blocks=True)
        return a * std + mean

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-able ``{"mean": [...], "std": [...]}``."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ActionNormalizer":
        try:
            return cls(mean=np.asarray(d["mean"]), std=np.asarray(d["std"]))
        except KeyError as err:
            raise ValueError(f"an ActionNormalizer dict needs keys 'mean' and 'std', got {sorted(d)}") from err


# --------------------------------------------------------------------------- clips
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
        episodes: loaded episodes.
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
