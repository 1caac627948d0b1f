"""The registry of compared methods: name -> ``method(task, ctx, budget) -> Trained``.

Built in: ``lewm``, ``lewm-nosigreg`` (offline world model + latent planning), ``sb3-ppo``,
``sb3-sac`` (Stable-Baselines3, online), ``dreamerv3`` (sheeprl, online; optional extra
``[dreamer]``), ``random`` and ``expert`` (floor and ceiling). Register your own with
:func:`register` (see :mod:`experiments.baselines.base` for a three-line example).
Optional dependencies are imported only when a method runs, so listing methods costs nothing.
"""

from __future__ import annotations

from typing import Callable

from .base import (CellContext, Method, MethodUnavailable, PredictorActor, Task, Trained, UntrustedCheckpoint,
                   budget_from, load_pairs, pairs_fingerprint, require_trusted, save_pairs, trust_checkpoint)

__all__ = ["METHODS", "BUDGETS", "register", "check_budget", "resolved_budget", "get_method", "Task", "CellContext",
           "Trained", "Method", "PredictorActor", "MethodUnavailable", "UntrustedCheckpoint", "trust_checkpoint",
           "require_trusted", "budget_from", "load_pairs", "save_pairs", "pairs_fingerprint"]

METHODS: dict[str, Method] = {}
BUDGETS: dict[str, type] = {}
"""Method name -> its ``Budget`` dataclass, for the methods registered with one (:func:`check_budget`)."""


def register(name: str, budget: type | None = None) -> Callable[[Method], Method]:
    """Decorator: make ``method(task, ctx, budget) -> Trained`` available as ``name`` in compare.py.

    ``budget``: the method's budget dataclass, so that a comparison checks every cell's settings before any
    work (:func:`check_budget`); its ``__post_init__`` may check values."""

    def deco(fn: Method) -> Method:
        if name in METHODS and METHODS[name] is not fn:
            raise ValueError(f"A method named {name!r} is already registered.")
        METHODS[name] = fn
        if budget is not None:
            BUDGETS[name] = budget
        return fn

    return deco


def check_budget(method: str, budget: dict) -> None:
    """A ValueError naming the method and the bad setting if ``budget`` does not make a valid budget of
    ``method`` (unknown fields, wrong types, values out of range); nothing for a method registered without
    a budget class (it checks its settings itself)."""
    if method in BUDGETS:
        try:
            budget_from(BUDGETS[method], budget)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{method} budget: {e}") from None


def resolved_budget(method: str, budget: dict) -> dict | None:
    """What ``budget``'s names stand for now, where ``method``'s budget class says so with a ``resolved()``
    method (LeWM: its preset's model / train / plan configs); None for every other method.

    A comparison hashes it into each cell's key (:func:`lewm_agent.experiment.run_key`), so that a cell made
    under an earlier version of a named preset is run again instead of being reported as done."""
    cls = BUDGETS.get(method)
    if cls is None or not callable(getattr(cls, "resolved", None)):
        return None
    return budget_from(cls, budget).resolved()


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise KeyError(f"Unknown method {name!r}; registered methods: {sorted(METHODS)}.")
    return METHODS[name]


from . import scripted, lewm, gcbc, gciql, sb3, dreamer  # noqa: E402,F401  (register the built-in methods)
