"""The episode file on disk: format constants, HDF5 filters and attributes, shared by the writer
(:mod:`~lewm_agent.data.writer`), validation (:mod:`~lewm_agent.data.validate`) and the readers
(:mod:`~lewm_agent.data.episodes`, :mod:`~lewm_agent.data.stream`).

File layout (the column layout of the LeWM reference tooling, so its files load too):

==============  ===============  =======  ==================================================
dataset         shape            dtype    meaning
==============  ===============  =======  ==================================================
``pixels``      (N, H, W, 3)     uint8    observation o_t (one frame per chunk, Blosc-lz4)
``action``      (N, A)           float32  action a_t taken from o_t; NaN on an episode's last row
``state``       (N, S)           float32  optional physical state s_t (for probes / evaluation)
``ep_len``      (E,)             int64    frames per episode (>= 2); read: any integer type
``ep_offset``   (E,)             int64    first row of each episode (contiguous, from 0)
==============  ===============  =======  ==================================================

File attributes: ``format_version`` (int, 1), and as given by the writer's ``attrs``:
``env_id``, ``image_size``, ``action_low``, ``action_high``, ``policy``, ``seed``, ... Values
that HDF5 cannot store natively (dicts, None, lists of strings) are stored as JSON strings.
Files written before the pixels were Blosc-lz4 in one-frame chunks (gzip level 1, up to 16 frames
per chunk: 6 at 224 px) read as they are.

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
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lewm_agent.data.errors import fail

__all__ = ["FORMAT_VERSION", "REQUIRED_COLUMNS", "IDENTITY_ATTRS", "open_file", "read", "has_filters",
           "unavailable_filters", "encode_attr", "decode_attr", "read_attrs", "attr_equal"]

FORMAT_VERSION = 1
REQUIRED_COLUMNS = ("pixels", "action", "ep_len", "ep_offset")
IDENTITY_ATTRS = ("env_id", "image_size", "action_low", "action_high")
"""Attributes that must agree when appending to an existing file."""


# --------------------------------------------------------------------------- HDF5 filters
_FILTER_NAMES = {1: "gzip", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset",
                 307: "bzip2", 32001: "Blosc", 32004: "LZ4", 32008: "Bitshuffle", 32013: "zfp",
                 32015: "Zstandard", 32017: "SZ", 32024: "SZ3", 32026: "Blosc2"}
_plugins_loaded = False
_plugin_import_error: str | None = None  # why ``import hdf5plugin`` failed, if it did


def load_filter_plugins() -> None:
    """Import ``hdf5plugin`` once (it registers Blosc, LZ4, Zstd, ... with h5py's HDF5)."""
    global _plugins_loaded, _plugin_import_error
    if _plugins_loaded:
        return
    _plugins_loaded = True
    try:
        import hdf5plugin  # noqa: F401  (registration happens on import)
    except ImportError as err:  # a core dependency, but the error is reported only if a file needs it
        _plugin_import_error = str(err) or type(err).__name__


def open_file(path: Path, **kwargs: Any) -> h5py.File:
    """``h5py.File(path, "r", **kwargs)`` with the filter plugins loaded."""
    load_filter_plugins()
    return h5py.File(path, "r", **kwargs)


def has_filters(ds: h5py.Dataset) -> bool:
    """Whether ``ds`` is stored through a filter pipeline (compression, shuffle, checksum, ...)."""
    return ds.chunks is not None and ds.id.get_create_plist().get_nfilters() > 0


def unavailable_filters(ds: h5py.Dataset) -> list[str]:
    """``"Blosc (HDF5 filter 32001)"`` for each filter of ``ds``'s pipeline this HDF5 cannot apply."""
    plist = ds.id.get_create_plist()
    out = []
    for i in range(plist.get_nfilters()):
        code, _flags, _values, name = plist.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            label = _FILTER_NAMES.get(code) or (name.decode("utf-8", "replace") if name else "") or "unknown"
            out.append(f"{label} (HDF5 filter {code})")
    return out


def read(path: Path, ds: h5py.Dataset, selection: Any = ()) -> np.ndarray:
    """``ds[selection]``; a DatasetError naming the filter and the fix when a filter is unavailable."""
    try:
        return ds[selection]
    except OSError as err:
        missing = unavailable_filters(ds)
        if not missing:
            raise
        column = ds.name.lstrip("/")
        if _plugin_import_error is not None:
            fix = f"pip install hdf5plugin (importing it failed: {_plugin_import_error})"
        else:
            fix = ("hdf5plugin is imported but does not provide it: install an HDF5 plugin for it and point "
                   "HDF5_PLUGIN_PATH at its directory")
        raise fail(path, f"column {column!r} is compressed with {', '.join(missing)}, which this Python "
                    "cannot decode", fix) from err


# --------------------------------------------------------------------------- attributes
def encode_attr(key: str, value: Any) -> Any:
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


def decode_attr(value: Any) -> Any:
    """Python-friendly attribute value: bytes -> str, numpy scalars -> Python scalars."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_attrs(f: h5py.File) -> dict[str, Any]:
    """The file's attributes, decoded (:func:`decode_attr`)."""
    return {k: decode_attr(v) for k, v in f.attrs.items()}


def attr_equal(a: Any, b: Any) -> bool:
    """Whether two attribute values are equal (arrays element-wise, others with ``==``)."""
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return a == b
