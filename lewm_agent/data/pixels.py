"""An episode file's pixels read from disk on demand, with a bounded cache of decoded chunks.

:class:`DiskPixels` stands where an in-memory ``pixels`` array (N, H, W, 3) uint8 would: indexing
it with row numbers (an int, a slice or an int array of any shape) reads those rows from the file.
Memory is bounded whatever the file's size: at most ``cache_bytes`` of decoded chunks are kept
(least recently used first out), plus the rows a call returns.

- Pixels stored through a filter (gzip, Blosc, ...) are decoded a whole chunk at a time (HDF5
  cannot decode less): each chunk a call needs is decoded once per call, or not at all when the
  cache holds it. With the writer's layout (:func:`lewm_agent.data.writer.pixels_layout`) a chunk
  holds a few frames; with the reference's (100 frames of 224 px per chunk, 15 MB decoded) a clip
  of 4 frames costs a 100-frame decode, which the cache only softens when clips share chunks.
- Pixels stored without a filter (stable-worldmodel 0.1.1's one-row chunks, contiguous files)
  are read row by row, and not cached: the operating system's page cache serves them.

The file is opened lazily, once per process (a forked DataLoader worker opens its own handle),
and a pickled :class:`DiskPixels` carries only its path and settings.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lewm_agent.data.errors import fail
from lewm_agent.data.h5 import has_filters, open_file, read
from lewm_agent.data.validate import EpisodeFileInfo

__all__ = ["DiskPixels", "DEFAULT_CACHE_BYTES", "available_memory", "stream_pixels"]

DEFAULT_CACHE_BYTES = 256 << 20
"""Decoded chunks kept per process by default (256 MiB): about 1,700 frames at 224 px."""


class DiskPixels:
    """The ``pixels`` column (N, H, W, 3) uint8 of an episode file, read on demand.

    Args:
        path: the episode file.
        cache_bytes: bytes of decoded chunks kept between calls (>= 0; 0 keeps none).

    Attributes ``shape``, ``dtype``, ``ndim`` and ``len()`` are the column's. Counters, per
    process, for tests and benchmarks: ``chunks_read`` (chunks decoded), ``rows_read`` (rows read
    from the file, decoded chunks' rows included) and ``max_cached_bytes`` (the cache's peak).
    """

    def __init__(self, path: str | os.PathLike, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if cache_bytes < 0:
            raise ValueError(f"DiskPixels: cache_bytes={cache_bytes} must be >= 0 (0: no cache)")
        self.path = Path(path)
        self.cache_bytes = int(cache_bytes)
        with open_file(self.path) as f:
            ds = f["pixels"]
            self.shape: tuple[int, ...] = tuple(int(s) for s in ds.shape)
            self.chunk_rows = int(ds.chunks[0]) if ds.chunks is not None else 1
            self.filtered = has_filters(ds)
        if len(self.shape) != 4:
            raise fail(self.path, f"column 'pixels' must be (N, H, W, 3), got {self.shape}", "re-create the file")
        self.dtype = np.dtype(np.uint8)
        self.ndim = 4
        self._reset()

    def _reset(self) -> None:
        self._pid: int | None = None
        self._file: h5py.File | None = None
        self._ds: h5py.Dataset | None = None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self.chunks_read = 0
        self.rows_read = 0
        self.max_cached_bytes = 0

    # ---------------------------------------------------------------- the array interface
    def __len__(self) -> int:
        return self.shape[0]

    @property
    def frame_bytes(self) -> int:
        """Bytes of one frame: H * W * 3."""
        return self.shape[1] * self.shape[2] * self.shape[3]

    def __getitem__(self, index: Any) -> np.ndarray:
        """Rows ``index`` (int, slice, or int array of shape S) as uint8 (H, W, 3) / (n, H, W, 3) / (*S, H, W, 3)."""
        n = self.shape[0]
        if isinstance(index, (int, np.integer)):
            if not -n <= index < n:
                raise IndexError(f"row {index} out of range; the file has {n} rows")
            return self.rows(np.array([int(index) % n]))[0]
        if isinstance(index, slice):
            return self.rows(np.arange(n)[index])
        return self.rows(np.asarray(index))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The whole column in memory (what a caller that needs an ndarray gets; N * H * W * 3 bytes)."""
        out = self.rows(np.arange(self.shape[0]))
        return out if dtype is None else out.astype(dtype)

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """uint8 (*rows.shape, H, W, 3): the frames of int row numbers ``rows`` (any shape, repeats allowed)."""
        rows = np.asarray(rows)
        if rows.size and rows.dtype.kind not in "iu":
            raise IndexError(f"row numbers must be integers, got {rows.dtype}")
        flat = rows.reshape(-1).astype(np.int64, copy=False)
        if flat.size and (flat.min() < 0 or flat.max() >= self.shape[0]):
            raise IndexError(f"rows must be in [0, {self.shape[0]}), got range [{flat.min()}, {flat.max()}]")
        unique, inverse = np.unique(flat, return_inverse=True)
        frames = np.empty((unique.size,) + self.shape[1:], np.uint8)
        if unique.size:
            (self._read_chunked if self.filtered else self._read_runs)(unique, frames)
        return frames[inverse].reshape(rows.shape + self.shape[1:])

    # ---------------------------------------------------------------- reading
    def _dataset(self) -> h5py.Dataset:
        if self._pid != os.getpid():  # first use in this process (e.g. a forked DataLoader worker)
            self._reset()
            self._file = open_file(self.path, rdcc_nbytes=0)  # chunks are cached here, not twice
            self._ds = self._file["pixels"]
            self._pid = os.getpid()
        return self._ds

    def _read_runs(self, unique: np.ndarray, out: np.ndarray) -> None:
        """Unfiltered storage: one read per run of consecutive rows, straight into ``out``."""
        ds = self._dataset()
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        for first, last in zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [unique.size]])):
            a = int(unique[first])
            b = a + int(last - first)
            out[first:last] = read(self.path, ds, np.s_[a:b])
        self.rows_read += unique.size

    def _read_chunked(self, unique: np.ndarray, out: np.ndarray) -> None:
        """Filtered storage: each needed chunk decoded once (or taken from the cache), its rows copied out."""
        ds, C = self._dataset(), self.chunk_rows
        chunk_of = unique // C
        bounds = np.flatnonzero(np.diff(chunk_of)) + 1
        for first, last in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [unique.size]])):
            c = int(chunk_of[first])
            block = self._cache.get(c)
            if block is None:
                a, b = c * C, min((c + 1) * C, self.shape[0])
                block = read(self.path, ds, np.s_[a:b])  # exactly one chunk: HDF5 decodes it once
                self.chunks_read += 1
                self.rows_read += b - a
                self._remember(c, block)
            else:
                self._cache.move_to_end(c)
            out[first:last] = block[unique[first:last] - c * C]

    def _remember(self, chunk: int, block: np.ndarray) -> None:
        if block.nbytes > self.cache_bytes:
            return
        self._cache[chunk] = block
        self._cached_bytes += block.nbytes
        while self._cached_bytes > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.nbytes
        self.max_cached_bytes = max(self.max_cached_bytes, self._cached_bytes)

    # ---------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Close this process's handle and drop the cache (the next read reopens)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._reset()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "cache_bytes": self.cache_bytes, "shape": self.shape,
                "chunk_rows": self.chunk_rows, "filtered": self.filtered}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.dtype, self.ndim = np.dtype(np.uint8), 4
        self._reset()

    def __repr__(self) -> str:
        return (f"DiskPixels({str(self.path)!r}, shape={self.shape}, chunk_rows={self.chunk_rows}, "
                f"filtered={self.filtered}, cache_bytes={self.cache_bytes})")


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (``MemAvailable`` of /proc/meminfo), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def stream_pixels(choice: str, info: EpisodeFileInfo, copies: int = 1, available: int | None = None) -> bool:
    """Whether to leave a file's pixels on disk (``TrainConfig.stream``): ``on`` -> True, ``off`` -> False,
    ``auto`` -> True when ``copies`` in-memory copies of its pixels (N * H * W * 3 bytes each, one per
    training process of this machine) would take more than half of the available memory (``available``
    bytes, default :func:`available_memory`; unknown: stream)."""
    choice = str(choice).strip().lower()
    if choice not in ("auto", "on", "off"):
        raise ValueError(f"stream={choice!r}: choose 'auto', 'on' or 'off'.")
    if choice != "auto":
        return choice == "on"
    pixel_bytes = info.num_frames * info.image_size[0] * info.image_size[1] * 3
    available = available_memory() if available is None else available
    return available is None or pixel_bytes * max(1, copies) > available // 2
