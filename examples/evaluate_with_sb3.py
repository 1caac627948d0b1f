"""Evaluate a LeWM agent with Stable-Baselines3's evaluate_policy on a VecEnv of TwoRoom tasks.

    python examples/evaluate_with_sb3.py runs/tworoom-cpu/agent

The agent follows SB3's `predict` protocol and plans for all envs of the VecEnv in one batch.
"""

import argparse

import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import lewm_agent.envs  # noqa: F401
from lewm_agent import LeWMAgent

parser = argparse.ArgumentParser()
parser.add_argument("agent")
parser.add_argument("--n-envs", type=int, default=8)
parser.add_argument("--episodes", type=int, default=16)
args = parser.parse_args()

agent = LeWMAgent.load(args.agent)
vec_env = make_vec_env("lewm/TwoRoom-v1", n_envs=args.n_envs, seed=0,
                       env_kwargs={"image_size": agent.obs_shape[0], "max_episode_steps": 100})
successes = []


def record_success(locals_, globals_):
    if locals_["done"]:
        successes.append(bool(locals_["info"].get("is_success", False)))


rewards, lengths = evaluate_policy(agent, vec_env, n_eval_episodes=args.episodes, callback=record_success,
                                   return_episode_rewards=True)
print(f"success rate {np.mean(successes):.2f} over {len(successes)} episodes; mean length {np.mean(lengths):.1f}")
print(f"planning: {agent.seconds_per_plan * 1000:.1f} ms per env decision")
