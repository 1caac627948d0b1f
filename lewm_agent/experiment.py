"""One experiment, whoever runs it: a task prepared once, and one record per actor run on it.

``lewm run`` (:mod:`lewm_agent.pipeline`) and ``experiments/compare.py`` share this core:

- :func:`prepare_task` collects the task's episodes (or reuses a valid file), splits them once
  into training and held-out episodes, draws the evaluation pairs from the held-out ones and saves
  them (``task.json`` and ``pairs.npz`` in the task's directory). It returns a :class:`Task`, which
  every method trains on (its ``train_episodes``) and is evaluated on (its pairs).
- :func:`evaluate_on_task` runs an actor on the task's pairs with
  :func:`lewm_agent.evaluation.evaluate` and fills a :class:`RunRecord`: the one result schema, of
  a comparison cell (``<run>/cells/<task>/<method>.json``), of ``lewm run`` and of ``lewm eval``.
  It also writes the run's settings and its success into TensorBoard as hyperparameters.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import resource
import shutil
import sys
import traceback as _traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .data import DatasetError, EpisodeFileInfo, collect, load_episodes, split_episodes, validate_episode_file
from .evaluation import EvalProtocol, EvalResult, StartGoalPair, evaluate, sample_pairs
from .files import atomic_write_json

__all__ = ["Task", "TaskMismatch", "RunRecord", "TrainClock", "prepare_task", "evaluate_on_task", "run_key",
           "record_path", "task_name", "task_settings", "task_hparams", "save_pairs", "load_pairs",
           "pairs_fingerprint", "peak_memory"]


@dataclass
class Task:
    """One goal-conditioned task of an experiment, with its shared offline data and evaluation pairs.

    Every method of an experiment sees the same task: the same env (id and kwargs, hence the same
    image size and success test), the same seeded start/goal ``pairs`` (drawn from the held-out
    episodes of ``data_path``) and the same ``protocol`` (budget in env steps).
    """

    name: str
    """Short name used in tables and file names (e.g. ``TwoRoom``)."""
    env_id: str
    env_kwargs: dict[str, Any]
    """Constructor arguments; include ``image_size`` (pixels of both ``pixels`` and ``goal``)."""
    data_path: Path
    """HDF5 episode file collected with the task's collection policy (offline methods train on it)."""
    train_episodes: list[int]
    """Episode ids of ``data_path`` an offline method may train on."""
    held_out_episodes: list[int]
    """Episode ids the evaluation pairs come from (never trained on)."""
    pairs_path: Path
    """``.npz`` with the start/goal pairs (see :func:`save_pairs`); :func:`prepare_task` writes ``task.json``
    beside it."""
    protocol: EvalProtocol
    seed: int = 0

    def make_env(self, max_episode_steps: int | None = None) -> Any:
        """A fresh env of this task: Dict obs ``pixels``/``goal`` (H, W, 3) uint8, dense reward
        ``-distance``, ``info["is_success"]``. ``max_episode_steps`` overrides the registered limit."""
        from lewm_agent import envs

        kwargs = dict(self.env_kwargs)
        if max_episode_steps is not None:
            kwargs["max_episode_steps"] = max_episode_steps
        return envs.make_env(self.env_id, **kwargs)

    def pairs(self) -> list[StartGoalPair]:
        return load_pairs(self.pairs_path)

    @property
    def split(self) -> tuple[list[int], list[int]]:
        """``(train_episodes, held_out_episodes)``: what :func:`lewm_agent.train.train` takes as ``split``."""
        return list(self.train_episodes), list(self.held_out_episodes)

    def train_frames(self) -> int:
        """Frames (rows) of the training episodes: the offline transitions a method learns from."""
        import h5py

        with h5py.File(self.data_path, "r") as f:
            ep_len = np.asarray(f["ep_len"])
        return int(ep_len[self.train_episodes].sum())

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["data_path"], d["pairs_path"] = str(self.data_path), str(self.pairs_path)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Task":
        d = dict(d)
        d["data_path"], d["pairs_path"] = Path(d["data_path"]), Path(d["pairs_path"])
        d["protocol"] = EvalProtocol(**d["protocol"])
        return cls(**d)


class TaskMismatch(ValueError):
    """A task directory prepared earlier with other settings."""


# the split of every task.json written before the split was recorded (TrainConfig's defaults then)
_UNRECORDED_SPLIT = {"val_fraction": 0.1, "split_seed": 0}


def task_name(env_id: str) -> str:
    """A short name for a task from its env id: ``lewm/TwoRoom-v1`` -> ``TwoRoom``, ``pkg.mod:pkg/Dot-v0`` ->
    ``Dot``."""
    import re

    return re.sub(r"-v\d+$", "", env_id.rsplit(":", 1)[-1].rsplit("/", 1)[-1]) or "task"


def prepare_task(
    task_dir: str | os.PathLike,
    name: str,
    env_id: str,
    env_kwargs: dict[str, Any] | None,
    episodes: int,
    policy: str = "expert",
    seed: int = 0,
    protocol: EvalProtocol | None = None,
    *,
    max_steps: int | None = None,
    workers: int = 1,
    progress: bool = True,
    data_path: str | os.PathLike | None = None,
    val_fraction: float | None = None,
    split_seed: int | None = None,
) -> Task:
    """Collect the task's episodes (reusing a valid file), split them once, draw and save the evaluation pairs.

    Writes ``task_dir/pairs.npz`` and ``task_dir/task.json`` (the settings and the :class:`Task`); a
    ``task_dir`` that already holds a ``task.json`` with the same settings is reused as it is.

    Args:
        task_dir: the task's directory (created).
        name: the task's short name (file names, tables).
        env_id, env_kwargs: the env (kwargs should include ``image_size``).
        episodes: episodes collected with ``policy`` (episode i reset with ``seed + i``).
        protocol: the evaluation protocol (default :class:`~lewm_agent.evaluation.EvalProtocol`).
        max_steps: cap on each collected episode (None: the env's time limit).
        workers: collection processes.
        data_path: the episode file (default ``task_dir/episodes.h5``); a valid file there with the same
            env, kwargs, policy, seed, step cap and episode count is reused, any other is collected again.
        val_fraction, split_seed: the train/held-out split (default :class:`~lewm_agent.config.TrainConfig`'s,
            LeWM's own).

    Raises:
        TaskMismatch: ``task_dir`` was prepared with other settings (the message names them and the fix).
    """
    from lewm_agent import envs
    from lewm_agent.config import TrainConfig

    defaults = TrainConfig()
    task_dir = Path(task_dir)
    data_path = Path(data_path) if data_path is not None else task_dir / "episodes.h5"
    protocol = protocol or EvalProtocol()
    env_kwargs = dict(env_kwargs or {})
    split = {"val_fraction": defaults.val_fraction if val_fraction is None else float(val_fraction),
             "split_seed": defaults.split_seed if split_seed is None else int(split_seed)}
    settings = json.loads(json.dumps({
        "env_id": env_id, "env_kwargs": env_kwargs, "episodes": episodes, "policy": policy, "max_steps": max_steps,
        "seed": seed, "protocol": dataclasses.asdict(protocol), "split": split}))
    saved = task_dir / "task.json"
    if saved.exists():
        try:
            old = json.loads(saved.read_text())
            was, task = {"split": _UNRECORDED_SPLIT, **old["settings"]}, Task.from_dict(old["task"])
        except (ValueError, KeyError, TypeError) as e:
            raise TaskMismatch(f"{saved} is not a task record ({type(e).__name__}: {e}); delete {task_dir} to prepare "
                               "the task again.") from None
        if was != settings:
            changed = "; ".join(f"{k} was {was.get(k)!r}, now {settings.get(k)!r}"
                                for k in sorted(set(was) | set(settings)) if was.get(k) != settings.get(k))
            raise TaskMismatch(f"{task_dir} holds task {name} prepared with other settings ({changed}): use another "
                               f"run directory, or delete {task_dir} and {data_path} to prepare it again.")
        return task

    task_dir.mkdir(parents=True, exist_ok=True)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        info = validate_episode_file(data_path)
        _check_reusable(info, settings)
    except DatasetError:
        # the run directory's own file, missing or not collected with these settings: (re)collected
        info = collect(env_id, data_path, num_episodes=episodes, policy=policy, seed=seed, env_kwargs=env_kwargs,
                       max_steps=max_steps, progress=progress, workers=workers, overwrite=True)
    train_ids, val_ids = split_episodes(info.num_episodes, split["val_fraction"], split["split_seed"])
    data = load_episodes(data_path, stream=True)  # the pairs need the states; the pixels stay on disk
    probe = envs.make_env(env_id, **env_kwargs)
    try:
        pairs = sample_pairs(data, val_ids, protocol, env=probe.unwrapped)
    finally:
        probe.close()
    del data  # each method loads what it needs itself
    pairs_path = task_dir / "pairs.npz"
    save_pairs(pairs_path, pairs)
    task = Task(name=name, env_id=env_id, env_kwargs=env_kwargs, data_path=data_path.resolve(),
                train_episodes=[int(i) for i in train_ids], held_out_episodes=[int(i) for i in val_ids],
                pairs_path=pairs_path.resolve(), protocol=protocol, seed=seed)
    record = {"settings": settings, "task": task.to_dict(), "frames": info.num_frames,
              "collection_policy_success_rate": info.attrs.get("policy_success_rate")}
    atomic_write_json(saved, record, default=float)
    return task


def _check_reusable(info: EpisodeFileInfo, settings: dict[str, Any]) -> None:
    """DatasetError unless the episode file was collected with ``settings`` (the attributes it records)."""
    if info.num_episodes != settings["episodes"]:
        raise DatasetError(f"{info.num_episodes} episodes, not {settings['episodes']}")
    attrs = info.attrs
    recorded = {"env_id": attrs.get("env_id"), "policy": attrs.get("policy"), "seed": attrs.get("seed"),
                "max_steps": attrs.get("max_steps"), "env_kwargs": attrs.get("env_kwargs")}
    wanted = {"env_id": settings["env_id"], "policy": settings["policy"], "seed": settings["seed"],
              "max_steps": -1 if settings["max_steps"] is None else settings["max_steps"],
              "env_kwargs": settings["env_kwargs"]}
    if isinstance(recorded["env_kwargs"], str):
        recorded["env_kwargs"] = json.loads(recorded["env_kwargs"])
    for key, value in wanted.items():
        if recorded[key] is not None and _plain(recorded[key]) != value:
            raise DatasetError(f"collected with {key}={recorded[key]!r}, not {value!r}")


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (numpy scalars to int/str...)."""
    return value.item() if isinstance(value, np.generic) else value


def task_settings(task: Task) -> dict[str, Any]:
    """The settings ``task`` was prepared with (``task.json`` beside its pairs), or those the Task itself holds."""
    saved = Path(task.pairs_path).parent / "task.json"
    try:
        return dict(json.loads(saved.read_text())["settings"])
    except (OSError, ValueError, KeyError, TypeError):
        return {"env_id": task.env_id, "env_kwargs": task.env_kwargs,
                "episodes": len(task.train_episodes) + len(task.held_out_episodes), "seed": task.seed,
                "protocol": dataclasses.asdict(task.protocol)}


def record_path(run_dir: str | os.PathLike, task: str, method: str) -> Path:
    """Where a run directory keeps the record of ``method`` on task ``task``:
    ``<run_dir>/cells/<task>/<method>.json``."""
    return Path(run_dir) / "cells" / task / f"{method}.json"


def run_key(task: Task, method: str, budget: dict[str, Any], resolved: dict[str, Any] | None = None) -> str:
    """Hash of everything that decides a run's result: the task (env, data, split, pairs), method and budget.

    ``resolved``: what names in ``budget`` stand for at this moment (a comparison passes a LeWM preset's
    configs for its ``preset`` name), so that a preset changed between two calls changes the key; None
    (the default, and the key of every method whose budget holds only values) leaves the key as before.
    """
    content: dict[str, Any] = {"task": task.to_dict() | {"pairs": str(task.pairs_path)}, "method": method,
                               "budget": budget}
    if resolved is not None:
        content["resolved"] = resolved
    blob = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_pairs(path: str | os.PathLike, pairs: list[StartGoalPair]) -> None:
    """Write pairs atomically as ``.npz`` (episode, row, state, goal_state arrays)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, episode=np.array([p.episode for p in pairs]), row=np.array([p.row for p in pairs]),
             state=np.stack([p.state for p in pairs]), goal_state=np.stack([p.goal_state for p in pairs]))
    tmp.replace(path)


def load_pairs(path: str | os.PathLike) -> list[StartGoalPair]:
    with np.load(path) as f:
        columns = zip(f["episode"], f["row"], f["state"], f["goal_state"])
        return [StartGoalPair(int(e), int(r), s, g) for e, r, s, g in columns]


def pairs_fingerprint(pairs: list[StartGoalPair]) -> str:
    """Short hash of the pairs' exact states: equal fingerprints mean identical evaluations."""
    h = hashlib.sha256()
    for p in pairs:
        h.update(np.asarray([p.episode, p.row], np.int64).tobytes())
        h.update(np.asarray(p.state, np.float32).tobytes())
        h.update(np.asarray(p.goal_state, np.float32).tobytes())
    return h.hexdigest()[:16]


class TrainClock:
    """A run's training wall-clock, summed over the attempts that resumed it: ``<dir>/train_seconds.json``.

    ``{"seconds": total, ...}`` plus whatever the method stores beside it (e.g. LeWM's final losses).
    """

    def __init__(self, directory: str | os.PathLike):
        self.path = Path(directory) / "train_seconds.json"

    def read(self) -> dict[str, Any]:
        """The stored record, ``{}`` when none was written."""
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    @property
    def seconds(self) -> float:
        """Seconds recorded so far (0 when none)."""
        return float(self.read().get("seconds", 0.0))

    def add(self, seconds: float, **extra: Any) -> None:
        """Add ``seconds`` to the total and store ``extra`` beside it (atomically)."""
        atomic_write_json(self.path, {**self.read(), **extra, "seconds": self.seconds + seconds})

    def reset(self) -> None:
        """Forget earlier attempts (a training that restarts from scratch)."""
        self.path.unlink(missing_ok=True)


def peak_memory() -> dict[str, float | None]:
    """Peak resident memory of this process (MB), and peak CUDA memory allocated by torch (MB) if used.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this process's own address space.
    (``ru_maxrss`` would not do: Linux carries it across exec, so a spawned process would report its
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
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_mb = maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024
    cuda_mb = None
    torch = sys.modules.get("torch")  # only a process that imported torch can have used CUDA
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda_mb = torch.cuda.max_memory_allocated() / 2**20
    return {"peak_rss_mb": rss_mb, "peak_cuda_mb": cuda_mb}


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


@dataclass
class RunRecord:
    """What one method (an actor and what it cost) scored on one task: the one result schema.

    A comparison cell (``<run>/cells/<task>/<method>.json``), ``lewm run`` (the same path under its
    ``--out``) and ``lewm eval`` (``eval.json``) all write these. :meth:`to_dict` gives the JSON: the
    evaluation's fields only for ``status == "ok"``, the process's (peak memory, seconds, finished)
    once :meth:`finish` ran, ``traceback`` only for an error.
    """

    task: str
    env_id: str
    method: str
    key: str = ""
    """:func:`run_key` of the task, method and budget (a comparison skips a finished cell with the same key)."""
    budget: dict[str, Any] = field(default_factory=dict)
    """The method's settings (a comparison's budget; ``lewm run``: the model / train / plan configs)."""
    started: str | None = None
    pid: int | None = None
    status: str = "running"
    """``ok``, ``skipped`` (an optional dependency is missing), ``error``; ``running`` until one of them."""
    message: str = ""
    success_rate: float | None = None
    ci95: list[float] | None = None
    successes: int | None = None
    num_episodes: int | None = None
    mean_return: float | None = None
    mean_steps_to_success: float | None = None
    data_used: int | None = None
    """Transitions learned from (offline frames, or online env interactions)."""
    data_kind: str | None = None
    """``offline transitions``, ``env interactions`` or ``none``."""
    train_seconds: float | None = None
    decision_ms_median: float | None = None
    decision_ms_p95: float | None = None
    decision_ms_mean: float | None = None
    params: int | None = None
    eval_seconds: float | None = None
    videos: list[str] = field(default_factory=list)
    pairs_fingerprint: str | None = None
    episodes: list[dict[str, Any]] = field(default_factory=list)
    """Per pair: its start (``episode``, ``row``), success, steps to success, goal distances."""
    protocol: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """Method-specific details (config, final losses, planning time per decision...)."""
    traceback: str | None = None
    peak_rss_mb: float | None = None
    peak_cuda_mb: float | None = None
    seconds: float | None = None
    """Wall-clock of the whole run (training and evaluation)."""
    finished: str | None = None

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "success_rate", "ci95", "successes", "num_episodes", "mean_return", "mean_steps_to_success", "data_used",
        "data_kind", "train_seconds", "decision_ms_median", "decision_ms_p95", "decision_ms_mean", "params",
        "eval_seconds", "videos", "pairs_fingerprint", "episodes", "protocol", "extra")
    PROCESS_FIELDS: ClassVar[tuple[str, ...]] = ("peak_rss_mb", "peak_cuda_mb", "seconds", "finished")

    @classmethod
    def begin(cls, task: str, env_id: str, method: str, key: str = "",
              budget: dict[str, Any] | None = None) -> "RunRecord":
        """A record of ``method`` on task ``task`` (its name) in env ``env_id``, starting now in this process."""
        return cls(task=task, env_id=env_id, method=method, key=key, budget=dict(budget or {}), started=_now(),
                   pid=os.getpid())

    def set_result(self, result: EvalResult, pairs: list[StartGoalPair], *, data_used: int | None,
                   data_kind: str | None, train_seconds: float | None, params: int | None = None,
                   extra: dict[str, Any] | None = None, video_root: str | os.PathLike | None = None) -> "RunRecord":
        """Fill the evaluation's fields from ``result`` (on ``pairs``) and the method's figures; status ``ok``.
        ``video_root``: record the videos' paths relative to it."""
        r = result
        self.status, self.message = "ok", ""
        self.success_rate, self.ci95, self.successes = r.success_rate, [float(x) for x in r.ci95], r.successes
        self.num_episodes, self.mean_return = r.num_episodes, r.mean_return
        self.mean_steps_to_success = r.mean_steps_to_success
        self.data_used, self.data_kind, self.train_seconds, self.params = data_used, data_kind, train_seconds, params
        self.decision_ms_median = 1000 * r.decision_seconds_median
        self.decision_ms_p95 = 1000 * r.decision_seconds_p95
        self.decision_ms_mean = 1000 * r.decision_seconds_mean
        self.eval_seconds = r.seconds
        self.videos = [os.path.relpath(v, video_root) if video_root is not None else str(v) for v in r.videos]
        self.pairs_fingerprint = pairs_fingerprint(pairs)
        self.episodes, self.protocol, self.extra = list(r.episodes), dict(r.protocol), dict(extra or {})
        return self

    def skip(self, message: str) -> "RunRecord":
        """Status ``skipped`` (the method cannot run here, e.g. an optional dependency is missing)."""
        self.status, self.message = "skipped", message
        return self

    def fail(self, error: BaseException) -> "RunRecord":
        """Status ``error``: the exception's first line as the message, and its traceback."""
        self.status = "error"
        self.message = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        self.traceback = "".join(_traceback.format_exception(type(error), error, error.__traceback__))
        return self

    def finish(self, seconds: float) -> "RunRecord":
        """Stamp the process's peak memory, the run's wall-clock ``seconds`` and the time it finished."""
        for name, value in peak_memory().items():
            setattr(self, name, value)
        self.seconds, self.finished = float(seconds), _now()
        return self

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able record (see the class docstring for which fields appear)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            name = f.name
            if name in ("started", "pid") and getattr(self, name) is None:
                continue
            if name in self.RESULT_FIELDS and self.status != "ok":
                continue
            if name == "traceback" and self.traceback is None:
                continue
            if name in self.PROCESS_FIELDS and self.finished is None:
                continue
            value = getattr(self, name)
            out[name] = json.loads(json.dumps(value, default=str)) if isinstance(value, (dict, list)) else value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunRecord":
        """A record from its JSON (:meth:`to_dict`, or a comparison cell written before this class existed)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"Unknown RunRecord fields {unknown}; known: {sorted(names)}.")
        return cls(**d)


def task_hparams(task: Task, method: str, budget: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings of ``method`` on ``task`` as (nested) hparams: the task's settings, method and budget."""
    return {"task": task.name, **task_settings(task), "method": method, "budget": dict(budget or {})}


def evaluate_on_task(
    task: Task,
    record: RunRecord,
    actor: Any,
    *,
    data_used: int | None,
    data_kind: str | None,
    train_seconds: float | None,
    params: int | None = None,
    extra: dict[str, Any] | None = None,
    video_dir: str | os.PathLike | None = None,
    video_episodes: int = 0,
    video_root: str | os.PathLike | None = None,
    tb_dir: str | os.PathLike | None = None,
    hparams: dict[str, Any] | None = None,
    progress: bool = True,
) -> RunRecord:
    """Run ``actor`` on the task's pairs under its protocol and fill ``record`` (status ``ok``); returns it.

    Args:
        task: the prepared task (pairs, env, protocol).
        record: the run's record (:meth:`RunRecord.begin`); its ``method`` names the videos.
        actor: batched actor (``reset(num_envs)``, ``act(obs) -> (N, A)``; see :func:`~lewm_agent.evaluation.evaluate`).
            An actor with ``seconds_per_plan`` (a LeWM agent) has it recorded as ``extra["plan_seconds_per_decision"]``.
        data_used, data_kind, train_seconds, params, extra: the method's figures (see :class:`RunRecord`).
        video_dir, video_episodes: mp4s of the first pairs, ``<video_dir>/<method>_000.mp4``...
        video_root: record the videos' paths relative to this directory (the run's).
        tb_dir: the method's TensorBoard directory: the run's settings (:func:`task_hparams` plus ``hparams``)
            are written as an hparams session with ``success_rate`` and ``train_seconds`` into its sub-run
            ``record`` (replacing an earlier one there; the method's own log in ``tb_dir`` may hold a session of
            its own, e.g. LeWM's training configs).
        hparams: more settings to record beside the task's, method and budget (nested dicts allowed).
    """
    if hasattr(actor, "require_trained"):  # a LeWM agent with 0 optimiser steps is not reported as a result
        actor.require_trained()
    pairs = task.pairs()
    result = evaluate(actor, task.make_env, pairs, task.protocol, video_dir=video_dir, video_episodes=video_episodes,
                      video_prefix=record.method, progress=progress)
    extra = dict(extra or {})
    if hasattr(actor, "seconds_per_plan"):
        extra["plan_seconds_per_decision"] = actor.seconds_per_plan
    record.set_result(result, pairs, data_used=data_used, data_kind=data_kind, train_seconds=train_seconds,
                      params=params, extra=extra, video_root=video_root)
    if tb_dir is not None:
        from .hparams import write_hparams

        session = Path(tb_dir) / "record"
        shutil.rmtree(session, ignore_errors=True)  # one session per run: this record's
        write_hparams(session, {**task_hparams(task, record.method, record.budget), **(hparams or {})},
                      {"success_rate": record.success_rate, "train_seconds": record.train_seconds})
    return record
