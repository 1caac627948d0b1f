"""A goal env from "another package", for the tests: ``import lewm_agent.envs`` does not load this module.

Addressed as ``foreign_goal_env:foreign/Dot-v0`` with this directory on ``sys.path``. It meets the
goal-env contract by hand (no :class:`lewm_agent.envs.goal.GoalEnv`), renders 40 x 40 frames and takes no
``image_size`` (so ``lewm_agent.envs.make_env`` resizes its frames), and registers its expert with
:func:`lewm_agent.envs.policies.register_expert`. ``foreign/DotIgnoresGoal-v0`` is the same env with the
flaw ``lewm check-env`` must catch: its reset reads the goal from ``options["target_state"]`` and
draws a random one otherwise, ignoring ``goal_state``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lewm_agent.envs.policies import register_expert

SIZE = 40  # native frame side, pixels
STEP = 0.02  # arena units per step at |action| = 1 per axis
SUCCESS = 0.06  # arena units


class DotEnv(gym.Env):
    """A red dot on a grey square; state (x, y) in [0.05, 0.95]^2; the goal image shows the dot at the goal."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, goal_option: str = "goal_state", render_mode: str | None = "rgb_array") -> None:
        image = spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
        self.observation_space = spaces.Dict({"pixels": image, "goal": image})
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.goal_option = goal_option
        self.render_mode = render_mode
        self.state = np.zeros(2, np.float32)
        self.goal_state = np.zeros(2, np.float32)

    def _draw(self, state: np.ndarray) -> np.ndarray:
        yy, xx = np.mgrid[0:SIZE, 0:SIZE]
        frame = np.full((SIZE, SIZE, 3), 200, np.uint8)
        frame[(xx - state[0] * SIZE) ** 2 + (yy - state[1] * SIZE) ** 2 <= 9.0] = (220, 30, 30)
        return frame

    def _sample(self) -> np.ndarray:
        return self.np_random.uniform(0.1, 0.9, 2).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        distance = float(np.linalg.norm(self.state - self.goal_state))
        return {"state": self.state.copy(), "goal_state": self.goal_state.copy(), "is_success": distance < SUCCESS,
                "distance": distance}

    def _obs(self) -> dict[str, np.ndarray]:
        return {"pixels": self._draw(self.state), "goal": self._draw(self.goal_state)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        start = options.get("state")
        self.state = self._sample() if start is None else np.asarray(start, np.float32).copy()
        goal = options.get(self.goal_option)
        while goal is None:  # a goal at least 0.4 away, so that episodes last ~40 expert steps
            goal = self._sample()
            goal = goal if np.linalg.norm(goal - self.state) > 0.4 else None
        self.goal_state = np.asarray(goal, np.float32).copy()
        return self._obs(), self._info()

    def step(self, action):
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        self.state = np.clip(self.state + STEP * action, 0.05, 0.95).astype(np.float32)
        info = self._info()
        return self._obs(), -info["distance"], bool(info["is_success"]), False, info

    def render(self) -> np.ndarray:
        return self._draw(self.state)


class DotExpert:
    """Heads for the goal at half speed, plus Gaussian action noise of std ``noise_std``."""

    def __init__(self, env: gym.Env, noise_std: float = 0.3, seed: int | None = 0) -> None:
        self.noise_std = noise_std
        self.rng = np.random.default_rng(seed)

    def reset(self, obs: dict, info: dict) -> None:
        pass

    def __call__(self, obs: dict, info: dict) -> np.ndarray:
        delta = np.asarray(info["goal_state"]) - np.asarray(info["state"])
        action = 0.5 * delta / max(float(np.linalg.norm(delta)), 1e-9) + self.rng.normal(0.0, self.noise_std, 2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


for _id, _kwargs in (("foreign/Dot-v0", {}), ("foreign/DotIgnoresGoal-v0", {"goal_option": "target_state"})):
    if _id not in gym.registry:
        gym.register(_id, entry_point=DotEnv, max_episode_steps=100, kwargs=_kwargs)
register_expert(DotEnv, DotExpert)
