"""Goal-conditioned pixel tasks for LeWM, registered with Gymnasium under ``lewm/``.

Importing this package registers every task (once), so ``gym.make("lewm/TwoRoom-v0")``
works; :func:`make_env` is ``gym.make`` with a friendly error for unknown names.
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym

from envs.goal import GoalEnv

__all__ = ["ENV_IDS", "GoalEnv", "make_env"]

# id -> gymnasium.register keyword arguments (entry points are strings: imported lazily).
_REGISTRATIONS: dict[str, dict[str, Any]] = {
    "lewm/TwoRoom-v0": {"entry_point": "envs.tworoom:TwoRoomEnv", "max_episode_steps": 200},
}
ENV_IDS: tuple[str, ...] = tuple(_REGISTRATIONS)

for _env_id, _kwargs in _REGISTRATIONS.items():
    if _env_id not in gym.registry:  # importing twice (or reloading) must not re-register
        gym.register(id=_env_id, **_kwargs)


def make_env(name: str, **kwargs: Any) -> gym.Env:
    """``gym.make(name, **kwargs)``; unknown names raise a ValueError listing :data:`ENV_IDS`.

    Any id registered with Gymnasium works; ``kwargs`` go to the env constructor
    (e.g. ``make_env("lewm/TwoRoom-v0", image_size=224)``).
    """
    if name not in gym.registry:
        close = difflib.get_close_matches(name, list(ENV_IDS) + list(gym.registry), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(f"unknown environment {name!r}; LeWM tasks are {list(ENV_IDS)}.{hint}")
    return gym.make(name, **kwargs)
