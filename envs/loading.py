"""Finding any Gymnasium env by id: ``module:EnvId`` ids, env modules, and whether an env takes ``image_size``.

An env registered outside this package is addressed as Gymnasium's own ``"module:EnvId"`` (the
module is imported first, and registers the id), or its module is imported beforehand with
:func:`import_env_modules` (``--env-module`` on the command line). Every module imported either
way is remembered (:func:`env_modules`), so that the processes this one starts (collection
workers, comparison cells) import the same modules and find the same envs and experts.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any, Iterable

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

__all__ = ["env_modules", "env_spec", "import_env_modules", "import_path", "split_env_id", "takes_argument"]

_IMPORTED: list[str] = []  # modules imported for their envs, in order, each once


def split_env_id(name: str) -> tuple[str | None, str]:
    """``"pkg.mod:ns/Task-v0"`` -> ``("pkg.mod", "ns/Task-v0")``; an id without a module -> ``(None, id)``."""
    module, colon, env_id = name.rpartition(":")
    return (module or None, env_id) if colon else (None, name)


def import_env_modules(modules: str | Iterable[str]) -> list[str]:
    """Import each module (a name, a comma-separated list, or an iterable of either) for the envs and
    experts it registers, and remember it for :func:`env_modules`. Returns the names imported.

    Raises:
        ValueError: a module cannot be imported (the message names it and the import error).
    """
    names = [modules] if isinstance(modules, str) else list(modules)
    out = []
    for name in (n.strip() for item in names for n in item.split(",")):
        if not name:
            continue
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ValueError(f"cannot import env module {name!r} ({e}); install it, or put its directory on "
                             "PYTHONPATH") from None
        if name not in _IMPORTED:
            _IMPORTED.append(name)
        out.append(name)
    return out


def env_modules() -> list[str]:
    """The modules imported by :func:`import_env_modules` and by ``module:EnvId`` ids in this process."""
    return list(_IMPORTED)


def env_spec(name: str, known: Iterable[str] = ()) -> EnvSpec:
    """The registered spec of ``name`` (an id, or ``module:EnvId`` whose module is imported first).

    Raises:
        ValueError: the module cannot be imported, or no env is registered under the id; the message
            lists close matches among ``known`` ids and Gymnasium's registry.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"env id must be a non-empty string such as 'lewm/TwoRoom-v1', got {name!r}")
    module, env_id = split_env_id(name)
    if module is not None:
        import_env_modules([module])
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(known) + list(gym.registry), n=3)
        hint = f" Did you mean {close}?" if close else ""
        where = (f"module {module!r} was imported but registers no env {env_id!r}" if module else
                 f"unknown environment {name!r}")
        raise ValueError(f"{where}; LeWM tasks are {list(known)}. An env registered by another package is "
                         f"addressed as 'module:EnvId' (e.g. 'mypkg.envs:{env_id}') or needs --env-module MODULE."
                         f"{hint}")
    return gym.registry[env_id]


def import_path(path: str) -> Any:
    """The object a ``"module:attr"`` path names (``attr`` may be dotted), importing the module."""
    module, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def takes_argument(spec: EnvSpec, argument: str) -> bool:
    """Whether the entry point of ``spec`` accepts the keyword ``argument``: it names it, or takes ``**kwargs``
    (whose use cannot be seen from outside, so the argument is passed on). Decided from the signature of
    the entry point (its class's ``__init__`` for a class); an entry point without a readable signature
    takes nothing."""
    entry = import_path(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    try:
        params = inspect.signature(entry).parameters
    except (TypeError, ValueError):
        return False
    return argument in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


GYM_MAKE_ARGUMENTS = ("max_episode_steps", "disable_env_checker", "render_mode", "autoreset", "apply_api_compatibility")
"""Keywords ``gym.make`` takes itself (``render_mode`` is passed on only to an env that takes it)."""


def unknown_arguments(spec: EnvSpec, arguments: Iterable[str]) -> list[str]:
    """The names among ``arguments`` that neither the entry point of ``spec`` nor ``gym.make`` takes (none when
    the entry point takes ``**kwargs`` or has no readable signature: then nothing can be told from outside)."""
    entry = import_path(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    try:
        params = inspect.signature(entry).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return [a for a in arguments if a not in params and a not in GYM_MAKE_ARGUMENTS]


def env_arguments(spec: EnvSpec) -> list[str]:
    """The keyword arguments the entry point of ``spec`` names (for error messages; empty if unreadable)."""
    entry = import_path(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    try:
        params = inspect.signature(entry).parameters
    except (TypeError, ValueError):
        return []
    return [n for n, p in params.items() if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
