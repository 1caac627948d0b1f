"""The expert registry: which scripted policy is the ``"expert"`` of which env.

An expert is the privileged, scripted policy that collects an env's offline data
(``lewm collect --policy expert``) and is the ``expert`` row of a comparison. It reads the physical
state and goal from ``info["state"]`` / ``info["goal_state"]`` and follows the
:class:`~lewm_agent.envs.policies.Policy` protocol (``reset(obs, info)``, ``policy(obs, info) -> action``).

Register one for any env, built in or not, with :func:`register_expert` (importable from
``lewm_agent.envs.policies`` too), typically at the bottom of the module that registers the env::

    from lewm_agent.envs.policies import register_expert
    register_expert(MyGoalEnv, MyExpert)                 # by env class (subclasses inherit it)
    register_expert("mypkg/MyTask-v0", make_my_expert)   # or by Gymnasium id

The factory is called as ``factory(env, seed=seed, **policy_kwargs)``. Targets and factories may
be given as ``"module:Name"`` strings, imported only when the expert is first built: that is how
the built-in suites register theirs (``envs/__init__.py``), so no suite's simulator is imported
before one of its envs is made. Each built-in expert lives beside its env
(``envs/<suite>_expert.py``).
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym

from lewm_agent.envs.loading import import_path

__all__ = ["register_expert", "find_expert", "registered_experts"]

ExpertFactory = Callable[..., Any]

_BY_CLASS: dict[str, ExpertFactory | str] = {}  # "module:QualName" of an env class -> factory
_BY_ID: dict[str, ExpertFactory | str] = {}  # Gymnasium env id (no module prefix) -> factory


def _class_key(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _is_class_path(text: str) -> bool:
    """Whether ``text`` is ``"module:QualName"`` (dotted identifiers on both sides), not an env id."""
    module, colon, name = text.partition(":")
    dotted = lambda s: bool(s) and all(part.isidentifier() for part in s.split("."))  # noqa: E731
    return bool(colon) and dotted(module) and dotted(name)


def _name(factory: ExpertFactory | str) -> str:
    """A stable name of a factory, to tell a re-registration of the same one from a conflicting one."""
    if isinstance(factory, str):
        return factory
    return f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', repr(factory))}"


def register_expert(env: type | str, factory: ExpertFactory | str, *, replace: bool = False) -> None:
    """Make ``factory`` the ``"expert"`` policy of ``env`` (used by ``make_policy("expert", env)``).

    Args:
        env: an env class (matched through the unwrapped env's class hierarchy, so subclasses get
            it too), a ``"module:ClassName"`` path of one (nothing is imported), or a Gymnasium env
            id such as ``"mypkg/MyTask-v0"`` (a ``"module:"`` prefix is dropped; matched against
            ``env.spec.id``, and it takes precedence over a class's expert).
        factory: ``factory(env, seed=seed, **policy_kwargs) -> policy`` (an expert class whose
            ``__init__`` takes ``(env, ..., seed=...)`` fits), or a ``"module:attr"`` path of one,
            imported on first use.
        replace: allow replacing another factory registered for the same env.

    Raises:
        TypeError: ``env`` or ``factory`` is of the wrong kind.
        ValueError: another factory is registered for ``env`` and ``replace`` is False.
    """
    if isinstance(env, type):
        table, key = _BY_CLASS, _class_key(env)
    elif isinstance(env, str) and env:
        if _is_class_path(env):
            table, key = _BY_CLASS, env
        else:
            table, key = _BY_ID, env.rpartition(":")[2] if ":" in env else env
    else:
        raise TypeError(f"register_expert: env must be an env class, 'module:ClassName' or an env id, got {env!r}")
    if not (callable(factory) or (isinstance(factory, str) and _is_class_path(factory))):
        raise TypeError(f"register_expert: factory must be callable or a 'module:attr' path, got {factory!r}")
    old = table.get(key)
    if old is not None and not replace and _name(old) != _name(factory):
        raise ValueError(f"an expert is already registered for {key} ({_name(old)}); "
                         f"pass replace=True to replace it with {_name(factory)}")
    table[key] = factory


def _load(table: dict[str, ExpertFactory | str], key: str) -> ExpertFactory:
    """The factory under ``key``, importing a ``"module:attr"`` path once."""
    factory = table[key]
    if isinstance(factory, str):
        table[key] = factory = import_path(factory)
    return factory


def find_expert(env: gym.Env) -> ExpertFactory | None:
    """The factory registered for ``env`` (wrapped or not): by its id first, then by the first class
    of its unwrapped class hierarchy that has one; None if there is none."""
    spec = getattr(env, "spec", None)
    env_id = getattr(spec, "id", None)
    if env_id in _BY_ID:
        return _load(_BY_ID, env_id)
    for cls in type(env.unwrapped).__mro__:
        if _class_key(cls) in _BY_CLASS:
            return _load(_BY_CLASS, _class_key(cls))
    return None


def registered_experts() -> list[str]:
    """Every env class path and env id with a registered expert (for messages), sorted."""
    return sorted(_BY_CLASS) + sorted(_BY_ID)
