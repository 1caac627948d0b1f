"""Memory of a long-running agent (issue 13, acceptance point 5): resident memory (RSS) over 10,000 ``act()``
calls on one TwoRoom env, and over 10,000 ``predict()`` calls on a vector env of 4, each env stepped with the
agent's actions and reset when its episode ends.

The agent is the ``tiny`` preset's model and planner with random weights (what ``act()`` allocates does not
depend on the weights). The growth reported is that of the current RSS (``VmRSS``) from call 1,000 (after the
allocators' warm-up) to the last call; the acceptance bound is 5%::

    python benchmarks/act_memory.py                 # writes benchmarks/results/act_memory.json
    python benchmarks/act_memory.py --calls 2000    # a quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lewm_agent.envs  # noqa: E402,F401  (registers the lewm/ ids)
from lewm_agent import LeWMAgent  # noqa: E402
from lewm_agent.config import preset, replace  # noqa: E402
from lewm_agent.model import LeWM  # noqa: E402

ENV_ID = "lewm/TwoRoom-v1"
WARM_UP = 1_000  # calls before the reference RSS


def rss_mib() -> float:
    """Current resident memory of this process (MiB, ``VmRSS``)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def make_agent(image_size: int) -> LeWMAgent:
    p = preset("tiny")
    env = gym.make(ENV_ID, image_size=image_size)
    space = env.action_space
    env.close()
    torch.manual_seed(0)
    model = LeWM(replace(p.model, image_size=image_size, action_dim=space.shape[0]))
    zeros, ones = np.zeros(space.shape), np.ones(space.shape)
    return LeWMAgent(model, zeros, ones, space.low, space.high, (image_size, image_size, 3), p.plan, device="cpu")


def measure(agent: LeWMAgent, num_envs: int, calls: int, every: int) -> dict:
    """RSS every ``every`` calls while ``agent`` acts in ``num_envs`` envs (``act`` for 1, ``predict`` else)."""
    if num_envs == 1:
        env = gym.make(ENV_ID, image_size=agent.obs_shape[0])
        obs, _ = env.reset(seed=0)
    else:
        env = gym.vector.SyncVectorEnv([lambda: gym.make(ENV_ID, image_size=agent.obs_shape[0])] * num_envs)
        obs, _ = env.reset(seed=list(range(num_envs)))
    agent.reset()
    starts = np.ones(num_envs, bool)
    series, episodes = [], 0
    t0 = time.perf_counter()
    for call in range(1, calls + 1):
        if num_envs == 1:
            action = agent.act(obs)
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                obs, _ = env.reset()
                agent.reset()
                episodes += 1
        else:
            action, _ = agent.predict(obs, episode_start=starts)
            obs, _, terminated, truncated, _ = env.step(action)
            starts = terminated | truncated  # Gymnasium resets these envs on the next step()
            episodes += int(starts.sum())
        if call == 1 or call % every == 0:
            series.append([call, round(rss_mib(), 2)])
    seconds = time.perf_counter() - t0
    env.close()
    at = dict(series)
    growth = (at[calls] - at[WARM_UP]) / at[WARM_UP]
    return {"envs": num_envs, "calls": calls, "episodes_ended": episodes, "seconds": round(seconds, 1),
            "rss_mib_at_1000": at[WARM_UP], "rss_mib_at_end": at[calls],
            "growth_after_1000_percent": round(100 * growth, 3), "rss_mib_every": series}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=10_000, help="calls of each loop (default 10,000)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "act_memory.json")
    args = p.parse_args(argv)
    if args.calls < 2 * WARM_UP:
        p.error(f"--calls {args.calls} must be >= {2 * WARM_UP} (growth is measured after call {WARM_UP})")
    torch.set_num_threads(args.threads)
    agent = make_agent(args.image_size)
    rows = []
    for num_envs in (1, 4):
        row = measure(agent, num_envs, args.calls, every=WARM_UP // 2)
        rows.append(row)
        print(f"{num_envs} env{'s' if num_envs > 1 else ''} ({'act' if num_envs == 1 else 'predict'}): "
              f"RSS {row['rss_mib_at_1000']:.1f} MiB at call 1,000 -> {row['rss_mib_at_end']:.1f} MiB at call "
              f"{args.calls:,} ({row['growth_after_1000_percent']:+.2f}%), {row['seconds']:.0f} s", flush=True)
    result = {"command": "python benchmarks/act_memory.py" + (f" --calls {args.calls}" if args.calls != 10_000 else ""),
              "env": ENV_ID, "image_size": args.image_size, "preset": "tiny", "threads": args.threads,
              "torch": torch.__version__, "machine": platform.processor() or platform.machine(), "loops": rows,
              "bound_percent": 5.0, "within_bound": all(r["growth_after_1000_percent"] < 5.0 for r in rows)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if result["within_bound"] else 1


if __name__ == "__main__":
    sys.exit(main())
