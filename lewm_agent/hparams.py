"""A run's settings as TensorBoard hyperparameters (the HParams dashboard): written, and read back.

:func:`write_hparams` writes one *session* into a log directory: the settings, flattened to
numbers, strings and booleans, and the run's metrics as scalars beside them. No experiment
summary is written, so TensorBoard builds the dashboard's columns from every session under the
logdir it is given (runs with different settings sit side by side) and takes a session's metrics
from the scalars of its run and the runs below it. TensorBoard keeps the first session it reads
in a run, so each run directory should hold one.

Only ``tensorboard`` is needed (no torch, no TensorFlow).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["flatten_hparams", "write_hparams", "read_hparams"]

SESSION_START_TAG = "_hparams_/session_start_info"


def flatten_hparams(settings: dict[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """Nested settings -> ``{"a.b": value}`` with values TensorBoard takes: bool, int, float or str.

    Dicts are flattened with dotted names; None becomes ``"None"``; lists and tuples become their
    JSON text; anything else its ``str``.
    """
    out: dict[str, bool | int | float | str] = {}
    for name, value in settings.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            out.update(flatten_hparams(value, f"{key}."))
        elif isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif value is None:
            out[key] = "None"
        elif isinstance(value, (list, tuple)):
            out[key] = json.dumps(value, default=str)
        else:
            out[key] = str(value)
    return out


def _session_start(hparams: dict[str, bool | int | float | str]) -> Any:
    """A Summary proto holding the hparams plugin's session start info for ``hparams``."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in hparams.items():
        if isinstance(value, bool):  # before int: a bool is an int
            info.hparams[name].bool_value = value
        elif isinstance(value, (int, float)):
            info.hparams[name].number_value = float(value)
        else:
            info.hparams[name].string_value = str(value)
    summary_metadata = metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(session_start_info=info))
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=SESSION_START_TAG, metadata=summary_metadata)])


def write_hparams(log_dir: str | os.PathLike, settings: dict[str, Any], metrics: dict[str, float] | None = None,
                  step: int = 0) -> Path:
    """Write ``settings`` (nested dicts allowed, see :func:`flatten_hparams`) as one hparams session into
    ``log_dir`` (created), and each of ``metrics`` as a scalar at ``step`` (those that are None are left
    out). Returns ``log_dir``."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(log_dir))
    try:
        now = time.time()
        writer.add_event(event_pb2.Event(wall_time=now, step=step, summary=_session_start(flatten_hparams(settings))))
        values = [summary_pb2.Summary.Value(tag=name, simple_value=float(value))
                  for name, value in (metrics or {}).items() if value is not None]
        if values:
            writer.add_event(event_pb2.Event(wall_time=now, step=step, summary=summary_pb2.Summary(value=values)))
    finally:
        writer.close()
    return log_dir


def _events(log_dir: Path):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        yield from EventFileLoader(str(path)).Load()


def read_hparams(log_dir: str | os.PathLike) -> dict[str, bool | float | str]:
    """The hparams of the session TensorBoard shows for the run ``log_dir`` (the first one in its event files,
    not those of runs below it); ``{}`` when there is none. Numbers come back as floats."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    for event in _events(Path(log_dir)):
        for value in event.summary.value:
            if value.tag == SESSION_START_TAG:
                data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                return {name: getattr(v, v.WhichOneof("kind")) for name, v in data.session_start_info.hparams.items()}
    return {}

