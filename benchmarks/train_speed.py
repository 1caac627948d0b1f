"""Seconds per LeWM optimiser step, timed exactly as ``lewm_agent/train.py`` runs them.

Builds a preset's model (random weights), an in-memory episode set of random uint8 frames at
``image_size`` pixels, and runs full optimiser steps with train.py's own pieces: the batch
stream (clips drawn from (seed, step, rank), built in a background thread) and
:func:`lewm_agent.train.train_step` (forward under autocast, backward, clip, AdamW, schedule).
The median over ``steps`` timed steps after ``warmup`` untimed ones is reported.

    python benchmarks/train_speed.py                 # the table: cpu b128 64px, paper b32 224px, fp32 and bf16
    python benchmarks/train_speed.py --preset cpu --batch-size 128 --image-size 64 --bf16 --steps 10
    python benchmarks/train_speed.py --preset paper --batch-size 128 --image-size 224 --bf16 --device cuda --json

The table runs every row in a fresh process (so that each row's peak RSS is its own). Run it
with nothing else on the machine: the numbers are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from lewm_agent.config import preset, replace
from lewm_agent.data import ActionNormalizer, ClipDataset
from lewm_agent.data.dataset import Episodes
from lewm_agent.model import LeWM
from lewm_agent.train import BatchStream, autocast_context, make_optimizer, reuse_freed_memory, train_step

TABLE = [("cpu", 128, 64, False), ("cpu", 128, 64, True), ("paper", 32, 224, False), ("paper", 32, 224, True)]


def synthetic_episodes(image_size: int, action_dim: int, episodes: int = 4, length: int = 100,
                       seed: int = 0) -> Episodes:
    """``episodes`` episodes of ``length`` random uint8 frames and random actions, in memory."""
    rng = np.random.default_rng(seed)
    n = episodes * length
    pixels = rng.integers(0, 256, size=(n, image_size, image_size, 3), dtype=np.uint8)
    action = rng.standard_normal((n, action_dim)).astype(np.float32)
    ep_len = np.full(episodes, length, dtype=np.int64)
    ep_offset = np.arange(episodes, dtype=np.int64) * length
    action[ep_offset + length - 1] = np.nan  # as in a collected file: no action after the last frame
    return Episodes(pixels=pixels, action=action, state=None, ep_len=ep_len, ep_offset=ep_offset)


def peak_rss_mib() -> float:
    """Peak resident memory of this process (MiB): VmHWM, which exec resets; ru_maxrss carries the
    parent's peak into a spawned child on Linux, so it is only the fallback."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_train(preset_name: str, batch_size: int, image_size: int, bf16: bool, steps: int = 5, warmup: int = 2,
                threads: int = 2, prefetch: bool = True, tune_malloc: bool = True, device: str = "cpu") -> dict:
    """Time ``steps`` full optimiser steps (after ``warmup``) of ``preset_name`` on ``device``.

    Returns ``{"preset", "batch_size", "image_size", "bf16", "device", "seconds_per_step" (median),
    "steps_per_sec", "images_per_sec", "peak_rss_mib", "peak_cuda_mib"}`` (peak RSS of this process
    so far; peak CUDA memory allocated by torch, None on CPU). ``prefetch`` and ``tune_malloc``
    (both on, as in train.py) switch off the background batch thread and the glibc heap reuse, to
    measure what each gives. On CUDA each step is timed up to its kernels' end (synchronised).
    """
    torch.set_num_threads(threads)
    p = preset(preset_name)
    device = torch.device(device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = LeWM(p.model).to(device)
    model.train()
    cfg = replace(p.train, batch_size=batch_size)
    optimizer, scheduler = make_optimizer(model, cfg)
    episodes = synthetic_episodes(image_size, p.model.action_dim)
    normalizer = ActionNormalizer.from_actions(episodes.action[~np.isnan(episodes.action).any(1)])
    clips = ClipDataset(episodes, np.arange(episodes.num_episodes), p.model.num_frames, p.model.frameskip, normalizer)
    autocast = autocast_context(device, bf16)
    times = []
    with reuse_freed_memory(tune_malloc), BatchStream(clips, cfg.seed, 0, batch_size, 0, warmup + steps, device,
                                                     prefetch=prefetch) as stream:
        tic = time.perf_counter()
        for step, (torch_seed, batch) in enumerate(stream):
            torch.manual_seed(torch_seed)
            train_step(model, optimizer, scheduler, batch, autocast, cfg.grad_clip)
            if cuda:
                torch.cuda.synchronize(device)
            now = time.perf_counter()
            if step >= warmup:
                times.append(now - tic)
            tic = now
    sec = statistics.median(times)
    return {
        "preset": preset_name, "batch_size": batch_size, "image_size": image_size, "bf16": bool(bf16),
        "device": str(device), "seconds_per_step": sec, "steps_per_sec": 1.0 / sec,
        "images_per_sec": batch_size * p.model.num_frames / sec, "peak_rss_mib": peak_rss_mib(),
        "peak_cuda_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", help="one row only (else the whole table, each row in its own process)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--no-prefetch", action="store_true", help="build each batch in the loop, as before prefetching")
    ap.add_argument("--no-malloc-tuning", action="store_true", help="leave glibc's mmap threshold as it is")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (one row: --preset)")
    ap.add_argument("--json", action="store_true", help="print the row as JSON")
    args = ap.parse_args()
    if args.preset:
        row = bench_train(args.preset, args.batch_size, args.image_size, args.bf16, args.steps, args.warmup,
                          args.threads, prefetch=not args.no_prefetch, tune_malloc=not args.no_malloc_tuning,
                          device=args.device)
        print(json.dumps(row) if args.json else row)
        return
    rows = []
    for name, b, size, bf16 in TABLE:
        cmd = [sys.executable, os.path.abspath(__file__), "--preset", name, "--batch-size", str(b), "--image-size",
               str(size), "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
               "--json"] + (["--bf16"] if bf16 else []) + (["--no-prefetch"] if args.no_prefetch else []) \
            + (["--no-malloc-tuning"] if args.no_malloc_tuning else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'preset':<7} {'batch':>5} {'image':>5} {'precision':<9} {'s/step':>8} {'steps/s':>8} {'peak RSS MiB':>12}")
    for r in rows:
        print(f"{r['preset']:<7} {r['batch_size']:>5} {r['image_size']:>5} {'bf16' if r['bf16'] else 'fp32':<9} "
              f"{r['seconds_per_step']:>8.3f} {r['steps_per_sec']:>8.2f} {r['peak_rss_mib']:>12.0f}")


if __name__ == "__main__":
    main()
