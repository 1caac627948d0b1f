"""The measurements behind the per-device defaults: rollout method x precision x envs, and bf16 training.

    python benchmarks/precision_matrix.py --device cuda          # on a GPU machine
    python benchmarks/precision_matrix.py --device cpu --train   # on a CPU (2 threads)

Planning rows time one CEM plan (:meth:`LeWMAgent.plan_latents`, horizon 5, a full history
window) with the rollout forced to ``cached`` or ``windows`` (:meth:`LeWM.rollout_samples`) in
fp32 and bf16, for 1 and 8 envs; training rows (``--train``) time optimiser steps in fp32 and
bf16 through ``benchmarks/train_speed.py``. Prints a markdown table and writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from speed import _agent, _inputs, _sync  # noqa: E402

from lewm_agent.files import atomic_write_json  # noqa: E402


def plan_row(preset: str, samples: int, iterations: int, envs: int, precision: str, method: str, device: str,
             repeats: int) -> dict:
    agent = _agent(preset, samples, iterations, precision, device)
    model = agent.model
    original = model.rollout_samples
    model.rollout_samples = lambda z, a, p: original(z, a, p, method=method)  # force the method
    z, a, goal = _inputs(agent, envs)
    agent.plan_latents(z, a, goal)  # warm-up
    times = []
    for _ in range(repeats):
        _sync(agent.device)
        tic = time.perf_counter()
        agent.plan_latents(z, a, goal)
        _sync(agent.device)
        times.append(time.perf_counter() - tic)
    return {"preset": preset, "samples": samples, "iterations": iterations, "envs": envs, "precision": precision,
            "method": method, "seconds": sorted(times)[len(times) // 2]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train", action="store_true", help="also time training steps (CPU only)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--envs", default="1,8", help="comma-separated env counts")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for preset, samples, iters in (("paper", 300, 10), ("cpu", 300, 10)):
        for envs in [int(e) for e in args.envs.split(",")]:
            for precision in ("fp32", "bf16"):
                for method in ("cached", "windows"):
                    rows.append(plan_row(preset, samples, iters, envs, precision, method, args.device, args.repeats))
                    r = rows[-1]
                    print(f"| plan | {preset} {samples}x{iters} | {envs} | {precision} | {method} | "
                          f"{r['seconds']:.3f} s |",
                          flush=True)
    train = []
    if args.train:
        from train_speed import bench_train

        for preset, batch, size, steps in (("cpu", 128, 64, 5), ("paper", 32, 224, 2)):
            for bf16 in (False, True):
                train.append(bench_train(preset, batch, size, bf16, steps=steps, warmup=1, threads=args.threads))
                r = train[-1]
                print(f"| train | {preset} b{batch} {size}px | - | {'bf16' if bf16 else 'fp32'} | - | "
                      f"{r['seconds_per_step']:.3f} s/step |", flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out / f"precision_matrix_{args.device}.json", {"planning": rows, "training": train})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
