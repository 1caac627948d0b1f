"""lewm_agent.evaluation.evaluate: what it records per pair."""

from __future__ import annotations

import numpy as np

from lewm_agent import envs
from lewm_agent.envs.tworoom import SUCCESS_RADIUS
from lewm_agent.evaluation import EvalProtocol, StartGoalPair, evaluate


class _Constant:
    """Every env gets the same action each step: (0, 0) stands still, (1, 0) heads right."""

    def __init__(self, action):
        self.action = np.asarray(action, np.float32)

    def reset(self, num_envs=None):
        pass

    def act(self, obs):
        return np.tile(self.action, (len(obs["pixels"]), 1))


def _pairs():
    return [StartGoalPair(0, 0, np.array([0.2, 0.3], np.float32), np.array([0.35, 0.3], np.float32)),
            StartGoalPair(0, 1, np.array([0.2, 0.3], np.float32), np.array([0.2, 0.1], np.float32))]


def _run(action):
    return evaluate(_Constant(action), lambda: envs.make_env("lewm/TwoRoom-v1", image_size=16), _pairs(),
                    EvalProtocol(num_episodes=2, goal_offset=5, budget=12), progress=False)


def test_each_pair_records_how_near_it_came_to_its_goal():
    still = _run([0.0, 0.0]).episodes
    for e, goal_dist in zip(still, (0.15, 0.2)):
        assert not e["success"] and e["steps_to_success"] == -1
        assert np.isclose(e["start_distance"], goal_dist, atol=1e-6)
        assert e["min_distance"] == e["final_distance"] == e["start_distance"]
    right = _run([1.0, 0.0]).episodes
    toward, away = right
    assert toward["success"] and toward["min_distance"] <= SUCCESS_RADIUS < toward["start_distance"]
    assert not away["success"] and away["min_distance"] == away["start_distance"] < away["final_distance"]
