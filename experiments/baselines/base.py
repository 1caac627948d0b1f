"""What every compared method provides, and what it is given.

A method is trained (or loaded) for one :class:`Task` inside one :class:`CellContext` and returns
a :class:`Trained`: a batched actor plus the figures the comparison reports about its training.
The comparison then runs that actor through :func:`lewm_agent.evaluation.evaluate` on the task's
fixed start/goal pairs, the same for every method.

Adding your own agent takes a few lines when it already follows Stable-Baselines3's
``predict`` protocol::

    from experiments.baselines import Trained, PredictorActor, register

    @register("my-agent")
    def my_agent(task, ctx, budget):
        model = MyAgent.load("path/to/model.zip")          # anything with .predict(obs, state, episode_start, deterministic)
        return Trained(actor=PredictorActor(model), data_used=0, data_kind="none", train_seconds=0.0)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from lewm_agent.evaluation import EvalProtocol, StartGoalPair

__all__ = ["Task", "CellContext", "Trained", "Method", "PredictorActor", "MethodUnavailable", "TrainClock", "load_pairs",
           "save_pairs", "pairs_fingerprint", "budget_from"]


class MethodUnavailable(RuntimeError):
    """Raised by a method whose optional dependency is missing; the cell is reported as skipped."""


@dataclass
class Task:
    """One goal-conditioned task of a comparison, with its shared offline data and evaluation pairs.

    Every method of a comparison sees the same task: the same env (id and kwargs, hence the same
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
    """``.npz`` with the start/goal pairs (see :func:`save_pairs`)."""
    protocol: EvalProtocol
    seed: int = 0

    def make_env(self, max_episode_steps: int | None = None) -> gym.Env:
        """A fresh env of this task: Dict obs ``pixels``/``goal`` (H, W, 3) uint8, dense reward
        ``-distance``, ``info["is_success"]``. ``max_episode_steps`` overrides the registered limit."""
        from lewm_agent import envs

        kwargs = dict(self.env_kwargs)
        if max_episode_steps is not None:
            kwargs["max_episode_steps"] = max_episode_steps
        return envs.make_env(self.env_id, **kwargs)

    def pairs(self) -> list[StartGoalPair]:
        return load_pairs(self.pairs_path)

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


@dataclass
class CellContext:
    """Where one (task, method) cell works."""

    work_dir: Path
    """The method's private directory (checkpoints, models); kept so an interrupted cell resumes."""
    tb_dir: Path
    """TensorBoard log directory of this method's training curves (``<run>/tb/<task>/<method>``)."""
    device: str = "auto"
    """``auto``: CUDA when available, else CPU."""
    progress: bool = True


@dataclass
class Trained:
    """A method ready to be evaluated, and how much it cost to get there."""

    actor: Any
    """Batched actor: ``reset(num_envs)`` and ``act({"pixels": (N,H,W,3), "goal": (N,H,W,3)}) -> (N, A)``.
    Privileged actors (the scripted expert) set ``needs_info = True`` and get ``act(obs, infos)``."""
    data_used: int
    """Transitions the method learned from (offline frames, or online env interactions)."""
    data_kind: str
    """``offline transitions``, ``env interactions`` or ``none``."""
    train_seconds: float
    """Wall-clock of training (s); 0 for scripted methods."""
    params: int | None = None
    """Trainable parameters of what acts (None for scripted policies)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Method-specific JSON-able details (config, final losses, ...)."""
    close: Any = None
    """Called with no arguments once the evaluation is over (e.g. to flush a TensorBoard writer), or None."""


class Method(Protocol):
    """A registered method: ``method(task, ctx, budget) -> Trained``; ``budget`` is a dict of the
    method's budget settings (see each method's ``Budget`` dataclass)."""

    def __call__(self, task: Task, ctx: CellContext, budget: dict[str, Any]) -> Trained: ...


class PredictorActor:
    """Batched actor from anything with Stable-Baselines3's ``predict`` protocol.

    ``predict(observation, state=None, episode_start=None, deterministic=False) -> (actions, state)``
    on a batch of Dict observations; recurrent state is carried between calls and reset per episode.
    """

    def __init__(self, predictor: Any, deterministic: bool = True, action_low: Any = None, action_high: Any = None):
        self.predictor = predictor
        self.deterministic = deterministic
        self.low = None if action_low is None else np.asarray(action_low, np.float32)
        self.high = None if action_high is None else np.asarray(action_high, np.float32)
        self._state: Any = None
        self._episode_start: np.ndarray | None = None

    def reset(self, num_envs: int | None = None) -> None:
        self._state = None
        self._episode_start = np.ones(num_envs or 1, dtype=bool)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        n = np.asarray(obs["pixels"]).shape[0]
        if self._episode_start is None or len(self._episode_start) != n:
            self.reset(n)
        actions, self._state = self.predictor.predict(
            obs, state=self._state, episode_start=self._episode_start, deterministic=self.deterministic)
        self._episode_start = np.zeros(n, dtype=bool)
        actions = np.asarray(actions, np.float32).reshape(n, -1)
        if self.low is not None:
            actions = np.clip(actions, self.low, self.high)
        return actions


class TrainClock:
    """A cell's training wall-clock, summed over the attempts that resumed it: ``<dir>/train_seconds.json``.

    ``{"seconds": total, ...}`` plus whatever the method stores beside it (e.g. LeWM's final losses).
    """

    def __init__(self, directory: Path):
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
        from lewm_agent.files import atomic_write_json

        atomic_write_json(self.path, {**self.read(), **extra, "seconds": self.seconds + seconds})

    def reset(self) -> None:
        """Forget earlier attempts (a training that restarts from scratch)."""
        self.path.unlink(missing_ok=True)


def save_pairs(path: Path, pairs: list[StartGoalPair]) -> None:
    """Write pairs atomically as ``.npz`` (episode, row, state, goal_state arrays)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, episode=np.array([p.episode for p in pairs]), row=np.array([p.row for p in pairs]),
             state=np.stack([p.state for p in pairs]), goal_state=np.stack([p.goal_state for p in pairs]))
    tmp.replace(path)


def load_pairs(path: Path) -> list[StartGoalPair]:
    with np.load(path) as f:
        return [StartGoalPair(int(e), int(r), s, g) for e, r, s, g in zip(f["episode"], f["row"], f["state"], f["goal_state"])]


def pairs_fingerprint(pairs: list[StartGoalPair]) -> str:
    """Short hash of the pairs' exact states: equal fingerprints mean identical evaluations."""
    import hashlib

    h = hashlib.sha256()
    for p in pairs:
        h.update(np.asarray([p.episode, p.row], np.int64).tobytes())
        h.update(np.asarray(p.state, np.float32).tobytes())
        h.update(np.asarray(p.goal_state, np.float32).tobytes())
    return h.hexdigest()[:16]


def budget_from(cls: type, budget: dict[str, Any]) -> Any:
    """Build a method's ``Budget`` dataclass from a dict, naming unknown keys."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(budget) - names
    if unknown:
        raise ValueError(f"Unknown budget settings {sorted(unknown)} for {cls.__qualname__}; known: {sorted(names)}.")
    return cls(**budget)

