"""Frames per second that reach the training step from an episode file on disk, and the memory it takes.

Subcommands (each table row runs in a fresh process, so that its peak memory is its own):

    python benchmarks/data.py feed      # frames/s delivered by BatchStream: 64 and 224 px, 0/1/2 workers,
                                        # pixels in memory / our layout / the reference's layout
    python benchmarks/data.py train     # `cpu`-preset optimiser steps/s from memory against streamed from disk
    python benchmarks/data.py layouts   # random clip reads per pixel layout (compression x frames per chunk)
    python benchmarks/data.py synth --gb 8 --out big.h5   # a 224-px file of about that size on disk
    python benchmarks/data.py peak -- lewm train ...      # peak memory of a command and its child processes

The frames are real: TwoRoom episodes collected once (``--work``, default ``results/bench_data``),
repeated to the row count each file needs. "Our layout" is :class:`~lewm_agent.data.EpisodeWriter`'s
(one frame per chunk, Blosc-lz4); "the reference's" is the published LeWM datasets' (pixels Blosc-lz4
in chunks of 100 rows; columns pixels, action, proprio, state, step_idx, ep_idx, ep_len, ep_offset;
NaN last action), written here with h5py + hdf5plugin. The files are read through the page cache
(written just before): the figures are decoding and batch building, not a cold disk.

Peak memory is the peak, sampled every 50 ms, of the summed proportional set size (PSS: shared pages
divided among the processes sharing them) of the process and its descendants (DataLoader workers).
Results are appended as JSON lines to ``benchmarks/results/data.jsonl`` (``--results``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import torch

from lewm_agent.config import preset
from lewm_agent.data import ActionNormalizer, ClipDataset, EpisodeWriter, collect, load_episodes
from lewm_agent.data.pixels import DiskPixels
from lewm_agent.model import LeWM
from lewm_agent.train import BatchStream, autocast_context, make_optimizer, reuse_freed_memory, train_step

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {64: ("cpu", 128), 224: ("paper", 128)}  # image size -> (preset whose clips are read, clips per batch)
FEED_FRAMES = {64: 20_000, 224: 6_000}  # rows of the files the feed table reads


# --------------------------------------------------------------------------- memory of a process tree
def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class PeakMemory:
    """Samples the summed PSS of ``pid`` and its descendants every ``interval`` s; ``peak_mib`` is the maximum."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval, self.peak_mib = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids, todo = [], [self.pid]
            while todo:
                pid = todo.pop()
                pids.append(pid)
                todo += _children(pid)
            self.peak_mib = max(self.peak_mib, sum(_pss_kib(p) for p in pids) / 1024)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- files
def source_episodes(work: Path, image_size: int, episodes: int = 40):
    """Real TwoRoom episodes at ``image_size`` (collected once into ``work``)."""
    path = work / f"tworoom{image_size}_source.h5"
    if not path.exists():
        work.mkdir(parents=True, exist_ok=True)
        collect("lewm/TwoRoom-v1", path, num_episodes=episodes, env_kwargs={"image_size": image_size}, progress=False)
    return load_episodes(path)


def _tiled(src, frames: int):
    """Episodes of ``src`` repeated in order until about ``frames`` rows: yields (pixels, action, state)."""
    total, i = 0, 0
    while total < frames:
        ep = src.episode(i % src.num_episodes)
        yield ep["pixels"], ep["action"], ep["state"]
        total += len(ep["pixels"])
        i += 1


def write_ours(path: Path, src, frames: int) -> Path:
    with EpisodeWriter(path, attrs={"env_id": "lewm/TwoRoom-v1", "action_low": [-1, -1], "action_high": [1, 1]}) as w:
        for pixels, action, state in _tiled(src, frames):
            w.add_episode(pixels, action, state)
    return path


def write_reference(path: Path, src, frames: int) -> Path:
    """The published LeWM datasets' layout (see the module docstring), in blocks of rows (bounded memory)."""
    eps = list(_tiled(src, frames))
    ep_len = np.array([len(p) for p, _, _ in eps], np.int64)
    n, (h, w) = int(ep_len.sum()), eps[0][0].shape[1:3]
    with h5py.File(path, "w") as f:
        pixels = f.create_dataset("pixels", shape=(n, h, w, 3), dtype=np.uint8, chunks=(100, h, w, 3),
                                  **hdf5plugin.Blosc(cname="lz4"))
        row = 0
        for p, _, _ in eps:
            pixels[row:row + len(p)] = p
            row += len(p)
        action = np.concatenate([a for _, a, _ in eps])  # NaN on each episode's last row
        state = np.concatenate([s for _, _, s in eps])
        f.create_dataset("action", data=action)
        f.create_dataset("proprio", data=state)
        f.create_dataset("state", data=state)
        f.create_dataset("step_idx", data=np.concatenate([np.arange(k) for k in ep_len]))
        f.create_dataset("ep_idx", data=np.repeat(np.arange(len(ep_len)), ep_len))
        f.create_dataset("ep_len", data=ep_len)
        f.create_dataset("ep_offset", data=np.concatenate([[0], np.cumsum(ep_len)[:-1]]))
    return path


def feed_file(work: Path, image_size: int, layout: str) -> Path:
    """The feed table's file of ``layout`` (``ours`` or ``reference``) at ``image_size``, written once."""
    path = work / f"feed{image_size}_{layout}.h5"
    if not path.exists():
        src = source_episodes(work, image_size)
        tmp = path.with_name(path.name + ".tmp")
        (write_ours if layout == "ours" else write_reference)(tmp, src, FEED_FRAMES[image_size])
        os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- measurements
def _clips(path: Path, image_size: int, streamed: bool) -> ClipDataset:
    name, _ = SHAPES[image_size]
    m = preset(name).model
    ep = load_episodes(path, stream=streamed)
    norm = ActionNormalizer.from_actions(ep.action)
    return ClipDataset(ep, np.arange(ep.num_episodes), m.num_frames, m.frameskip, norm)


def bench_feed(path: Path, image_size: int, source: str, workers: int, batches: int, max_seconds: float) -> dict:
    """Frames/s that BatchStream delivers (nothing else runs): ``source`` ``memory`` loads the pixels first."""
    torch.set_num_threads(1)
    clips = _clips(path, image_size, streamed=source != "memory")
    _, batch_size = SHAPES[image_size]
    frames_per_batch = batch_size * clips.num_frames
    warm, times = 2, []
    with BatchStream(clips, 0, 0, batch_size, 0, warm + batches, "cpu", workers=workers) as stream:
        tic = time.perf_counter()
        start = tic
        for i, _ in enumerate(stream):
            now = time.perf_counter()
            if i >= warm:
                times.append(now - tic)
                if now - start > max_seconds:
                    break
            tic = now
    sec = sum(times) / len(times)
    return {"bench": "feed", "image_size": image_size, "source": source, "workers": workers,
            "frames_per_batch": frames_per_batch, "batches": len(times), "seconds_per_batch": sec,
            "frames_per_sec": frames_per_batch / sec}


def bench_train(path: Path, streamed: bool, workers: int, steps: int, warmup: int) -> dict:
    """Median seconds per `cpu`-preset optimiser step (batch 128, 64 px), fed as train.py feeds it."""
    torch.set_num_threads(2)
    p = preset("cpu")
    torch.manual_seed(0)
    model = LeWM(p.model)
    model.train()
    optimizer, scheduler = make_optimizer(model, p.train)
    clips = _clips(path, 64, streamed)
    autocast = autocast_context(torch.device("cpu"), False)
    times = []
    with reuse_freed_memory(True), BatchStream(clips, 0, 0, p.train.batch_size, 0, warmup + steps, "cpu",
                                              workers=workers) as stream:
        tic = time.perf_counter()
        for step, (torch_seed, batch) in enumerate(stream):
            torch.manual_seed(torch_seed)
            train_step(model, optimizer, scheduler, batch, autocast, p.train.grad_clip)
            now = time.perf_counter()
            if step >= warmup:
                times.append(now - tic)
            tic = now
    sec = statistics.median(times)
    return {"bench": "train", "preset": "cpu", "source": "streamed" if streamed else "memory", "workers": workers,
            "seconds_per_step": sec, "steps_per_sec": 1 / sec}


def bench_layouts(work: Path, image_size: int, frames: int = 3000, clips: int = 2000) -> list[dict]:
    """Random clip reads (one process, no cache) per compression x frames per chunk; file size and write speed."""
    src = source_episodes(work, image_size)
    order = np.resize(np.arange(src.num_frames), frames)
    m = preset(SHAPES[image_size][0]).model
    span = (m.num_frames - 1) * m.frameskip
    rows = np.random.default_rng(0).integers(0, frames - span, clips)[:, None] + np.arange(m.num_frames) * m.frameskip
    compressions = {"none": {}, "gzip-1": {"compression": "gzip", "compression_opts": 1},
                    "blosc-lz4": dict(hdf5plugin.Blosc(cname="lz4"))}
    out = []
    for per_chunk in ((1, 2, 4, 6) if image_size == 224 else (1, 4, 8, 16)):
        for name, kwargs in compressions.items():
            path = work / f"layout{image_size}_{name}_{per_chunk}.h5"
            tic = time.perf_counter()
            with h5py.File(path, "w") as f:
                ds = f.create_dataset("pixels", shape=(frames, image_size, image_size, 3), dtype=np.uint8,
                                      chunks=(per_chunk, image_size, image_size, 3), **kwargs)
                for i in range(0, frames, 300):
                    ds[i:i + 300] = src.pixels[order[i:i + 300]]
            write_s = time.perf_counter() - tic
            reader = DiskPixels(path, cache_bytes=0)
            reader.rows(rows[:50])
            tic = time.perf_counter()
            for b in range(0, clips, 32):
                reader.rows(rows[b:b + 32])
            read_s = time.perf_counter() - tic
            out.append({"bench": "layouts", "image_size": image_size, "compression": name,
                        "frames_per_chunk": per_chunk,
                        "file_mb": path.stat().st_size / 1e6, "write_frames_per_sec": frames / write_s,
                        "read_frames_per_sec": rows.size / read_s})
            reader.close()
            path.unlink()
    return out


# --------------------------------------------------------------------------- running rows
def _row_in_subprocess(args: list[str]) -> dict:
    """Run ``data.py row ...`` in a fresh process; its JSON line plus the peak PSS of its process tree."""
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "row", *args], stdout=subprocess.PIPE,
                            text=True)
    with PeakMemory(proc.pid) as mem:
        out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"row {args} failed with exit code {proc.returncode}")
    row = json.loads(out.strip().splitlines()[-1])
    row["peak_pss_mib"] = round(mem.peak_mib)
    return row


def _save(rows: list[dict], results: Path) -> None:
    results.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    with open(results, "a") as f:
        for r in rows:
            f.write(json.dumps({**r, "when": stamp}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "results" / "bench_data", help="generated files (git-ignored)")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "data.jsonl")
    sub = ap.add_subparsers(dest="cmd", required=True)
    feed = sub.add_parser("feed")
    feed.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    feed.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    feed.add_argument("--sources", nargs="+", default=["memory", "ours", "reference"])
    feed.add_argument("--batches", type=int, default=20)
    feed.add_argument("--max-seconds", type=float, default=20.0)
    tr = sub.add_parser("train")
    tr.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    tr.add_argument("--steps", type=int, default=20)
    tr.add_argument("--warmup", type=int, default=3)
    lay = sub.add_parser("layouts")
    lay.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    syn = sub.add_parser("synth")
    syn.add_argument("--gb", type=float, required=True, help="file size on disk to reach (GB)")
    syn.add_argument("--out", type=Path, required=True)
    syn.add_argument("--image-size", type=int, default=224)
    pk = sub.add_parser("peak")
    pk.add_argument("command", nargs=argparse.REMAINDER)
    row = sub.add_parser("row")
    row.add_argument("kind", choices=["feed", "train"])
    row.add_argument("--path", type=Path, required=True)
    row.add_argument("--image-size", type=int, default=64)
    row.add_argument("--source", default="ours")
    row.add_argument("--workers", type=int, default=0)
    row.add_argument("--batches", type=int, default=20)
    row.add_argument("--max-seconds", type=float, default=20.0)
    row.add_argument("--steps", type=int, default=20)
    row.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()

    if args.cmd == "row":
        if args.kind == "feed":
            r = bench_feed(args.path, args.image_size, args.source, args.workers, args.batches, args.max_seconds)
        else:
            r = bench_train(args.path, args.source != "memory", args.workers, args.steps, args.warmup)
        print(json.dumps(r))
        return
    if args.cmd == "feed":
        rows = []
        for size in args.sizes:
            for source in args.sources:
                path = feed_file(args.work, size, "reference" if source == "reference" else "ours")
                for w in args.workers:
                    rows.append(_row_in_subprocess(["feed", "--path", str(path), "--image-size", str(size), "--source",
                                                    source, "--workers", str(w), "--batches", str(args.batches),
                                                    "--max-seconds", str(args.max_seconds)]))
                    r = rows[-1]
                    print(f"{size:>4} px  {source:<9} workers {w}  {r['frames_per_sec']:>8.0f} frames/s  "
                          f"peak {r['peak_pss_mib']:>6} MiB  ({r['batches']} batches of {r['frames_per_batch']} "
                          "frames)",
                          flush=True)
        _save(rows, args.results)
    elif args.cmd == "train":
        path = feed_file(args.work, 64, "ours")
        rows = []
        for source in ("memory", "streamed"):
            for w in args.workers:
                rows.append(_row_in_subprocess(["train", "--path", str(path), "--source", source, "--workers", str(w),
                                                "--steps", str(args.steps), "--warmup", str(args.warmup)]))
                r = rows[-1]
                print(f"cpu preset  {source:<8} workers {w}  {r['seconds_per_step']:.3f} s/step  "
                      f"{r['steps_per_sec']:.2f} steps/s  peak {r['peak_pss_mib']} MiB", flush=True)
        _save(rows, args.results)
    elif args.cmd == "layouts":
        rows = []
        for size in args.sizes:
            for r in bench_layouts(args.work, size):
                rows.append(r)
                print(f"{size:>4} px  {r['compression']:<9} {r['frames_per_chunk']:>2} frames/chunk  "
                      f"file {r['file_mb']:7.1f} MB  write {r['write_frames_per_sec']:>7.0f}  "
                      f"clip reads {r['read_frames_per_sec']:>7.0f} frames/s", flush=True)
        _save(rows, args.results)
    elif args.cmd == "synth":
        src = source_episodes(args.work, args.image_size)
        per_frame = os.path.getsize(write_ours(args.work / "probe.h5", src, 2000)) / 2000
        (args.work / "probe.h5").unlink()
        frames = int(args.gb * 1e9 / per_frame)
        tic = time.perf_counter()
        write_ours(args.out, src, frames)
        print(f"wrote {args.out}: {os.path.getsize(args.out) / 1e9:.2f} GB, about {frames} frames of "
              f"{args.image_size} px, in {time.perf_counter() - tic:.0f} s")
    elif args.cmd == "peak":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        tic = time.perf_counter()
        proc = subprocess.Popen(command)
        with PeakMemory(proc.pid, interval=0.1) as mem:
            proc.wait()
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child's peak RSS
        print(f"peak RSS {rss:.0f} MiB (the largest process), peak PSS {mem.peak_mib:.0f} MiB (the command and its "
              f"children together), {time.perf_counter() - tic:.0f} s, exit code {proc.returncode}")
        _save([{"bench": "peak", "command": " ".join(command), "peak_rss_mib": round(rss),
                "peak_pss_mib": round(mem.peak_mib), "exit_code": proc.returncode}], args.results)


if __name__ == "__main__":
    main()
