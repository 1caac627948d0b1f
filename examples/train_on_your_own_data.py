"""Train LeWM on your own HDF5 episode file and plan with it.

The file needs the reference tooling's columns (see docs/ARCHITECTURE.md):
  pixels (N, H, W, 3) uint8, action (N, A) float32 (each episode's last row is never used;
  EpisodeWriter makes it NaN), ep_len (E,), ep_offset (E,), optionally state (N, S). A file from the
  LeWM reference tooling (stable-worldmodel) has them and trains as it is (README, "Using the pieces").
This script first writes such a file from your own rollouts (here: random actions in TwoRoom)
with EpisodeWriter, then trains the `tiny` preset on it for a minute and plans one action.

    python examples/train_on_your_own_data.py --out runs/my-data
"""

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np

import lewm_agent.envs  # noqa: F401
from lewm_agent import LeWMAgent, preset
from lewm_agent.config import replace
from lewm_agent.data import EpisodeWriter, validate_episode_file
from lewm_agent.train import train

parser = argparse.ArgumentParser()
parser.add_argument("--out", default="runs/my-data")
parser.add_argument("--episodes", type=int, default=30)
parser.add_argument("--steps", type=int, default=200)
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

# 1. your rollouts -> an episode file (written atomically)
env = gym.make("lewm/TwoRoom-v1", image_size=32)
rng = np.random.default_rng(0)
attrs = {"env_id": "lewm/TwoRoom-v1", "env_kwargs": '{"image_size": 32}', "image_size": 32,
         "action_low": env.action_space.low, "action_high": env.action_space.high, "policy": "my-random", "seed": 0}
with EpisodeWriter(out / "my_episodes.h5", attrs=attrs) as writer:
    for ep in range(args.episodes):
        obs, info = env.reset(seed=ep)
        pixels, actions, states = [obs["pixels"]], [], [info["state"]]
        for t in range(60):
            a = rng.uniform(-1, 1, size=2).astype(np.float32)
            obs, _, terminated, truncated, info = env.step(a)
            actions.append(a)
            pixels.append(obs["pixels"])
            states.append(info["state"])
            if terminated or truncated:
                break
        actions.append(np.full(2, np.nan, np.float32))  # no action from the last frame
        writer.add_episode(np.stack(pixels), np.stack(actions), np.stack(states))
print(validate_episode_file(out / "my_episodes.h5"))

# 2. train (the `tiny` preset with 32x32 inputs; use `cpu` or `paper` for real work)
p = preset("tiny")
# overwrite=True: running the example again replaces its run (without it, an existing run is refused)
result = train(out / "my_episodes.h5", out / "run", p.model, replace(p.train, steps=args.steps), p.plan, overwrite=True)

# 3. plan
agent = LeWMAgent.load(result.agent_dir)
obs, _ = env.reset(seed=123)
print("first action toward the goal image:", agent.act(obs))
