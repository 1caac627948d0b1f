"""The floor and the ceiling: uniform random actions, and the task's scripted collection expert.

Neither learns. The expert is privileged: it reads the physical state and goal state from each
env's ``info`` (the same noisy policy that collected the offline data), so its success rate is
what the data's own demonstrations achieve on the evaluation pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lewm_agent.evaluation import RandomActor

from . import register
from .base import CellContext, MethodUnavailable, Task, Trained, budget_from

__all__ = ["ExpertActor", "random_method", "expert_method"]


class ExpertActor:
    """Batched wrapper of one :mod:`lewm_agent.envs.policies` expert per env (seeded ``seed + i``).

    ``act(obs, infos)`` with obs ``pixels``/``goal`` (N, H, W, 3) and each env's latest info
    (``state``, ``goal_state``) -> (N, A) float32.
    """

    needs_info = True

    def __init__(self, env: Any, seed: int = 0):
        from lewm_agent.envs.policies import make_policy

        try:
            make_policy("expert", env, seed=seed)
        except KeyError as e:
            raise MethodUnavailable(str(e).strip('"')) from None
        self.env, self.seed = env, seed
        self._make = make_policy
        self._envs: list[Any] | None = None
        self._policies: list[Any] = []
        self._started: list[bool] = []

    def bind(self, envs: list[Any]) -> None:
        """Build each pair's policy on the env that pair steps: some experts (OGBench's cube oracle) read
        the live simulator of the env they were made for, not only ``info``."""
        self._envs = list(envs)

    def reset(self, num_envs: int | None = None) -> None:
        n = num_envs or 1
        envs = self._envs if self._envs is not None and len(self._envs) == n else [self.env] * n
        self._policies = [self._make("expert", env, seed=self.seed + i) for i, env in enumerate(envs)]
        self._started = [False] * n

    def act(self, obs: dict[str, np.ndarray], infos: list[dict[str, Any]]) -> np.ndarray:
        n = np.asarray(obs["pixels"]).shape[0]
        if len(self._policies) != n:
            self.reset(n)
        actions = []
        for i in range(n):
            one = {"pixels": obs["pixels"][i], "goal": obs["goal"][i]}
            if not self._started[i]:
                self._policies[i].reset(one, infos[i])
                self._started[i] = True
            actions.append(np.asarray(self._policies[i](one, infos[i]), np.float32))
        return np.stack(actions)


@dataclass
class NoBudget:
    """The scripted methods train nothing: their budget has no settings (``--set random.KEY=...`` is refused)."""


@register("random", budget=NoBudget)
def random_method(task: Task, ctx: CellContext, budget: dict[str, Any]) -> Trained:
    """Uniform random actions in the task's action space, seeded with the protocol's seed."""
    budget_from(NoBudget, budget)
    env = task.make_env()
    low, high = env.action_space.low, env.action_space.high
    env.close()
    return Trained(actor=RandomActor(low, high, seed=task.protocol.seed), data_used=0, data_kind="none",
                   train_seconds=0.0)


@register("expert", budget=NoBudget)
def expert_method(task: Task, ctx: CellContext, budget: dict[str, Any]) -> Trained:
    """The task's scripted collection policy (privileged: reads the state), seeded with the protocol's seed."""
    budget_from(NoBudget, budget)
    return Trained(actor=ExpertActor(task.make_env(), seed=task.protocol.seed), data_used=0, data_kind="none",
                   train_seconds=0.0, extra={"privileged": "reads info['state'] and info['goal_state']"})


