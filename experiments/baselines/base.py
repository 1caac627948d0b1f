"""What every compared method provides, and what it is given.

A method is trained (or loaded) for one :class:`Task` inside one :class:`CellContext` and returns
a :class:`Trained`: a batched actor plus the figures the comparison reports about its training.
The comparison then runs that actor through :func:`lewm_agent.experiment.evaluate_on_task` on the
task's fixed start/goal pairs, the same for every method, into one
:class:`~lewm_agent.experiment.RunRecord`. :class:`Task` and the pairs' helpers are the library's
(:mod:`lewm_agent.experiment`), re-exported here.

Adding your own agent takes a few lines when it already follows Stable-Baselines3's
``predict`` protocol::

    from experiments.baselines import Trained, PredictorActor, register

    @register("my-agent")
    def my_agent(task, ctx, budget):
        model = MyAgent.load("path/to/model.zip")  # anything with .predict(obs, state, episode_start, deterministic)
        return Trained(actor=PredictorActor(model), data_used=0, data_kind="none", train_seconds=0.0)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

# the experiment core lives in the library (``lewm run`` uses it too); re-exported for methods and plugins
from lewm_agent.experiment import Task, TrainClock, load_pairs, pairs_fingerprint, save_pairs

__all__ = ["Task", "CellContext", "Trained", "Method", "PredictorActor", "MethodUnavailable", "TrainClock",
           "load_pairs", "save_pairs", "pairs_fingerprint", "budget_from", "UntrustedCheckpoint", "trust_checkpoint",
           "require_trusted"]


class MethodUnavailable(RuntimeError):
    """Raised by a method whose optional dependency is missing; the cell is reported as skipped."""


@dataclass
class CellContext:
    """Where one (task, method) cell works."""

    work_dir: Path
    """The method's private directory (checkpoints, models); kept so an interrupted cell resumes."""
    tb_dir: Path
    """TensorBoard log directory of this method's training curves (``<run>/tb/<task>/<method>``); the cell's
    settings and success go to its sub-run ``record`` as hparams."""
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


def budget_from(cls: type, budget: dict[str, Any]) -> Any:
    """Build a method's ``Budget`` dataclass from a dict, naming unknown keys (with the closest known one) and values
    of the wrong type; the class's own ``__post_init__`` checks the ranges."""
    import typing

    from lewm_agent.config import check_type
    from lewm_agent.settings import check_name

    for name in budget:
        check_name(cls, name, cls.__qualname__)
    hints = typing.get_type_hints(cls)
    for name, value in budget.items():  # before __post_init__, which compares numbers
        check_type(cls.__qualname__, name, hints.get(name), value)
    return cls(**budget)


# ---------------------------------------------------------------------------------- checkpoints that run code
# Stable-Baselines3 zips and sheeprl's DreamerV3 checkpoints are pickles: loading one can run any code. A
# comparison reloads them from its results directory when it resumes, so it loads only files that a run on
# this machine wrote: their sha256 is recorded when written, in a store outside every results directory (a
# results directory from someone else, whatever it holds, brings no trust with it).


class UntrustedCheckpoint(ValueError):
    """A checkpoint that can run code on loading and was not written by a run on this machine (or was changed)."""


def trusted_store() -> Path:
    """Where the sha256 of trusted checkpoints are kept: ``$LEWM_TRUSTED_CHECKPOINTS``, else
    ``~/.cache/lewm-agent/trusted-checkpoints`` (one empty file per hash)."""
    default = Path.home() / ".cache" / "lewm-agent" / "trusted-checkpoints"
    return Path(os.environ.get("LEWM_TRUSTED_CHECKPOINTS") or default)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def trust_checkpoint(path: str | os.PathLike) -> None:
    """Record ``path``'s sha256 as written by this machine's run (call it right after writing the file)."""
    store = trusted_store()
    store.mkdir(parents=True, exist_ok=True)
    (store / _sha256(Path(path))).touch()


def require_trusted(path: str | os.PathLike) -> None:
    """:class:`UntrustedCheckpoint` unless ``path``'s sha256 was recorded by :func:`trust_checkpoint`."""
    if not (trusted_store() / _sha256(Path(path))).exists():
        raise UntrustedCheckpoint(
            f"{path} was not written by a run on this machine, or was changed since: it is not loaded (loading it "
            "could run code). Delete it (or its cell's work directory) to train again.")
