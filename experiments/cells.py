"""One (task, method) cell of a comparison: train the method, evaluate it on the task's pairs, save.

The evaluation and the record are the library's (:func:`lewm_agent.experiment.evaluate_on_task`,
:class:`~lewm_agent.experiment.RunRecord`, the schema ``lewm run`` writes too); this module adds the
process around them.

Each cell runs in its own spawned process (:func:`execute_cell`), so its peak memory is its own,
a crash (even a segfault) is recorded as that cell's error and loses no other cell, and an
interrupted run leaves every finished cell on disk. A cell's record is written atomically to
``<run>/cells/<task>/<method>.json``; a record whose ``key`` matches the current settings and whose
status is ``ok`` is finished and is not run again.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

from lewm_agent.experiment import RunRecord, record_path
from lewm_agent.files import atomic_write_json

__all__ = ["cell_path", "load_cell", "execute_cell", "run_cell"]


def cell_path(run_dir: Path, task: str, method: str) -> Path:
    """``<run>/cells/<task>/<method>.json`` (:func:`lewm_agent.experiment.record_path`)."""
    return record_path(run_dir, task, method)


def load_cell(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def run_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Train + evaluate one cell and write its record; runs in the cell's own process.

    ``job``: ``task`` (a :class:`~lewm_agent.experiment.Task` as dict), ``method``, ``budget``,
    ``key``, ``run_dir``, ``device``, ``progress``, ``video_episodes``, ``plugins`` (modules that
    register extra methods).
    """
    for module in job.get("plugins", []):
        importlib.import_module(module)
    from lewm_agent.experiment import Task, evaluate_on_task

    from .baselines import CellContext, MethodUnavailable, get_method

    task = Task.from_dict(job["task"])
    method, run_dir = job["method"], Path(job["run_dir"])
    record = RunRecord.begin(task.name, task.env_id, method, key=job["key"], budget=job["budget"])
    ctx = CellContext(work_dir=run_dir / "work" / task.name / method, tb_dir=run_dir / "tb" / task.name / method,
                      device=job.get("device", "auto"), progress=job.get("progress", True))
    tic = time.perf_counter()
    try:
        trained = get_method(method)(task, ctx, dict(job["budget"]))
        try:
            evaluate_on_task(task, record, trained.actor, data_used=trained.data_used, data_kind=trained.data_kind,
                             train_seconds=trained.train_seconds, params=trained.params, extra=trained.extra,
                             video_dir=run_dir / "videos" / task.name, video_episodes=job.get("video_episodes", 2),
                             video_root=run_dir, tb_dir=ctx.tb_dir, progress=ctx.progress)
        finally:
            if trained.close is not None:
                trained.close()
    except MethodUnavailable as e:
        record.skip(str(e))
    except Exception as e:  # noqa: BLE001 - one method's crash must not lose the others
        record.fail(e)
    record.finish(time.perf_counter() - tic)
    atomic_write_json(cell_path(run_dir, task.name, method), record.to_dict(), default=str)
    return record.to_dict()


def execute_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`run_cell` in a spawned process and return its record.

    A process that dies without writing its record (killed, segfault, out of memory) gets an
    ``error`` record naming its exit code. Ctrl-C stops the cell and propagates (nothing is written,
    so the cell runs again next time).
    """
    path = cell_path(Path(job["run_dir"]), job["task"]["name"], job["method"])
    path.unlink(missing_ok=True)
    proc = mp.get_context("spawn").Process(target=run_cell, args=(job,), name=f"cell-{job['method']}")
    proc.start()
    try:
        proc.join()
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join(10)
    record = load_cell(path)
    if record is None:
        code = proc.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        record = RunRecord(task=job["task"]["name"], env_id=job["task"]["env_id"], method=job["method"], key=job["key"],
                           budget=job["budget"], status="error",
                           message=f"the cell's process {how} before saving a result (out of memory? a crash in native "
                                   "code?)").to_dict()
        atomic_write_json(path, record, default=str)
    return record
