"""GPU check: the `paper` preset at 224 px on TwoRoom, end to end, with its timings.

One script for a lent GPU (or any CUDA machine), run by ``benchmarks/gpu_check.sh``. Phases, each
timed and written to ``OUT/results.json`` as soon as it ends (a cut run keeps what it did):

1. ``env``: torch, CUDA device, bf16 support, CPU count.
2. ``collect``: the TwoRoom episodes of ``compare.py --preset tasks`` (600 expert episodes, seed 0,
   the paper's bare dot), rendered at ``--image-size`` (224): the same trajectories as the 64-px
   file, so the same training/held-out split and the same 50 start/goal pairs apply.
3. ``ddp``: ``torchrun --nproc_per_node 1 lewm train --preset paper`` for a few steps on a small
   file: DistributedDataParallel with NCCL (and SyncBatchNorm) on one GPU.
4. ``speed``: seconds per optimiser step of the `paper` preset at batch 128 in bf16
   (``benchmarks/train_speed.py``'s timing), images/s and peak GPU memory.
5. ``train``: the `paper` preset on the 600 episodes for as many steps as ``--train-seconds``
   allows at the measured speed (warm-up shortened to 5% of them), the pixels streamed from disk
   (``--stream``, default ``on``); wall-clock, final losses, peak GPU memory.
6. ``eval``: the LeWM protocol on the given pairs (``--pairs``, e.g. the `tasks` preset's
   ``results/tasks/tasks/TwoRoom/pairs.npz``) or 50 pairs from the held-out episodes; LeWM with
   the preset's planner (CEM 300x30) and random on the same pairs; planning time per decision.
7. ``plan``: one env's CEM 300x30 plan on CUDA, median of 5 calls.
8. ``probe``: linear probe of the agent position from the latents (held-out episodes).

Usage (``--smoke`` shrinks everything to check the script on a CPU in a minute)::

    python benchmarks/gpu_check.py --out OUT --work /tmp/gpu_check [--pairs pairs.npz] [--split task.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_speed import bench_train  # noqa: E402

from lewm_agent.config import preset, replace  # noqa: E402
from lewm_agent.pipeline import held_out_episodes  # noqa: E402

TASK_ENV = "lewm/TwoRoom-v1"


class Report:
    """Results of every phase, written atomically to ``out/results.json`` after each one."""

    def __init__(self, out: Path, deadline: float):
        self.out, self.deadline, self.t0 = out, deadline, time.perf_counter()
        self.data: dict = {"phases": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}

    def left(self) -> float:
        """Seconds left before the deadline."""
        return self.deadline - (time.perf_counter() - self.t0)

    def save(self) -> None:
        tmp = self.out / ".results.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        tmp.replace(self.out / "results.json")

    def phase(self, name: str, fn, needs: float = 0.0):
        """Run ``fn()`` as phase ``name`` unless fewer than ``needs`` seconds are left; record its
        result (a dict), its seconds, or its error. Returns the result or None."""
        if self.left() < needs:
            self.data["phases"][name] = {"status": "skipped", "reason": f"{self.left():.0f}s left, needs {needs:.0f}s"}
            print(f"[{name}] skipped: {self.left():.0f}s left", flush=True)
            self.save()
            return None
        print(f"[{name}] start ({self.left():.0f}s left)", flush=True)
        tic = time.perf_counter()
        try:
            result = fn()
            entry = {"status": "ok", **(result or {})}
        except Exception as e:  # a failed phase must not cost the others
            traceback.print_exc()
            result, entry = None, {"status": "error", "error": f"{type(e).__name__}: {e}"}
        entry["seconds"] = time.perf_counter() - tic
        self.data["phases"][name] = entry
        self.save()
        print(f"[{name}] {entry['status']} in {entry['seconds']:.1f}s: "
              f"{json.dumps({k: v for k, v in entry.items() if not isinstance(v, (dict, list))}, default=str)}",
              flush=True)
        return result


def env_info(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "cpu_count": os.cpu_count(), "device": str(device),
            "python": sys.version.split()[0]}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=props.total_memory / 2**30, capability=[props.major, props.minor],
                    bf16=torch.cuda.is_bf16_supported(), cuda=torch.version.cuda)
    return info


def collect_files(work: Path, episodes: int, image_size: int, workers: int) -> dict:
    from lewm_agent.data import collect

    out = {}
    for name, n in (("train", episodes), ("ddp", 8)):
        path = work / f"tworoom-{name}-{n}ep-{image_size}px.h5"
        tic = time.perf_counter()
        if not path.exists():
            collect(TASK_ENV, path, num_episodes=n, policy="expert", seed=0, env_kwargs={"image_size": image_size},
                    workers=workers, progress=False)
        out[name] = {"path": str(path), "episodes": n, "seconds": time.perf_counter() - tic,
                     "bytes": path.stat().st_size}
    return out


def run_ddp(data: str, work: Path, device: str, steps: int, image_size: int, preset_name: str) -> dict:
    out_dir = work / "ddp-run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m",
           "lewm_agent.cli", "train", "--preset", preset_name, "--data", data, "--out", str(out_dir),
           "--steps", str(steps), "--device", device, "--batch-size", "32",
           "--model", f"image_size={image_size}", "--train", f"warmup_steps={max(1, steps // 2)}",
           "--overwrite"]  # WORK is this script's scratch: a rerun replaces its own run
    tic = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    result = {"returncode": r.returncode, "wall_seconds": time.perf_counter() - tic,
              "stdout_tail": r.stdout[-400:], "stderr_tail": r.stderr[-1500:] if r.returncode else ""}
    cfg_path = out_dir / "train_config.json"
    if cfg_path.exists():
        cfg = json.loads(cfg_path.read_text())
        result.update(world_size=cfg.get("world_size"), ddp_backend=cfg.get("ddp_backend"),
                      device_used=cfg.get("device"))
    if r.returncode != 0:
        raise RuntimeError(f"torchrun exited {r.returncode}: {r.stderr[-300:]}")
    return result


def peak_cuda_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for results.json and eval.json")
    ap.add_argument("--work", required=True, help="scratch folder (episode files, the run)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    ap.add_argument("--train-seconds", type=float, default=240.0, help="training budget (steps = this / s per step)")
    ap.add_argument("--max-steps", type=int, default=20_000)
    ap.add_argument("--deadline", type=float, default=540.0,
                    help="seconds for the whole script; late phases are skipped")
    ap.add_argument("--pairs", help="pairs.npz of start/goal states (arena units) to evaluate on")
    ap.add_argument("--split", help="task.json of a compare.py task: its training/held-out episode ids")
    ap.add_argument("--stream", default="on", choices=("on", "off", "auto"),
                    help="TrainConfig.stream of the training phase: pixels read from disk (on) or held in memory")
    ap.add_argument("--workers-train", type=int, default=0, help="TrainConfig.workers of the training phase")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: check the script on a CPU")
    args = ap.parse_args()

    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    report = Report(out, args.deadline)
    p = preset("paper")
    model_cfg = replace(p.model, image_size=args.image_size)
    batch, speed_steps, eval_episodes, ddp_steps = 128, 20, 50, 20
    if args.smoke:
        model_cfg = replace(preset("tiny").model, image_size=args.image_size)
        batch, speed_steps, eval_episodes, ddp_steps = 16, 3, 6, 3
    report.data["settings"] = {**vars(args), "batch_size": batch}

    report.phase("env", lambda: env_info(device))
    files = report.phase("collect", lambda: collect_files(work, args.episodes, args.image_size, args.workers))
    if files is None:
        return
    report.phase("ddp", lambda: run_ddp(files["ddp"]["path"], work, args.device, ddp_steps, args.image_size,
                                        "tiny" if args.smoke else "paper"), needs=60)

    def speed() -> dict:
        reset_peak(device)
        row = bench_train("tiny" if args.smoke else "paper", batch, args.image_size, bf16=device.type == "cuda",
                          steps=speed_steps, warmup=5, threads=min(8, os.cpu_count() or 2), device=args.device)
        return row

    row = report.phase("speed", speed, needs=60)
    sec_per_step = row["seconds_per_step"] if row else 0.15
    steps = int(min(args.max_steps, max(50, args.train_seconds / sec_per_step)))

    split = None
    if args.split:
        task = json.loads(Path(args.split).read_text())["task"]
        split = (np.asarray(task["train_episodes"]), np.asarray(task["held_out_episodes"]))
    run_dir = work / "run"

    def train_run() -> dict:
        from lewm_agent.train import train

        tr = replace(p.train, steps=steps, batch_size=batch, device=args.device, warmup_steps=max(1, steps // 20),
                     val_every=max(1, steps // 4), ckpt_every=max(1, steps // 2), log_every=50, stream=args.stream,
                     workers=args.workers_train)
        reset_peak(device)
        tic = time.perf_counter()
        result = train(files["train"]["path"], run_dir, model_cfg, tr, p.plan, progress=True, split=split,
                       overwrite=True)
        return {"steps": result.steps, "train_seconds": result.seconds, "wall_seconds": time.perf_counter() - tic,
                "steps_per_sec": result.steps / result.seconds, "final": result.final,
                "peak_cuda_mib": peak_cuda_mib(device), "train_config": {"lr": tr.lr, "warmup_steps": tr.warmup_steps,
                                                                          "batch_size": tr.batch_size,
                                                                          "stream": tr.stream, "workers": tr.workers}}

    trained = report.phase("train", train_run, needs=60)
    if trained is None:
        return

    def eval_run() -> dict:
        from lewm_agent import LeWMAgent, envs
        from lewm_agent.evaluation import EvalProtocol, RandomActor, evaluate, sample_pairs
        from lewm_agent.experiment import load_pairs, pairs_fingerprint

        agent = LeWMAgent.load(run_dir / "agent", device=args.device)
        protocol = EvalProtocol(num_episodes=eval_episodes)
        make_env = lambda: envs.make_env(TASK_ENV, image_size=args.image_size)  # noqa: E731
        if args.pairs:
            pairs = load_pairs(args.pairs)[:eval_episodes]
        else:
            episodes, val_ids, _ = held_out_episodes(agent)  # pixels stay on disk: the pairs need states
            env = make_env()
            pairs = sample_pairs(episodes, val_ids, protocol, env=env.unwrapped)
            env.close()
        reset_peak(device)
        lewm = evaluate(agent, make_env, pairs, protocol, progress=False)
        rand = evaluate(RandomActor(agent.action_low, agent.action_high, seed=protocol.seed), make_env, pairs,
                        protocol, progress=False)
        records = {"lewm": lewm.to_dict(), "random": rand.to_dict(),
                   "plan": dataclasses.asdict(agent.plan_cfg), "pairs_fingerprint": pairs_fingerprint(pairs),
                   "plan_seconds_per_decision": agent.seconds_per_plan, "plans": agent.num_plans,
                   "precision": agent.precision}
        (out / "eval.json").write_text(json.dumps(records, indent=2, default=str))
        return {"success_rate": lewm.success_rate, "ci95": lewm.ci95, "random_success_rate": rand.success_rate,
                "random_ci95": rand.ci95, "pairs": len(pairs), "pairs_fingerprint": records["pairs_fingerprint"],
                "plan_seconds_per_env_plan": agent.seconds_per_plan, "eval_seconds": lewm.seconds,
                "planner": f"{agent.plan_cfg.planner} {agent.plan_cfg.samples}x{agent.plan_cfg.iterations}",
                "precision": agent.precision, "peak_cuda_mib": peak_cuda_mib(device)}

    report.phase("eval", eval_run, needs=30)

    def plan_bench() -> dict:
        from lewm_agent import LeWMAgent, envs

        agent = LeWMAgent.load(run_dir / "agent", device=args.device)
        env = envs.make_env(TASK_ENV, image_size=args.image_size)
        obs, _ = env.reset(seed=0)
        batch_obs = {k: v[None] for k, v in obs.items()}
        times = []
        for i in range(7):
            agent.reset(1)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            tic = time.perf_counter()
            agent.act(batch_obs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= 2:
                times.append(time.perf_counter() - tic)
        env.close()
        pc = agent.plan_cfg
        return {"plan_seconds_median": float(np.median(times)),
                "planner": f"{pc.planner} {pc.samples}x{pc.iterations} h{pc.horizon}", "precision": agent.precision}

    report.phase("plan", plan_bench, needs=15)

    def probe() -> dict:
        from lewm_agent import LeWMAgent
        from lewm_agent.analysis import probe_agent

        agent = LeWMAgent.load(run_dir / "agent", device=args.device)
        r = probe_agent(agent, *held_out_episodes(agent)[:2])
        return {k: r[k] for k in ("probe_r", "distance_rank_corr", "local_rank_corr") if k in r}

    report.phase("probe", probe, needs=45)
    report.data["total_seconds"] = time.perf_counter() - report.t0
    report.save()


if __name__ == "__main__":
    main()
