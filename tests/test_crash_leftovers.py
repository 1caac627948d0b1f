"""What a killed process leaves behind (issue 13, item 6): a checkpoint swap killed between its two renames is
recovered by --resume, temporary files of dead processes are cleaned by the next run, collection workers die with
their parent, and SIGTERM cleans up as Ctrl-C does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from lewm_agent.checkpoint import read_checkpoint
from lewm_agent.config import preset, replace
from lewm_agent.files import leftovers
from lewm_agent.train import train

ROOT = Path(__file__).resolve().parent.parent

# a run that resumes from step 4 and is SIGKILLed inside its next checkpoint swap, between the two renames
KILL_BETWEEN_RENAMES = """
import os, signal, sys
import lewm_agent.checkpoint as ckpt
from lewm_agent.config import preset, replace
from lewm_agent.train import train

real_replace = os.replace
def replace_then_die(src, dst):
    real_replace(src, dst)
    if ".old-" in str(dst):  # the old checkpoint moved aside, the new one not yet in place
        os.kill(os.getpid(), signal.SIGKILL)
ckpt.os.replace = replace_then_die
p = preset("tiny")
train(sys.argv[1], sys.argv[2], p.model, replace(p.train, steps=8, ckpt_every=2), p.plan, resume=True, progress=False)
"""


def test_a_swap_killed_between_its_renames_is_recovered_by_resume(tiny_data, tmp_path):
    p = preset("tiny")
    cfg = replace(p.train, steps=8, ckpt_every=2)
    full = train(tiny_data, tmp_path / "full", p.model, cfg, p.plan, progress=False)
    run = tmp_path / "run"
    train(tiny_data, run, p.model, cfg, p.plan, progress=False, stop_at=4)
    proc = subprocess.run([sys.executable, "-c", KILL_BETWEEN_RENAMES, str(tiny_data), str(run)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (run / "checkpoint").exists(), "killed between the renames: no checkpoint/ at its place"
    names = sorted(entry.name.split("-")[0] for entry, _ in leftovers(run / "checkpoint"))
    assert names == [".checkpoint.old", ".checkpoint.tmp"], names
    resumed = train(tiny_data, run, p.model, cfg, p.plan, resume=True, progress=False)
    assert resumed.steps == 8 and not leftovers(run / "checkpoint"), "recovered, and no temporary directory left"
    _, w_full = read_checkpoint(full.agent_dir)
    _, w_run = read_checkpoint(resumed.agent_dir)
    for k in w_full:  # the swap's new checkpoint (step 6) was put in place: the same weights as uninterrupted
        torch.testing.assert_close(w_run[k], w_full[k], rtol=1e-5, atol=1e-6)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_temporary_files_of_dead_processes_are_cleaned_by_the_next_run(tiny_data, tmp_path):
    from lewm_agent.data import collect

    out = tmp_path / "data.h5"
    dead, alive = _dead_pid(), os.getppid()  # a writer that was killed, and one that is still running
    stale = [tmp_path / f"data.h5.tmp-{dead}", tmp_path / f"data.h5.shard-{dead}-0", tmp_path / f"data.h5.tmp-{alive}"]
    for path in stale:
        path.write_bytes(b"half an episode file")
    collect("lewm/TwoRoom-v1", out, num_episodes=1, env_kwargs={"image_size": 16}, max_steps=5, progress=False)
    assert [p.exists() for p in stale] == [False, False, True], "the dead writer's files go, a live one's stay"
    run = tmp_path / "run"
    (run / f".checkpoint.tmp-{dead}").mkdir(parents=True)
    p = preset("tiny")
    train(tiny_data, run, p.model, replace(p.train, steps=2), p.plan, progress=False)
    assert not leftovers(run / "checkpoint")


def test_a_zombie_writer_is_dead(tmp_path):
    """A killed writer not yet reaped by its parent (a zombie) writes nothing more: its files go."""
    from lewm_agent.files import pid_alive, remove_leftovers

    proc = subprocess.Popen(["true"])
    _wait_for(lambda: _state(proc.pid) == "Z", 30, "the child never exited")
    try:
        stale = tmp_path / f"data.h5.tmp-{proc.pid}"
        stale.write_bytes(b"half an episode file")
        assert not pid_alive(proc.pid) and remove_leftovers(tmp_path / "data.h5") == [stale]
    finally:
        proc.wait()


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.time() + seconds  # a safety net against a hang, not a guess at the duration
    while not predicate():
        assert time.time() < deadline, what
        time.sleep(0.1)


def test_collection_workers_die_with_their_parent(tmp_path):
    out = tmp_path / "data.h5"
    cmd = [sys.executable, "-m", "lewm_agent.cli", "collect", "--episodes", "40", "--workers", "2", "--image-size",
           "16", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: len(list(tmp_path.glob("data.h5.shard-*"))) == 2 or proc.poll() is not None, 300,
                  "the workers never started their shards")
        assert proc.poll() is None, "finished before it could be killed"
        kids = _children(proc.pid)
        assert len(kids) >= 3, kids  # the manager and two workers
    finally:
        proc.kill()
    proc.wait()
    _wait_for(lambda: not any(Path(f"/proc/{k}").exists() and _state(k) != "Z" for k in kids), 30,
              f"orphaned workers still running: {kids}")
    # the next run cleans what the killed one left, and writes the file
    assert subprocess.run(cmd[:5] + ["2", "--workers", "2", "--image-size", "16", "--max-steps", "5", "--out",
                                     str(out)], cwd=ROOT, capture_output=True, timeout=300).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5"]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    out = tmp_path / "data.h5"
    proc = subprocess.Popen([sys.executable, "-m", "lewm_agent.cli", "collect", "--episodes", "200", "--image-size",
                             "16", "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for(lambda: any(tmp_path.glob("data.h5.tmp-*")) or proc.poll() is not None, 300,
              "the collection never opened its temporary file")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err[-2000:]
    assert list(tmp_path.iterdir()) == [], "no temporary file, no half-written output"
