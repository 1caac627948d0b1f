"""The `lewm` commands end to end on tiny data: collect -> train -> eval (JSON + video), run resumes."""

import json

import imageio.v2 as imageio
import pytest

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
        assert r["num_episodes"] == 4 and 0 <= r["success_rate"] <= 1
        assert r["ci95"][0] <= r["success_rate"] <= r["ci95"][1]
    protocol = result["lewm"]["protocol"]
    assert protocol["goal_offset"] == 25 and protocol["budget"] == 50 and protocol["plan"]["samples"] == 32
    assert result["lewm"]["plan_seconds_per_decision"] > 0
    frames = imageio.mimread(result["lewm"]["videos"][0])
    assert len(frames) >= 2 and all(f.std() > 5 for f in frames)  # real images, not black or constant
    assert "success" in capsys.readouterr().out


def test_run_is_resumable_and_reuses_finished_stages(tmp_path):
    args = ["run", "--preset", "tiny", "--out", str(tmp_path), "--episodes", "12", "--steps", "8",
            "--eval-episodes", "3", "--video", "0"]
    assert main(args) == 0
    stamp = (tmp_path / "agent" / "model.safetensors").stat().st_mtime_ns
    assert main(args) == 0  # second run: data and agent reused, only evaluation again
    assert (tmp_path / "agent" / "model.safetensors").stat().st_mtime_ns == stamp


def test_unknown_override_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no field 'lr_typo'"):
        main(["train", "--data", "x.h5", "--out", str(tmp_path), "--train", "lr_typo=1"])


def test_missing_data_file_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "r"), "--preset", "tiny"]) == 2
    assert "missing.h5" in capsys.readouterr().err
