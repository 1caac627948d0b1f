"""Frames per second of every task: env.step with rendering, and `lewm collect` throughput.

For each task id: the median time of ``env.step`` (physics + rendering of the 64x64 frame)
over ``--steps`` random actions, and the frames per second of :func:`lewm_agent.data.collect`
with the expert (random where a task has none) in 1 and ``--workers`` processes (episodes
capped at ``--max-steps``; the rate counts written frames over wall time, including each
worker's start-up of about 10 s, so small collections gain nothing from workers).

    python benchmarks/collect_fps.py                       # every task, table on stdout
    python benchmarks/collect_fps.py --envs lewm/Reacher-v0 --out benchmarks/results

Run it with nothing else on the machine: the numbers are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from lewm_agent import envs
from lewm_agent.envs.policies import make_policy
from lewm_agent.data import collect


def step_ms(env_id: str, image_size: int, steps: int) -> tuple[float, float]:
    """(median ms per env.step including the render, ms per reset) with random actions."""
    env = envs.make_env(env_id, image_size=image_size)
    try:
        env.action_space.seed(0)
        tic = time.perf_counter()
        env.reset(seed=0)
        reset_ms = 1000 * (time.perf_counter() - tic)
        times = []
        for _ in range(steps):
            tic = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            times.append(time.perf_counter() - tic)
            if terminated or truncated:
                env.reset()
        return 1000 * float(np.median(times)), reset_ms
    finally:
        env.close()


def collect_fps(env_id: str, image_size: int, episodes: int, max_steps: int, workers: int, policy: str) -> float:
    """Frames written per second of wall time by ``collect`` (process start-up included)."""
    with tempfile.TemporaryDirectory() as tmp:
        tic = time.perf_counter()
        info = collect(env_id, Path(tmp) / "fps.h5", num_episodes=episodes, policy=policy, seed=0,
                       env_kwargs={"image_size": image_size}, max_steps=max_steps, progress=False, workers=workers)
        return info.num_frames / (time.perf_counter() - tic)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="*", default=list(envs.GOAL_ENV_IDS) + list(envs.REWARD_ENV_IDS))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100, help="env.step calls timed per task")
    parser.add_argument("--episodes", type=int, default=12, help="episodes collected per measurement")
    parser.add_argument("--max-steps", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None, help="directory for collect_fps.json / collect_fps.md")
    args = parser.parse_args(argv)

    rows = []
    for env_id in args.envs:
        ms, reset_ms = step_ms(env_id, args.image_size, args.steps)
        policy = "random"
        if env_id in envs.GOAL_ENV_IDS:
            probe = envs.make_env(env_id, image_size=args.image_size)
            try:
                make_policy("expert", probe)
                policy = "expert"
            except KeyError:  # e.g. antmaze: no scripted locomotion
                pass
            finally:
                probe.close()
        one = collect_fps(env_id, args.image_size, args.episodes, args.max_steps, 1, policy)
        many = collect_fps(env_id, args.image_size, args.episodes, args.max_steps, args.workers, policy)
        rows.append({"env_id": env_id, "step_ms": ms, "step_fps": 1000 / ms, "reset_ms": reset_ms, "policy": policy,
                     "collect_fps_1": one, f"collect_fps_{args.workers}": many})
        print(f"{env_id}: step {ms:.2f} ms ({1000 / ms:.0f} fps), reset {reset_ms:.0f} ms, collect {one:.0f} fps "
              f"(1 process), {many:.0f} fps ({args.workers} processes)", flush=True)

    lines = ["| task | env.step + render, ms (fps) | reset, ms | collect fps, 1 process | "
             f"collect fps, {args.workers} processes |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['env_id']}` | {r['step_ms']:.2f} ({r['step_fps']:.0f}) | {r['reset_ms']:.0f} | "
                     f"{r['collect_fps_1']:.0f} | {r[f'collect_fps_{args.workers}']:.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "collect_fps.json").write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=2))
        (out / "collect_fps.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
