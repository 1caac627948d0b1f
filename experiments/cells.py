"""One (task, method) cell of a comparison: train the method, evaluate it on the task's pairs, save.

Each cell runs in its own spawned process (:func:`execute_cell`), so its peak memory is its own,
a crash (even a segfault) is recorded as that cell's error and loses no other cell, and an
interrupted run leaves every finished cell on disk. A cell's record is written atomically to
``<run>/cells/<task>/<method>.json``; a record whose ``key`` matches the current settings and whose
status is ``ok`` is finished and is not run again.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import multiprocessing as mp
import os
import resource
import time
import traceback
from pathlib import Path
from typing import Any

from lewm_agent.files import atomic_write_json

__all__ = ["cell_key", "cell_path", "load_cell", "execute_cell", "run_cell"]


def cell_key(task: dict[str, Any], method: str, budget: dict[str, Any]) -> str:
    """Hash of everything that decides a cell's result: the task (env, data, pairs), method, budget."""
    blob = json.dumps({"task": task, "method": method, "budget": budget}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cell_path(run_dir: Path, task: str, method: str) -> Path:
    return Path(run_dir) / "cells" / task / f"{method}.json"


def load_cell(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _peak_memory() -> dict[str, float | None]:
    """Peak resident memory of this process (MB), and peak CUDA memory allocated by torch (MB) if used.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this process's own address space.
    (``ru_maxrss`` would not do: Linux carries it across exec, so a spawned cell would report its
    parent's peak.) Elsewhere ``ru_maxrss`` (bytes on macOS).
    """
    rss_mb = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                rss_mb = int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    if rss_mb is None:
        import sys

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_mb = maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024
    cuda_mb = None
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            cuda_mb = torch.cuda.max_memory_allocated() / 2**20
    except ImportError:
        pass
    return {"peak_rss_mb": rss_mb, "peak_cuda_mb": cuda_mb}


def run_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Train + evaluate one cell and write its record; runs in the cell's own process.

    ``job``: ``task`` (a :class:`~experiments.baselines.Task` as dict), ``method``, ``budget``,
    ``key``, ``run_dir``, ``device``, ``progress``, ``video_episodes``, ``plugins`` (modules that
    register extra methods).
    """
    for module in job.get("plugins", []):
        importlib.import_module(module)
    from lewm_agent.evaluation import evaluate

    from .baselines import CellContext, MethodUnavailable, Task, get_method, pairs_fingerprint

    task = Task.from_dict(job["task"])
    method, run_dir = job["method"], Path(job["run_dir"])
    record: dict[str, Any] = {
        "task": task.name, "env_id": task.env_id, "method": method, "key": job["key"], "budget": job["budget"],
        "started": _dt.datetime.now().isoformat(timespec="seconds"), "pid": os.getpid(),
    }
    ctx = CellContext(work_dir=run_dir / "work" / task.name / method, tb_dir=run_dir / "tb" / task.name / method,
                      device=job.get("device", "auto"), progress=job.get("progress", True))
    tic = time.perf_counter()
    try:
        trained = get_method(method)(task, ctx, dict(job["budget"]))
        pairs = task.pairs()
        t_eval = time.perf_counter()
        try:
            result = evaluate(trained.actor, task.make_env, pairs, task.protocol,
                              video_dir=run_dir / "videos" / task.name, video_episodes=job.get("video_episodes", 2),
                              video_prefix=method, progress=ctx.progress)
        finally:
            if trained.close is not None:
                trained.close()
        r = result.to_dict()
        extra = dict(trained.extra)
        if hasattr(trained.actor, "seconds_per_plan"):
            extra["plan_seconds_per_decision"] = trained.actor.seconds_per_plan
        record.update(
            status="ok", message="",
            success_rate=r["success_rate"], ci95=list(r["ci95"]), successes=r["successes"], num_episodes=r["num_episodes"],
            mean_return=r["mean_return"], mean_steps_to_success=r["mean_steps_to_success"],
            data_used=trained.data_used, data_kind=trained.data_kind, train_seconds=trained.train_seconds,
            decision_ms_median=1000 * r["decision_seconds_median"], decision_ms_p95=1000 * r["decision_seconds_p95"],
            decision_ms_mean=1000 * r["decision_seconds_mean"], params=trained.params,
            eval_seconds=time.perf_counter() - t_eval, videos=[os.path.relpath(v, run_dir) for v in r["videos"]],
            pairs_fingerprint=pairs_fingerprint(pairs), episodes=r["episodes"], protocol=r["protocol"], extra=extra,
        )
    except MethodUnavailable as e:
        record.update(status="skipped", message=str(e))
    except Exception as e:  # noqa: BLE001 - one method's crash must not lose the others
        record.update(status="error", message=f"{type(e).__name__}: {e}".splitlines()[0][:300],
                      traceback=traceback.format_exc())
    record.update(_peak_memory(), seconds=time.perf_counter() - tic,
                  finished=_dt.datetime.now().isoformat(timespec="seconds"))
    atomic_write_json(cell_path(run_dir, task.name, method), record, default=str)
    return record


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
        record = {"task": job["task"]["name"], "env_id": job["task"]["env_id"], "method": job["method"],
                  "key": job["key"], "budget": job["budget"], "status": "error",
                  "message": f"the cell's process {how} before saving a result (out of memory? a crash in native code?)"}
        atomic_write_json(path, record, default=str)
    return record
