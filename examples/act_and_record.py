"""Load a trained agent, act toward a goal image in TwoRoom, and record a video.

    python examples/act_and_record.py runs/tworoom-cpu/agent --out tworoom.mp4
"""

import argparse

import gymnasium as gym

import lewm_agent.envs  # noqa: F401  (registers lewm/TwoRoom-v1)
from lewm_agent import LeWMAgent
from lewm_agent.video import side_by_side, write_video

parser = argparse.ArgumentParser()
parser.add_argument("agent", help="agent directory written by `lewm train` / `lewm run`")
parser.add_argument("--out", default="tworoom.mp4")
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

agent = LeWMAgent.load(args.agent)  # device="auto": CUDA if available
size = agent.obs_shape[0]
env = gym.make("lewm/TwoRoom-v1", image_size=size)
obs, info = env.reset(seed=args.seed)  # random start and goal; the goal image is obs["goal"]
agent.reset()
frames = [side_by_side(obs["pixels"], obs["goal"])]
for t in range(args.steps):
    action = agent.act(obs)
    obs, reward, terminated, truncated, info = env.step(action)
    frames.append(side_by_side(obs["pixels"], obs["goal"], border=(40, 200, 40) if info["is_success"] else None))
    if terminated or truncated:
        break
print(f"success={info['is_success']} after {t + 1} steps; distance {info['distance']:.3f}")
print(f"wrote {write_video(args.out, frames)}")
