"""Planning and training speed of LeWM on this machine, in one run: the README's speed figures.

    python benchmarks/speed.py                      # everything, writes benchmarks/results/speed.{md,json}
    python benchmarks/speed.py --repeats 1 --skip-train

Measured, with random weights (speed does not depend on them) and 2 threads by default:

- **calibration**: GFLOP/s of a 2048^3 matmul in fp32 and in bf16 (bf16 with a smaller product
  when it is slow, so that a CPU without native bf16 does not take minutes);
- **planning**: one call of :meth:`LeWMAgent.plan_latents` (CEM, ``samples x iterations``,
  horizon 5) for the ``paper`` preset (224 px, history 3: three context latents) and the ``cpu``
  preset (64 px, history 1), for 1 and 8 envs, in each precision this device runs well (bf16 is
  measured only where the calibration finds it faster, and once on the ``cpu`` preset either way
  as evidence); median of ``--repeats`` after a warm-up. ``window-by-window`` is the same CEM
  scored by calling the predictor on each window separately for each sample (lewm-agent 0.1's
  rollout, and the reference code's), measured in the same run for the ratio;
- **training**: seconds per optimiser step (``benchmarks/train_speed.py``, each row in its own
  process): ``cpu`` preset batch 128 at 64 px and ``paper`` preset batch 32 at 224 px;
- **peak RSS** of the planning process and of each training row.

Run it with nothing else on the machine: the numbers are wall-clock.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lewm_agent.agent import LeWMAgent  # noqa: E402
from lewm_agent.config import PlanConfig, preset, replace  # noqa: E402
from lewm_agent.files import atomic_write_json, atomic_write_text  # noqa: E402
from lewm_agent.model import LeWM  # noqa: E402
from lewm_agent.planning import cem_plan, latent_goal_cost  # noqa: E402
from lewm_agent.precision import autocast  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import peak_rss_mib  # noqa: E402

HERE = Path(__file__).resolve().parent


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(dtype: torch.dtype, device: torch.device, n: int = 2048, reps: int = 3) -> float:
    """GFLOP/s of an n^3 matmul (best of ``reps`` after a warm-up)."""
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(reps):
        tic = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - tic)
    return 2 * n**3 / best / 1e9


def calibration(device: torch.device) -> dict:
    fp32 = matmul_gflops(torch.float32, device)
    probe = matmul_gflops(torch.bfloat16, device, n=256, reps=1)  # a slow bf16 takes seconds even here
    bf16_n = 2048 if probe > 0.25 * fp32 else 512
    bf16 = matmul_gflops(torch.bfloat16, device, n=bf16_n)
    return {"fp32_gflops": fp32, "bf16_gflops": bf16, "bf16_size": bf16_n}


def _agent(preset_name: str, samples: int, iterations: int, precision: str, device: str = "cpu") -> LeWMAgent:
    p = preset(preset_name)
    torch.manual_seed(0)
    model = LeWM(p.model)
    for block in model.predictor.blocks:  # trained AdaLN is not zero; the cost is the same either way
        torch.nn.init.normal_(block.ada[1].weight, std=0.02)
    A = p.model.action_dim
    if samples:  # plain CEM (the reference planner) at the given size
        plan = PlanConfig(samples=samples, iterations=iterations, elites=min(30, samples), horizon=p.plan.horizon,
                          receding_horizon=p.plan.receding_horizon, precision=precision)
    else:  # the preset's own planner
        plan = replace(p.plan, precision=precision)
    size = p.model.image_size
    return LeWMAgent(model, np.zeros(A), np.ones(A), -np.ones(A), np.ones(A), (size, size, 3), plan=plan, device=device)


def _inputs(agent: LeWMAgent, envs: int):
    cfg = agent.model.cfg
    g = torch.Generator().manual_seed(1)
    c = cfg.history  # a full history window: the most expensive (and the usual) case
    z = torch.randn(envs, c, cfg.latent_dim, generator=g)
    a = torch.randn(envs, c - 1, cfg.action_block_dim, generator=g) if c > 1 else None
    goal = torch.randn(envs, cfg.latent_dim, generator=g)
    dev = agent.device
    return z.to(dev), (a.to(dev) if a is not None else None), goal.to(dev)


def _window_by_window(agent: LeWMAgent, z, a, goal):
    """The same CEM scored the 0.1 way: every sample's window through the predictor, step by step."""
    model, pc = agent.model, agent.plan_cfg

    def cost_fn(actions):  # (E, S, H, Ad)
        with autocast(agent.precision, agent.device):
            z_pred = model.rollout_samples(z, a, actions, method="windows").float()
        return latent_goal_cost(z_pred, goal[:, None], pc.cost)

    with torch.inference_mode():
        mean = torch.zeros(len(z), pc.horizon, model.cfg.action_block_dim, device=agent.device)
        generator = torch.Generator(device=agent.device).manual_seed(0)
        return cem_plan(cost_fn, mean, pc.cem(), agent._block_low, agent._block_high, generator)


def bench_plan(preset_name: str, samples: int, iterations: int, envs: int, precision: str, repeats: int,
               method: str = "lewm-agent", device: str = "cpu") -> dict:
    """Median seconds of one planning call (after a one-iteration warm-up)."""
    agent = _agent(preset_name, samples, iterations, precision, device)
    z, a, goal = _inputs(agent, envs)
    if method == "lewm-agent":
        run = lambda: agent.plan_latents(z, a, goal)  # noqa: E731
    else:
        run = lambda: _window_by_window(agent, z, a, goal)  # noqa: E731
    warm = _agent(preset_name, samples or 8, 1, precision, device)
    warm.plan_latents(z, a, goal)
    times = []
    for _ in range(repeats):
        _sync(agent.device)
        tic = time.perf_counter()
        run()
        _sync(agent.device)
        times.append(time.perf_counter() - tic)
    pc = agent.plan_cfg
    return {"preset": preset_name, "samples": pc.samples, "iterations": pc.iterations, "envs": envs,
            "planner": "preset default" if not samples else "cem", "plan": dataclasses.asdict(pc),
            "precision": agent.precision, "method": method, "context": agent.model.cfg.history,
            "seconds": statistics.median(times), "all_seconds": times}


def planning(repeats: int, bf16_fast: bool, device: str = "cpu") -> list[dict]:
    rows = []
    precisions = ["fp32", "bf16"] if bf16_fast else ["fp32"]
    for name in ("paper", "cpu"):
        for prec in precisions:
            for samples, iters, envs in ((300, 30, 1), (300, 10, 1), (300, 10, 8)):
                rows.append(bench_plan(name, samples, iters, envs, prec, repeats, device=device))
                print(_plan_line(rows[-1]), flush=True)
        rows.append(bench_plan(name, 0, 0, 1, "auto", repeats, device=device))  # the preset's default planner
        print(_plan_line(rows[-1]), flush=True)
        for iters in (30, 10):  # the 0.1 rollout, same CEM, same run
            rows.append(bench_plan(name, 300, iters, 1, "fp32", repeats, method="window-by-window", device=device))
            print(_plan_line(rows[-1]), flush=True)
    if not bf16_fast:  # evidence for the precision decision, on the small model only
        rows.append(bench_plan("cpu", 300, 10, 1, "bf16", 1, device=device))
        print(_plan_line(rows[-1]), flush=True)
    return rows


def _plan_line(r: dict) -> str:
    return (f"plan {r['preset']:<5} {r['planner']:<14} {r['samples']}x{r['iterations']:<3} envs {r['envs']} "
            f"{r['precision']:<4} {r['method']:<16} {r['seconds']:.3f} s")


def training(steps: int, bf16_fast: bool) -> list[dict]:
    rows = []
    for name, batch, size in (("cpu", 128, 64), ("paper", 32, 224)):
        for bf16 in ([False, True] if bf16_fast else [False]):
            cmd = [sys.executable, str(HERE / "train_speed.py"), "--preset", name, "--batch-size", str(batch),
                   "--image-size", str(size), "--steps", str(steps), "--warmup", "2", "--json"]
            cmd += ["--bf16"] if bf16 else []
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(out))
            r = rows[-1]
            print(f"train {name:<5} batch {batch} {size}px {'bf16' if bf16 else 'fp32'}: "
                  f"{r['seconds_per_step']:.3f} s/step ({r['steps_per_sec']:.2f}/s), "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
    return rows


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cpu_flags() -> list[str]:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        flags = next(line for line in lines if line.startswith("flags")).split()
        return [f for f in flags if f.startswith(("avx512", "amx"))]
    except (OSError, StopIteration):
        return []


def markdown(result: dict) -> str:
    cal, m = result["calibration"], result["machine"]
    lines = ["# Speed (benchmarks/speed.py)", "",
             f"{m['date']}, {m.get('gpu') or m['cpu']} ({m['cores']} CPU cores; AVX-512/AMX flags: "
             f"{', '.join(m['flags']) or 'none'}), "
             f"torch {m['torch']}, {m['threads']} threads, nothing else running.", "",
             f"Calibration: matmul {cal['fp32_gflops']:.0f} GFLOP/s fp32, {cal['bf16_gflops']:.1f} GFLOP/s bf16 "
             f"({cal['bf16_size']}^3). Precision `auto` resolves to **{result['auto_precision']}** on this device.", "",
             "## Planning (one call, CEM, horizon 5, context = the preset's history)", "",
             "| preset | planner | samples x iterations | envs | precision | rollout | seconds | per env |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["planning"]:
        lines.append(f"| {r['preset']} | {r['planner']} | {r['samples']}x{r['iterations']} | {r['envs']} | "
                     f"{r['precision']} | {r['method']} | {r['seconds']:.3f} | {r['seconds'] / r['envs']:.3f} |")
    lines += ["", f"Peak RSS of the planning process: {result['plan_peak_rss_mib']:.0f} MiB.", ""]
    for name in ("paper", "cpu"):
        def get(**k):
            return next((r["seconds"] for r in result["planning"]
                         if r["preset"] == name and r["precision"] == "fp32" and r["planner"] == "cem"
                         and all(r[a] == b for a, b in k.items())), None)

        one = get(samples=300, iterations=10, envs=1, method="lewm-agent")
        eight = get(samples=300, iterations=10, envs=8, method="lewm-agent")
        for it in (30, 10):
            new = get(iterations=it, envs=1, method="lewm-agent")
            old = get(iterations=it, envs=1, method="window-by-window")
            if new and old:
                lines.append(f"- `{name}` 300x{it}, 1 env, fp32: {new:.2f} s against {old:.2f} s window by window "
                             f"({old / new:.2f}x faster).")
        if one and eight:
            lines.append(f"- `{name}` 300x10, 8 envs in one call: {eight / one:.2f}x the time of 1 env.")
    if result["training"]:
        lines += ["", "## Training (seconds per optimiser step, median)", "",
                  "| preset | batch | image | precision | s/step | steps/s | peak RSS MiB |",
                  "|---|---|---|---|---|---|---|"]
        for r in result["training"]:
            lines.append(f"| {r['preset']} | {r['batch_size']} | {r['image_size']} | "
                         f"{'bf16' if r['bf16'] else 'fp32'} | {r['seconds_per_step']:.3f} | "
                         f"{r['steps_per_sec']:.2f} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed planning calls per row (median)")
    ap.add_argument("--train-steps", type=int, default=5, help="timed optimiser steps per training row")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (training rows run on the CPU)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="directory of speed.md and speed.json")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.train_steps < 1 or args.threads < 1:
        ap.error("--repeats, --train-steps and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    device = torch.device(args.device)
    cal = calibration(device)
    print(f"matmul: {cal['fp32_gflops']:.0f} GFLOP/s fp32, {cal['bf16_gflops']:.1f} bf16", flush=True)
    bf16_fast = cal["bf16_gflops"] > 1.25 * cal["fp32_gflops"]
    auto = _agent("cpu", 8, 1, "auto", args.device).precision
    result = {
        "machine": {"date": dt.date.today().isoformat(), "cpu": _cpu_name(), "flags": _cpu_flags(),
                    "device": str(device),
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                    "cores": os.cpu_count(), "torch": torch.__version__, "threads": args.threads},
        "calibration": cal, "auto_precision": auto,
        "planning": planning(args.repeats, bf16_fast, args.device),
        "plan_peak_rss_mib": peak_rss_mib(),
        "training": [] if args.skip_train or device.type != "cpu" else training(args.train_steps, bf16_fast),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "speed.json", result)
    atomic_write_text(args.out / "speed.md", markdown(result))
    print(f"wrote {args.out / 'speed.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
