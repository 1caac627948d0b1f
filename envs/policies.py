"""Data-collection policies: a uniform random policy for any env, and each env's registered expert.

A policy follows the :class:`Policy` protocol: ``reset(obs, info)`` at the start of each
episode, then ``policy(obs, info) -> action`` every step. Experts read the physical state and
goal from ``info["state"]`` / ``info["goal_state"]`` (the :class:`~lewm_agent.envs.goal.GoalEnv` contract).

``make_policy(name, env, seed)`` builds one by name: ``"random"`` for any env, ``"expert"``
through the expert registry (:mod:`lewm_agent.envs.experts`): :func:`register_expert` gives any env, built in
or foreign, its expert. The built-in experts live beside their envs (``envs/<suite>_expert.py``);
their classes stay importable from here (``from lewm_agent.envs.policies import TwoRoomExpert``), imported
only when asked for, so importing this module imports no suite.
"""

from __future__ import annotations

import copy
import importlib
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from lewm_agent.envs.experts import find_expert, register_expert, registered_experts

__all__ = ["Policy", "RandomPolicy", "POLICY_NAMES", "make_policy", "register_expert"]

# Expert classes that used to live here -> the module beside their env that holds them now.
_MOVED = {
    "TwoRoomExpert": "lewm_agent.envs.tworoom_expert",
    "ReacherExpert": "lewm_agent.envs.dmc_expert",
    "PushTExpert": "lewm_agent.envs.pusht_expert",
    "MetaWorldExpert": "lewm_agent.envs.metaworld_expert",
    "OGBenchCubeExpert": "lewm_agent.envs.ogbench_expert",
    "OGBenchMazeExpert": "lewm_agent.envs.ogbench_expert",
}


def __getattr__(name: str) -> Any:
    """``from lewm_agent.envs.policies import TwoRoomExpert`` (and the other moved experts) keeps working."""
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@runtime_checkable
class Policy(Protocol):
    """What a data-collection policy provides."""

    def reset(self, obs: dict, info: dict) -> None:
        """Called after every ``env.reset``."""

    def __call__(self, obs: dict, info: dict) -> np.ndarray:
        """The action for the current step (an element of the env's action space)."""


class RandomPolicy:
    """Uniform random actions from ``action_space``, seeded independently of the env."""

    def __init__(self, action_space: gym.Space, seed: int | None = 0) -> None:
        self.action_space = copy.deepcopy(action_space)
        self.action_space.seed(seed)

    def reset(self, obs: dict, info: dict) -> None:
        pass

    def __call__(self, obs: dict, info: dict) -> np.ndarray:
        return np.asarray(self.action_space.sample())


POLICY_NAMES = ("expert", "random")


def make_policy(name: str, env: gym.Env, seed: int | None = 0, **kwargs: Any) -> Policy:
    """Build the data-collection policy ``name`` (``"expert"`` or ``"random"``) for ``env``.

    ``kwargs`` go to the policy's constructor (e.g. ``noise_std`` for an expert), so a typo
    raises a TypeError there. Raises KeyError for an unknown name or an env with no expert.
    """
    if name == "random":
        return RandomPolicy(env.action_space, seed=seed, **kwargs)
    if name == "expert":
        factory = find_expert(env)
        if factory is None:
            spec = getattr(env, "spec", None)
            raise KeyError(
                f"no 'expert' policy for env {getattr(spec, 'id', None) or type(env.unwrapped).__name__} "
                f"(class {type(env.unwrapped).__module__}.{type(env.unwrapped).__qualname__}); experts exist for "
                f"{registered_experts()}. Use policy='random', or register one with "
                "lewm_agent.envs.policies.register_expert(EnvClass_or_id, factory) (see docs/foreign_envs.md)"
            )
        return factory(env, seed=seed, **kwargs)
    raise KeyError(f"unknown policy {name!r}; known policies: {list(POLICY_NAMES)}")
