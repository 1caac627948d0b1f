"""The `lewm` commands end to end on tiny data: collect -> train -> eval (JSON + video), run resumes."""

import json

import imageio.v2 as imageio

from lewm_agent.cli import main


def test_collect_train_eval(tmp_path, capsys):
    data = tmp_path / "tworoom.h5"
    assert main(["collect", "--episodes", "12", "--image-size", "32", "--out", str(data)]) == 0
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny",
                 "--steps", "10", "--train", "log_every=5"]) == 0
    assert main(["eval", "--agent", str(tmp_path / "run" / "agent"), "--eval-episodes", "4", "--video", "1"]) == 0
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    for name in ("lewm", "random"):
        r = result[name]
        flags = [e["success"] for e in r["episodes"]]  # one per pair, each from the env's own success test
        assert r["num_episodes"] == len(flags) == 4 and r["successes"] == sum(flags)
        assert r["success_rate"] == sum(flags) / 4 and r["ci95"][0] <= r["success_rate"] <= r["ci95"][1]
    protocol, extra = result["lewm"]["protocol"], result["lewm"]["extra"]
    assert protocol["goal_offset"] == 25 and protocol["budget"] == 50 and extra["plan"]["samples"] == 32
    assert extra["plan_seconds_per_decision"] > 0 and result["lewm"]["env_id"] == extra["trained_env_id"]
    assert result["lewm"]["pairs_fingerprint"] == result["random"]["pairs_fingerprint"]
    frames = imageio.mimread(tmp_path / "run" / result["lewm"]["videos"][0])  # relative to eval.json's directory
    assert len(frames) >= 2 and all(f.std() > 5 for f in frames)  # real images, not black or constant
    assert "success" in capsys.readouterr().out
    assert protocol["skip_trivial"] is True
    kept = tmp_path / "kept.json"  # the reference's protocol: pairs solved at the start stay in
    assert main(["eval", "--agent", str(tmp_path / "run" / "agent"), "--eval-episodes", "4", "--no-random",
                 "--keep-trivial", "--out", str(kept)]) == 0
    assert json.loads(kept.read_text())["lewm"]["protocol"]["skip_trivial"] is False


def test_run_is_resumable_and_reuses_finished_stages(tmp_path, capsys):
    args = ["run", "--preset", "tiny", "--out", str(tmp_path), "--episodes", "12", "--steps", "8",
            "--eval-episodes", "3", "--video", "0"]
    assert main(args) == 0
    stamps = {p: (tmp_path / p).stat().st_mtime_ns
              for p in ("agent/model.safetensors", "episodes.h5", "tasks/TwoRoom/task.json", "tasks/TwoRoom/pairs.npz")}
    records = {m: json.loads((tmp_path / "cells" / "TwoRoom" / f"{m}.json").read_text()) for m in ("lewm", "random")}
    assert main(args) == 0  # second run: task, data and agent reused, only evaluation again
    assert {p: (tmp_path / p).stat().st_mtime_ns for p in stamps} == stamps
    again = {m: json.loads((tmp_path / "cells" / "TwoRoom" / f"{m}.json").read_text()) for m in ("lewm", "random")}
    for m in ("lewm", "random"):
        assert again[m]["status"] == "ok" and again[m]["key"] == records[m]["key"]
        assert again[m]["episodes"] == records[m]["episodes"], "the same pairs, the same deterministic outcomes"
    task = json.loads((tmp_path / "tasks" / "TwoRoom" / "task.json").read_text())["task"]
    agent = json.loads((tmp_path / "agent" / "config.json").read_text())
    assert agent["metadata"]["val_episodes"] == task["held_out_episodes"], "trained on the task's own split"
    assert records["lewm"]["data_used"] > 0 and records["lewm"]["extra"]["steps"] == 8
    assert records["random"]["data_kind"] == "none" and records["random"]["budget"] == {}
    assert main([*args, "--plan", "horizon=2", "--plan", "receding_horizon=1"]) == 0  # another planner: same agent
    assert {p: (tmp_path / p).stat().st_mtime_ns for p in stamps} == stamps
    replanned = json.loads((tmp_path / "cells" / "TwoRoom" / "lewm.json").read_text())
    assert replanned["key"] != records["lewm"]["key"]
    assert (replanned["extra"]["plan"]["horizon"], replanned["extra"]["plan"]["receding_horizon"]) == (2, 1)
    capsys.readouterr()
    assert main([*args[:6], "13", *args[7:]]) == 2  # other task settings in the same directory: refused
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "episodes was 12, now 13" in err and "use another run directory" in err


def test_unknown_override_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--data", "x.h5", "--out", str(tmp_path), "--train", "lr_typo=1"]) == 2
    assert "no field 'lr_typo'" in capsys.readouterr().err


def test_missing_data_file_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "r"),
                 "--preset", "tiny"]) == 2
    assert "missing.h5" in capsys.readouterr().err
