"""experiments/scaling.py: the `smoke` study end to end, resumable, and its report."""

import json

import pytest

from experiments.scaling import main


def test_smoke_study_runs_resumes_and_reports(tmp_path):
    root, docs = tmp_path / "study", tmp_path / "docs"
    args = ["--study", "smoke", "--root", str(root), "--no-progress"]
    # a time limit far below one step: the variant stops after its first step; evaluated as unfinished
    assert main(args + ["--variants", "steps-10", "--time-limit", "1e-9", "--eval-unfinished"]) == 0
    rec = json.loads((root / "records" / "steps-10.json").read_text())
    assert rec["status"] == "unfinished" and 1 <= rec["steps_done"] < 10
    assert main(args) == 0  # resumes steps-10, runs the rest
    records = {p.stem: json.loads(p.read_text()) for p in (root / "records").glob("*.json")}
    assert set(records) == {"steps-10", "steps-20", "data-16"}
    for r in records.values():
        assert r["status"] == "ok" and r["steps_done"] == r["steps"] and r["num_pairs"] == 4
        assert 0 <= r["success_rate"] <= 1 and -1 <= r["probe_r"] <= 1 and -1 <= r["local_rank_corr"] <= 1
    # every variant is scored on the same pairs: one evaluation file per image size
    assert len({r["image_size"] for r in records.values()}) == 1 and len(list((root / "data").glob("*eval*"))) == 1
    assert main(["--study", "smoke", "--root", str(root), "--report", "--docs", str(docs)]) == 0
    md = (docs / "scaling_smoke.md").read_text()
    assert "| steps-10 | 10 |" in md and (docs / "assets" / "scaling_smoke.png").stat().st_size > 10_000
    # the report keeps a copy of every record beside the page: a reset of results/ loses no row or point
    archive = docs / "records" / "scaling_smoke"
    assert {p.stem for p in archive.glob("*.json")} == set(records)
    assert json.loads((archive / "data-16.json").read_text()) == records["data-16"]
    row = next(line for line in md.splitlines() if line.startswith("| data-16 |"))
    (root / "records" / "data-16.json").unlink()
    assert main(["--study", "smoke", "--root", str(root), "--report", "--docs", str(docs)]) == 0
    md2 = (docs / "scaling_smoke.md").read_text()
    assert row in md2 and "carried over" not in md2
    # a record lost everywhere (a page from before the copies): its row stays, marked as carried over
    (archive / "data-16.json").unlink()
    assert main(["--study", "smoke", "--root", str(root), "--report", "--docs", str(docs)]) == 0
    md3 = (docs / "scaling_smoke.md").read_text()
    assert row in md3 and "carried over" in md3 and md3.count("| steps-10 | 10 |") == 1


def test_bad_arguments_are_refused_before_any_work(tmp_path):
    with pytest.raises(SystemExit, match="unknown variants"):
        main(["--study", "smoke", "--root", str(tmp_path), "--variants", "nope"])
    with pytest.raises(SystemExit, match="time-limit"):
        main(["--study", "smoke", "--root", str(tmp_path), "--time-limit", "0"])
    assert not (tmp_path / "data").exists()
