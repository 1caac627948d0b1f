"""The catalogue of bad inputs (issue 13): each is refused before any work, with exit code 2, one line that
names the problem and the fix, no traceback, and no existing file changed (checked by hash)."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from lewm_agent.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_data, tiny_run):
    """A directory of things a user already made: an episode file, a finished run, a file and a directory."""
    root = tmp_path_factory.mktemp("bad-inputs")
    shutil.copy(tiny_data, root / "data.h5")
    shutil.copytree(tiny_run, root / "run")
    (root / "file.txt").write_text("not a directory\n")
    (root / "dir").mkdir()
    return root


def hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``: the state a refused command must leave as it found it."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def refused(argv: list[str], root: Path, capsys) -> str:
    """Run ``lewm ARGV``; assert exit code 2, one ``error:`` line on stderr and no file under ``root`` changed."""
    before = hashes(root)
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert hashes(root) == before, "a refused command changed a file"
    return lines[0]


TRAIN = ["train", "--data", "{root}/data.h5", "--preset", "tiny", "--steps", "2"]
COLLECT = ["collect", "--episodes", "2", "--image-size", "32", "--max-steps", "30"]

CASES = {
    # item 1: nothing the user made is replaced without being asked
    "train onto a finished run": (TRAIN + ["--out", "{root}/run"], r"already holds a run.*--resume.*--overwrite"),
    "train with --resume and --overwrite": (TRAIN + ["--out", "{root}/run", "--resume", "--overwrite"],
                                            r"exclude each other"),
    "collect onto an existing file": (COLLECT + ["--out", "{root}/data.h5"], r"already exists.*--append.*--overwrite"),
    "collect --append and --overwrite": (COLLECT + ["--out", "{root}/data.h5", "--append", "--overwrite"],
                                         r"exclude each other"),
    "collect --append with the file's seeds": (COLLECT + ["--out", "{root}/data.h5", "--append", "--seed", "3"],
                                               r"seeds 0\.\.15.*--seed 16"),
    "collect --out a directory": (COLLECT + ["--out", "{root}/dir"], r"is a directory"),
    "collect --out under a file": (COLLECT + ["--out", "{root}/file.txt/x.h5"], r"is a file, not a directory"),
    "train --out a file": (TRAIN + ["--out", "{root}/file.txt"], r"is a file, not a directory"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused(case, world, capsys):
    argv, message = CASES[case]
    line = refused([a.format(root=world) for a in argv], world, capsys)
    assert re.search(message, line), line


def test_overwrite_and_append_do_what_they_say(world, tmp_path, capsys):
    data, run = tmp_path / "data.h5", tmp_path / "run"
    shutil.copy(world / "data.h5", data)
    shutil.copytree(world / "run", run)
    old_data, old_agent = hashes(tmp_path)["data.h5"], hashes(run)["agent/model.safetensors"]
    old_logs = set(hashes(run / "tb"))
    argv = ["collect", "--episodes", "2", "--image-size", "32", "--max-steps", "30", "--out", str(data)]
    assert main(argv + ["--overwrite"]) == 0 and hashes(tmp_path)["data.h5"] != old_data
    assert main(argv + ["--append", "--seed", "2"]) == 0  # seeds 2, 3 after the new file's 0, 1
    assert "4 episodes" in capsys.readouterr().out
    assert main(["train", "--data", str(data), "--out", str(run), "--preset", "tiny", "--steps", "2",
                 "--overwrite"]) == 0
    assert hashes(run)["agent/model.safetensors"] != old_agent
    assert old_logs and not old_logs & set(hashes(run / "tb")), "the replaced run's TensorBoard log went with it"
