"""The registry of compared methods: name -> ``method(task, ctx, budget) -> Trained``.

Built in: ``lewm``, ``lewm-nosigreg`` (offline world model + latent planning), ``sb3-ppo``,
``sb3-sac`` (Stable-Baselines3, online), ``dreamerv3`` (sheeprl, online; optional extra
``[dreamer]``), ``random`` and ``expert`` (floor and ceiling). Register your own with
:func:`register` (see :mod:`experiments.baselines.base` for a three-line example).
Optional dependencies are imported only when a method runs, so listing methods costs nothing.
"""

from __future__ import annotations

from typing import Callable

from .base import (CellContext, Method, MethodUnavailable, PredictorActor, Task, Trained, budget_from,
                   load_pairs, pairs_fingerprint, save_pairs)

__all__ = ["METHODS", "register", "get_method", "Task", "CellContext", "Trained", "Method", "PredictorActor",
           "MethodUnavailable", "budget_from", "load_pairs", "save_pairs", "pairs_fingerprint"]

METHODS: dict[str, Method] = {}


def register(name: str) -> Callable[[Method], Method]:
    """Decorator: make ``method(task, ctx, budget) -> Trained`` available as ``name`` in compare.py."""

    def deco(fn: Method) -> Method:
        if name in METHODS and METHODS[name] is not fn:
            raise ValueError(f"A method named {name!r} is already registered.")
        METHODS[name] = fn
        return fn

    return deco


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise KeyError(f"Unknown method {name!r}; registered methods: {sorted(METHODS)}.")
    return METHODS[name]


from . import scripted, lewm, gcbc, gciql, sb3, dreamer  # noqa: E402,F401  (register the built-in methods)
