"""What survives a SIGKILL (issue 13, acceptance point 2): ``lewm collect`` and ``lewm train`` killed at random
moments, N times each, and checked after every kill.

``lewm collect`` is killed in three modes, in turn: a new file, ``--append`` to a valid file, and a new file
with ``--workers 2``. After each kill the episode file must be the previous version (same sha256; no file
for a new one) or the complete new one (it validates through :func:`lewm_agent.data.validate_episode_file`
and loads through :func:`lewm_agent.data.load_episodes`, with the expected episode count); no process of the
killed command may outlive it (the workers die with their parent); the next collection into the same path
must leave no temporary file of a dead writer.

``lewm train`` (the ``tiny`` preset on a 16-episode TwoRoom file, a checkpoint after every step so that
many kills land inside a checkpoint write) runs in chains: each killed run is followed by ``--resume``
(a plain run while there is no checkpoint yet), until one run finishes. After each kill ``checkpoint/``
must load (weights and ``train_state.pt``) with a step no smaller than before, ``train_config.json`` must
parse, and ``agent/`` (if any) must load; a kill between the swap's two renames leaves no ``checkpoint/``
but a complete hidden copy, which the next ``--resume`` must put back. The next run must start at the
saved step (read from its progress bar), leave no temporary directory of a dead writer once it has written
a checkpoint, and each finished chain's weights must equal those of one uninterrupted run.

Kill moments are drawn from a seeded generator: a quarter uniformly over a run's start-up (imports, data
loading), the rest uniformly over its work (after its progress bar appears); a collection is killed before
it finishes, a training run may finish first (then the chain is complete). Writes a JSON tally and prints a
table::

    python benchmarks/kill_tally.py --kills 20      # about 10 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lewm_agent.agent import LeWMAgent  # noqa: E402
from lewm_agent.checkpoint import read_checkpoint  # noqa: E402
from lewm_agent.data import load_episodes, validate_episode_file  # noqa: E402
from lewm_agent.files import leftovers, pid_alive  # noqa: E402

TRAIN_STEPS = 80
# the checkpoint interval, in the CLI's override syntax (every step: a kill often lands in a write)
CKPT_EVERY_ARGS = ["--train", "ckpt_every=1"]
COLLECT_MODES = ("new file", "--append", "--workers 2")
COLLECT_EPISODES = 40  # per run: long enough (several seconds) to be killed in the middle


def lewm(*args: str) -> list[str]:
    return [sys.executable, "-m", "lewm_agent.cli", *args]


def sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def session_processes(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid`` (Linux /proc): what a killed command left running."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] not in "ZX":
            found.append(int(stat.parent.name))
    return found


def orphans_after(pid: int, grace_s: float = 10.0) -> list[int]:
    """Processes of the killed command's session still alive ``grace_s`` after the kill (none expected)."""
    deadline = time.time() + grace_s
    while (left := session_processes(pid)) and time.time() < deadline:
        time.sleep(0.1)
    for p in left:  # do not leave them running: the tally records them
        os.kill(p, signal.SIGKILL)
    return left


class Run:
    """A command started in its own session (so that its workers can be found), its stderr in a file."""

    def __init__(self, cmd: list[str], log: Path) -> None:
        self.log = log
        self.err = open(log, "w")
        self.start = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.err, start_new_session=True)

    def stderr(self) -> str:
        if not self.err.closed:
            self.err.flush()
        return self.log.read_text(errors="replace")

    def kill_at(self, rng: np.random.Generator, started: re.Pattern, startup_s: float, work_s: float) -> dict:
        """SIGKILL at a random moment: a quarter of the time during start-up, else during the work that follows
        the first match of ``started`` in stderr. Returns what happened."""
        if rng.random() < 0.25:
            phase, at = "start-up", self.start + rng.uniform(0.0, startup_s)
        else:
            phase, at = "work", None
            delay = rng.uniform(0.0, work_s)
            while self.proc.poll() is None and at is None:
                if started.search(self.stderr()):
                    at = time.perf_counter() + delay
                time.sleep(0.005)
        while self.proc.poll() is None and (at is None or time.perf_counter() < at):
            time.sleep(0.002)
        killed = self.proc.poll() is None
        if killed:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.err.close()
        return {"phase": phase, "killed": killed, "pid": self.proc.pid, "returncode": self.proc.returncode,
                "seconds": round(time.perf_counter() - self.start, 2), "orphans": orphans_after(self.proc.pid)}

    def finish(self, started: re.Pattern | None = None) -> dict:
        """Wait for the end; with ``started``, also note when it first matched stderr (the start-up's length)."""
        started_s = None
        while self.proc.poll() is None:
            if started is not None and started_s is None and started.search(self.stderr()):
                started_s = time.perf_counter() - self.start
            time.sleep(0.005)
        self.err.close()
        return {"returncode": self.proc.returncode, "pid": self.proc.pid, "started_s": started_s,
                "seconds": round(time.perf_counter() - self.start, 2), "orphans": orphans_after(self.proc.pid)}


def dead_leftovers(path: Path, exclude: int | None = None) -> list[str]:
    """Temporary files and directories beside ``path`` whose writer is dead (other than ``exclude``)."""
    return sorted(entry.name for entry, pid in leftovers(path) if pid != exclude and not pid_alive(pid))


# ---------------------------------------------------------------------------------------------- collect
def episode_file_state(path: Path) -> dict:
    """sha256 and episode count of a valid episode file, {"exists": False} without one; raises if invalid."""
    if not path.exists():
        return {"exists": False}
    info = validate_episode_file(path)
    eps = load_episodes(path, validate=False)
    assert eps.num_episodes == info.num_episodes
    return {"exists": True, "sha256": sha256(path), "episodes": int(info.num_episodes)}


def collect_kills(work: Path, kills: int, rng: np.random.Generator) -> list[dict]:
    base = ["collect", "--env", "lewm/TwoRoom-v1", "--image-size", "32", "--episodes", str(COLLECT_EPISODES)]
    paths = {mode: work / f"collect-{i}.h5" for i, mode in enumerate(COLLECT_MODES)}
    # the file the --append runs add to, and each mode's uninterrupted start-up and work
    started = re.compile(r"collect lewm/TwoRoom-v1:\s+\d+%")
    timing = {}
    for mode in COLLECT_MODES:
        extra = ["--workers", "2"] if mode == "--workers 2" else []
        run = Run(lewm(*base, *extra, "--out", str(paths[mode])), work / "collect-first.log")
        out = run.finish(started)
        assert out["returncode"] == 0 and out["started_s"] is not None, run.stderr()[-2000:]
        timing[mode] = (out["started_s"], out["seconds"] - out["started_s"])
    records = []
    next_seed, done, k = 1000, 0, -1
    while done < kills:  # a run that finishes before its kill moment is recorded, and not counted
        k += 1
        mode = COLLECT_MODES[k % len(COLLECT_MODES)]
        path = paths[mode]
        if mode != "--append" and path.exists():
            path.unlink()  # a new file each time; the killed runs' temporary files stay for the next run
        before = episode_file_state(path)
        stale = dead_leftovers(path)
        args = list(base)
        if mode == "--append":
            args += ["--append", "--seed", str(next_seed)]
            next_seed += COLLECT_EPISODES
        if mode == "--workers 2":
            args += ["--workers", "2"]
        run = Run(lewm(*args, "--out", str(path)), work / "collect.log")
        startup_s, work_s = timing[mode]
        rec = {"run": "collect", "mode": mode, **run.kill_at(rng, started, startup_s, 0.95 * work_s)}
        own = [entry.name for entry, pid in leftovers(path) if pid == rec["pid"]]
        rec["killed_writing"] = bool(own)  # the kill left a temporary file or shard of its own
        try:
            after = episode_file_state(path)
        except Exception as e:  # the verdict of the tally: an invalid file is a failure, recorded as such
            after = {"exists": True, "invalid": f"{type(e).__name__}: {e}"}
        if after == before:
            rec["file"] = "previous" if before["exists"] else "absent (as before)"
        elif "invalid" not in after and after["episodes"] == before.get("episodes", 0) + COLLECT_EPISODES:
            rec["file"] = "new"
        else:
            rec["file"] = f"BAD: before {before}, after {after}"
        # a collection that got as far as its own temporary file must have removed the dead writers' ones
        rec["stale_left"] = sorted(set(stale) & set(dead_leftovers(path, exclude=rec["pid"]))) if own or \
            rec["file"] == "new" else []
        rec["ok"] = not rec["file"].startswith("BAD") and not rec["orphans"] and not rec["stale_left"]
        records.append(rec)
        done += rec["killed"]
        print(f"collect {done:>2}/{kills} {mode:<11} {rec['phase']:<8} {rec['seconds']:>6.2f}s  file {rec['file']}"
              f"{'  (mid-write)' if own else ''}{'' if rec['killed'] else '  (finished before its kill)'}"
              f"{'' if rec['ok'] else '  FAILED'}", flush=True)
    # the next run after the last kill of each path cleans up, and nothing is left but the files
    for mode in COLLECT_MODES:
        extra = ["--append", "--seed", str(next_seed)] if mode == "--append" else \
            ["--overwrite"] + (["--workers", "2"] if mode == "--workers 2" else [])
        run = Run(lewm(*base, *extra, "--out", str(paths[mode])), work / "collect-last.log")
        assert run.finish()["returncode"] == 0, run.stderr()[-2000:]
    left = sorted(p.name for p in work.iterdir() if p.name.startswith(".") or ".tmp-" in p.name or ".shard-" in p.name)
    records.append({"run": "collect", "mode": "cleanup", "temporary_files_left": left, "ok": not left})
    return records


# ---------------------------------------------------------------------------------------------- train
def checkpoint_step(ckpt: Path) -> int:
    """The step of a complete checkpoint directory; raises if it does not load."""
    _, weights = read_checkpoint(ckpt)
    assert weights, ckpt
    state = torch.load(ckpt / "train_state.pt", map_location="cpu", weights_only=True)
    return int(state["step"])


def saved_step(run: Path) -> tuple[int | None, str]:
    """(step the next --resume must start from, where it is): ``checkpoint/``, else the newest complete copy a
    swap killed between its renames left hidden beside it (its new one, else its old one)."""
    ckpt = run / "checkpoint"
    if ckpt.exists():
        return checkpoint_step(ckpt), "checkpoint/"
    olds = sorted(run.glob(".checkpoint.old-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in olds:
        for copy in (Path(str(old).replace(".old-", ".tmp-")), old):
            try:
                return checkpoint_step(copy), f"hidden {copy.name.split('-')[0]}"
            except Exception:  # an incomplete copy: the next one is tried, as recover_checkpoint does
                continue
    return None, "none"


def first_bar_step(stderr: str) -> int | None:
    """The step a training run started at: the first count of its progress bar."""
    m = re.search(r"train:\s+\d+%\|[^|]*\|\s*(\d+)/\d+", stderr)
    return int(m.group(1)) if m else None


def train_args(data: Path, run: Path) -> list[str]:
    return ["train", "--data", str(data), "--out", str(run), "--preset", "tiny", "--steps", str(TRAIN_STEPS),
            "--device", "cpu", *CKPT_EVERY_ARGS]


def final_weights_equal(a: Path, b: Path) -> dict:
    _, wa = read_checkpoint(a)
    _, wb = read_checkpoint(b)
    diff = max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)
    return {"identical": all(torch.equal(wa[k], wb[k]) for k in wa) and wa.keys() == wb.keys(), "max_abs_diff": diff}


def inspect_run(run_dir: Path, before: int | None) -> tuple[int | None, str, list[str]]:
    """(saved step, where, problems) of a run directory after a kill: every file the user sees must load."""
    problems = []
    try:
        now, where = saved_step(run_dir)
        if before is not None and (now is None or now < before):
            problems.append(f"checkpoint went back from step {before} to {now}")
        if (run_dir / "train_config.json").exists():
            json.loads((run_dir / "train_config.json").read_text())
        if (run_dir / "agent").exists():
            LeWMAgent.load(run_dir / "agent", device="cpu")
    except Exception as e:  # the verdict of the tally: a file that does not load is a failure, recorded
        return None, "unreadable", problems + [f"{type(e).__name__}: {e}"]
    return now, where, problems


def train_kills(work: Path, kills: int, rng: np.random.Generator) -> list[dict]:
    data = work / "train-data.h5"
    assert subprocess.run(lewm("collect", "--env", "lewm/TwoRoom-v0", "--episodes", "16", "--image-size", "32",
                               "--out", str(data)), cwd=ROOT, capture_output=True).returncode == 0
    started = re.compile(r"train:\s+\d+%")
    reference = Run(lewm(*train_args(data, work / "reference")), work / "train-reference.log")
    out = reference.finish(started)
    assert out["returncode"] == 0 and out["started_s"] is not None, reference.stderr()[-2000:]
    startup_s, work_s = out["started_s"], out["seconds"] - out["started_s"]
    records: list[dict] = []
    chain, run_dir, pending = 0, None, None  # pending: the last kill's record, checked by the next run
    done = 0
    while done < kills or pending is not None:
        if run_dir is None:
            chain += 1
            run_dir = work / f"chain-{chain}"
        step, where = saved_step(run_dir)  # a resume must start here
        stale = dead_leftovers(run_dir / "checkpoint")
        resume = step is not None
        run = Run(lewm(*train_args(data, run_dir), *(["--resume"] if resume else [])), work / "train.log")
        rec = {"run": "train", "chain": chain, "resume": resume, "saved_step": step, "saved_in": where}
        if done < kills:
            rec.update(run.kill_at(rng, started, startup_s, work_s))
        else:
            rec.update(phase="to the end", killed=False, **run.finish())
        err = run.stderr()
        rec["started_at"] = first_bar_step(err)
        own = [entry.name for entry, pid in leftovers(run_dir / "checkpoint") if pid == rec["pid"]]
        now, now_in, problems = inspect_run(run_dir, step)
        rec.update(checkpoint_step=now, checkpoint_in=now_in, problems=problems)
        if pending is not None:  # the previous kill's checks that need this run
            pending["next_run_started_at"] = rec["started_at"]  # None: killed before its bar showed
            pending["resumed_at_saved_step"] = rec["started_at"] in (None, step if resume else 0)
            wrote = now is not None and now != step  # it got as far as a checkpoint write of its own
            pending["stale_left_after_next"] = sorted(set(stale) & set(dead_leftovers(run_dir / "checkpoint",
                                                                                     exclude=rec["pid"]))) \
                if wrote or not rec["killed"] else []
            pending["ok"] = pending["ok"] and pending["resumed_at_saved_step"] and not pending["stale_left_after_next"]
            pending = None
        finished = (run_dir / "agent").exists()
        if finished:  # the chain is complete: its weights against the uninterrupted run's
            rec["chain_final"] = final_weights_equal(run_dir / "agent", work / "reference" / "agent")
            rec["temporary_left"] = [] if rec["killed"] else \
                sorted(p.name for p in run_dir.iterdir() if p.name.startswith("."))
        rec["ok"] = not problems and not rec["orphans"] and (rec["killed"] or rec["returncode"] == 0) and \
            (not finished or rec["chain_final"]["identical"] and not rec["temporary_left"])
        if not rec["killed"] and rec["returncode"] != 0:
            rec["problems"].append(f"exit code {rec['returncode']}: {err.strip().splitlines()[-1:]}")
        if rec["killed"]:
            done += 1
            rec["killed_writing"] = bool(own)  # inside a checkpoint write
            rec["between_renames"] = not (run_dir / "checkpoint").exists() and any(".old-" in n for n in own)
            pending = None if finished else rec
        print(f"train   {f'{done:>2}/{kills}' if rec['killed'] else 'end  '} chain {chain} {rec['phase']:<10} "
              f"{rec['seconds']:>6.2f}s  started at {rec['started_at']} (saved {step}), now {now} ({now_in})"
              f"{'  (mid-write)' if own else ''}{'  (between renames)' if rec.get('between_renames') else ''}"
              + (f"  chain done: weights {'identical to' if rec['chain_final']['identical'] else 'DIFFER from'} "
                 "the uninterrupted run's" if finished else "")
              + ("" if rec["ok"] else "  FAILED " + "; ".join(rec["problems"])), flush=True)
        if finished or not rec["killed"]:
            run_dir = None
        records.append(rec)
    return records


def tally(records: list[dict]) -> dict[str, Any]:
    kills = [r for r in records if r.get("killed")]
    collect = [r for r in kills if r["run"] == "collect"]
    train = [r for r in kills if r["run"] == "train"]
    chains = [r for r in records if r["run"] == "train" and "chain_final" in r]
    return {
        "collect_kills": len(collect),
        "collect_kills_by_mode": {m: sum(r["mode"] == m for r in collect) for m in COLLECT_MODES},
        "collect_killed_while_writing": sum(r["killed_writing"] for r in collect),
        "collect_file_previous_or_absent": sum(r["file"] != "new" and not r["file"].startswith("BAD") for r in collect),
        "collect_file_new": sum(r["file"] == "new" for r in collect),
        "collect_file_bad": sum(r["file"].startswith("BAD") for r in collect),
        "train_kills": len(train),
        "train_killed_in_checkpoint_write": sum(r["killed_writing"] for r in train),
        "train_killed_between_renames": sum(r["between_renames"] for r in train),
        "train_next_run_start_seen": sum(r.get("next_run_started_at") is not None for r in train),
        "train_next_run_started_at_saved_step": sum(r.get("next_run_started_at") is not None and
                                                    r["resumed_at_saved_step"] for r in train),
        "train_chains": len(chains),
        "train_chains_identical_to_uninterrupted": sum(r["chain_final"]["identical"] for r in chains),
        "orphan_processes": sum(len(r.get("orphans", [])) for r in records),
        "stale_temporary_files": sum(len(r.get("stale_left", [])) + len(r.get("stale_left_after_next", [])) +
                                     len(r.get("temporary_left", [])) + len(r.get("temporary_files_left", []))
                                     for r in records),
        "failures": sum(not r["ok"] for r in records),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs of each command (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "kill_tally.json")
    p.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temporary one, removed)")
    args = p.parse_args(argv)
    if args.kills < 1:
        p.error(f"--kills {args.kills} must be >= 1")
    work = args.work or Path(tempfile.mkdtemp(prefix="kill-tally-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    try:
        (work / "collect").mkdir()
        records = collect_kills(work / "collect", args.kills, rng)
        records += train_kills(work, args.kills, rng)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    result = {"command": f"python benchmarks/kill_tally.py --kills {args.kills} --seed {args.seed}",
              "minutes": round((time.perf_counter() - t0) / 60, 1), "tally": tally(records), "records": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    for key, value in result["tally"].items():
        print(f"{key:<42} {value}")
    print(f"\nwrote {args.out} ({result['minutes']} min)")
    return 0 if result["tally"]["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
