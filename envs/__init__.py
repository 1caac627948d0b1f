"""Goal-conditioned pixel tasks for LeWM, registered with Gymnasium under ``lewm/``.

Importing this package registers every task (once), so ``gym.make("lewm/TwoRoom-v1")``
works, and registers each task's scripted expert (:func:`lewm_agent.envs.policies.register_expert`, by
``"module:Name"`` paths). Suites other than TwoRoom import their simulator only when one of their
envs is made (entry points are strings), and name the pip extra to install when it is missing.

:func:`make_env` is the project's ``gym.make``: it takes any registered id, Gymnasium's
``"module:EnvId"`` form for an env registered by another package (see ``docs/foreign_envs.md``),
a friendly error for unknown names, and ``image_size`` for any env (passed to a constructor that
takes it, else the frames are resized).

MuJoCo renders headless through EGL: ``MUJOCO_GL`` defaults to ``egl`` here, which only takes
effect if this package is imported before ``mujoco``/``dm_control`` (set it yourself otherwise).
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

from typing import Any  # noqa: E402

import gymnasium as gym  # noqa: E402

from lewm_agent.envs.experts import register_expert  # noqa: E402
from lewm_agent.envs.goal import GoalEnv  # noqa: E402
from lewm_agent.envs.loading import (env_arguments, env_modules, env_spec, import_env_modules,  # noqa: E402
                                    takes_argument, unknown_arguments)
from lewm_agent.envs.resize import ResizeFrames  # noqa: E402

__all__ = ["ENV_IDS", "GOAL_ENV_IDS", "REWARD_ENV_IDS", "GoalEnv", "env_modules", "import_env_modules", "make_env"]

DMC_REWARD_TASKS = ("cartpole-swingup", "walker-walk", "cheetah-run", "reacher-easy")
METAWORLD_TASKS = ("reach-v3", "push-v3", "pick-place-v3")
OGBENCH_TASKS = {  # lewm id suffix -> OGBench env name
    "cube-single": "visual-cube-single-v0",
    "pointmaze-medium": "pointmaze-medium-v0",
    "antmaze-medium": "visual-antmaze-medium-navigate-v0",
}

# id -> gymnasium.register keyword arguments (entry points are strings: imported lazily).
_GOAL_REGISTRATIONS: dict[str, dict[str, Any]] = {
    # v1: the LeWM paper's drawing (the reference's Gaussian dot, no glow), the default task since
    # lewm-agent 0.2; v0: the earlier default (a disc with a soft glow), kept so that files and agents
    # made with it still evaluate on the same images.
    "lewm/TwoRoom-v1": {"entry_point": "lewm_agent.envs.tworoom:TwoRoomEnv", "max_episode_steps": 200,
                        "kwargs": {"glow": 0.0, "dot": "gaussian"}},
    "lewm/TwoRoom-v0": {"entry_point": "lewm_agent.envs.tworoom:TwoRoomEnv", "max_episode_steps": 200},
    "lewm/Reacher-v0": {"entry_point": "lewm_agent.envs.dmc:ReacherGoalEnv", "max_episode_steps": 200},
    **{
        f"lewm/MetaWorld-{task[:-3]}-v3": {
            "entry_point": "lewm_agent.envs.metaworld:MetaWorldGoalEnv", "max_episode_steps": 200,
            "kwargs": {"task": task},
        }
        for task in METAWORLD_TASKS
    },
    **{
        f"lewm/OGBench-{suffix}-v0": {
            "entry_point": "lewm_agent.envs.ogbench:OGBenchGoalEnv",
            "max_episode_steps": 200 if "cube" in suffix else 500,  # OGBench's own maze tasks need > 200
            "kwargs": {"name": name},
        }
        for suffix, name in OGBENCH_TASKS.items()
    },
    "lewm/PushT-v0": {"entry_point": "lewm_agent.envs.pusht:PushTGoalEnv", "max_episode_steps": 300},
    # the LeWM reference's PushT control (stable-worldmodel's swm/PushT-v1): relative target offsets
    "lewm/PushT-v1": {"entry_point": "lewm_agent.envs.pusht:PushTGoalEnv", "max_episode_steps": 300,
                      "kwargs": {"relative": True}},
}
# Generic entry points: any MT1 task (`task=`), any OGBench env (`name=`), any DMC task (`task=`).
_GENERIC_REGISTRATIONS: dict[str, dict[str, Any]] = {
    "lewm/MetaWorld-v0": {"entry_point": "lewm_agent.envs.metaworld:MetaWorldGoalEnv", "max_episode_steps": 200},
    "lewm/OGBench-v0": {"entry_point": "lewm_agent.envs.ogbench:OGBenchGoalEnv", "max_episode_steps": 500},
    "lewm/DMC-v0": {"entry_point": "lewm_agent.envs.dmc:make_dmc_pixels"},
}
# Reward-based pixel tasks (DeepMind Control's own reward; no goal image).
_REWARD_REGISTRATIONS: dict[str, dict[str, Any]] = {
    f"lewm/DMC-{task}-v0": {"entry_point": "lewm_agent.envs.dmc:make_dmc_pixels", "kwargs": {"task": task}}
    for task in DMC_REWARD_TASKS
}
_REGISTRATIONS = {**_GOAL_REGISTRATIONS, **_GENERIC_REGISTRATIONS, **_REWARD_REGISTRATIONS}
GOAL_ENV_IDS: tuple[str, ...] = tuple(_GOAL_REGISTRATIONS)
REWARD_ENV_IDS: tuple[str, ...] = tuple(_REWARD_REGISTRATIONS)
ENV_IDS: tuple[str, ...] = GOAL_ENV_IDS + tuple(_GENERIC_REGISTRATIONS) + REWARD_ENV_IDS

for _env_id, _kwargs in _REGISTRATIONS.items():
    if _env_id not in gym.registry:  # importing twice (or reloading) must not re-register
        gym.register(id=_env_id, **_kwargs)


# Each built-in suite's expert (envs/<suite>_expert.py), by paths: imported when first built.
_EXPERTS = {
    "lewm_agent.envs.tworoom:TwoRoomEnv": "lewm_agent.envs.tworoom_expert:TwoRoomExpert",
    "lewm_agent.envs.dmc:ReacherGoalEnv": "lewm_agent.envs.dmc_expert:ReacherExpert",
    "lewm_agent.envs.metaworld:MetaWorldGoalEnv": "lewm_agent.envs.metaworld_expert:MetaWorldExpert",
    "lewm_agent.envs.ogbench:OGBenchGoalEnv": "lewm_agent.envs.ogbench_expert:ogbench_expert",
    "lewm_agent.envs.pusht:PushTGoalEnv": "lewm_agent.envs.pusht_expert:PushTExpert",
}
for _env_class, _factory in _EXPERTS.items():
    register_expert(_env_class, _factory)


def make_env(name: str, **kwargs: Any) -> gym.Env:
    """``gym.make(name, **kwargs)`` for any registered id, or ``"module:EnvId"`` (``module`` imported first).

    ``kwargs`` go to the env constructor (e.g. ``make_env("lewm/TwoRoom-v1", image_size=224)``),
    except ``image_size`` (side of the square frames, pixels) when the registered entry point does
    not take it (no such parameter and no ``**kwargs``): the env is then made without it and its
    frames (``obs["pixels"]``, ``obs["goal"]``, ``render()``) are resized by :class:`ResizeFrames`.

    Raises:
        ValueError: unknown id (listing :data:`ENV_IDS` and close matches), a module that cannot be imported, or
            an argument the env does not take (listing those it does).
    """
    spec = env_spec(name, known=ENV_IDS)
    unknown = unknown_arguments(spec, [k for k in kwargs if k != "image_size"])
    if unknown:
        raise ValueError(f"env {name} takes no argument {unknown[0]!r} (env kwargs); its arguments: "
                         f"{', '.join(env_arguments(spec)) or 'none'}.")
    size = kwargs.get("image_size")
    if size is None or takes_argument(spec, "image_size"):
        return gym.make(name, **kwargs)
    kwargs.pop("image_size")
    env = gym.make(name, **kwargs)
    return ResizeFrames(env, size)
