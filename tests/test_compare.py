"""experiments/compare.py end to end on the `smoke` preset, with every registered method."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from experiments import compare
from experiments.baselines import METHODS, load_pairs, pairs_fingerprint

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke preset, every registered method, run once for this module: (run_dir, exit code, records)."""
    results = tmp_path_factory.mktemp("results")
    code = compare.main(["--preset", "smoke", "--results", str(results), "--no-progress"])
    run_dir = results / "smoke"
    return run_dir, code, json.loads((run_dir / "results.json").read_text())["cells"]


def test_smoke_runs_every_method_and_writes_every_output(smoke):
    run_dir, code, cells = smoke
    by_method = {c["method"]: c for c in cells}
    assert set(by_method) == set(METHODS), "every registered (hence installed) method gets a cell"
    failed = {m: c.get("message") for m, c in by_method.items() if c["status"] != "ok"}
    assert not failed and code == 0, failed
    for c in cells:
        assert 0 <= c["ci95"][0] <= c["success_rate"] <= c["ci95"][1] <= 1
        assert c["num_episodes"] == 6 and c["decision_ms_median"] > 0 and c["peak_rss_mb"] > 50
        learned = c["data_kind"] != "none"
        assert (c["data_used"] > 0 and c["params"] > 0 and c["train_seconds"] > 0) == learned, c["method"]
    assert by_method["lewm"]["data_kind"] == "offline transitions"
    assert by_method["sb3-ppo"]["data_kind"] == "env interactions" and by_method["sb3-ppo"]["data_used"] >= 256
    assert by_method["lewm-nosigreg"]["extra"]["sigreg_lambda"] == 0 < by_method["lewm"]["extra"]["sigreg_lambda"]

    table = (run_dir / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| TwoRoom |")]
    assert sorted(r.split("|")[2].strip() for r in rows) == sorted(METHODS)
    with open(run_dir / "results.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert {r["method"] for r in csv_rows} == set(METHODS)
    assert all(float(r["ci95_low"]) <= float(r["success_rate"]) <= float(r["ci95_high"]) for r in csv_rows)

    for name in ("success", "success_vs_time", "latency"):
        image = imageio.imread(run_dir / "plots" / f"{name}.png")
        assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 10, name
        assert f"plots/{name}.png" in table
    for c in cells:
        assert c["videos"], c["method"]
        frames = np.stack(list(imageio.mimread(run_dir / c["videos"][0])))
        assert len(frames) >= 2 and frames.mean() > 5 and frames.std() > 5, c["method"]
    for method, c in by_method.items():
        if c["data_kind"] != "none":  # every learning method logged its training curves under tb/<task>/<method>
            scalars = []
            for events in (run_dir / "tb" / "TwoRoom" / method).rglob("events.out.tfevents*"):
                acc = EventAccumulator(str(events))
                acc.Reload()
                scalars += acc.Tags()["scalars"]
            assert scalars, f"{method} logged no training scalars"
            if method.startswith("lewm"):  # and the planner's search diagnostics of every decision
                assert {"plan/best_cost", "plan/elite_cost", "plan/std", "plan/iterations"} <= set(scalars), scalars


def test_every_method_is_evaluated_on_the_same_pairs(smoke):
    run_dir, _, cells = smoke
    task = json.loads((run_dir / "tasks" / "TwoRoom" / "task.json").read_text())["task"]
    pairs = load_pairs(Path(task["pairs_path"]))
    assert len(pairs) == 6
    assert {p.episode for p in pairs} <= set(task["held_out_episodes"])
    assert not set(task["held_out_episodes"]) & set(task["train_episodes"])
    expected = [(p.episode, p.row) for p in pairs]
    for c in cells:
        assert c["pairs_fingerprint"] == pairs_fingerprint(pairs), c["method"]
        assert [(e["episode"], e["row"]) for e in c["episodes"]] == expected, c["method"]
    lewm = next(c for c in cells if c["method"] == "lewm")
    agent_cfg = json.loads((run_dir / "work" / "TwoRoom" / "lewm" / "agent" / "config.json").read_text())
    assert agent_cfg["metadata"]["val_episodes"] == task["held_out_episodes"], "LeWM never trained on a pair's episode"
    assert lewm["status"] == "ok"


def test_every_cell_writes_its_settings_and_success_as_hparams(smoke):
    from lewm_agent.hparams import flatten_hparams, read_hparams

    run_dir, _, cells = smoke
    for c in cells:
        session = run_dir / "tb" / "TwoRoom" / c["method"] / "record"
        hp = read_hparams(session)
        assert hp["method"] == c["method"] and hp["task"] == "TwoRoom" and hp["env_id"] == "lewm/TwoRoom-v1"
        assert hp["episodes"] == 20 and hp["policy"] == "expert" and hp["protocol.num_episodes"] == 6
        assert hp["env_kwargs.image_size"] == 64 and hp["split.val_fraction"] == 0.1
        for name, value in flatten_hparams({"budget": c["budget"]}).items():
            assert hp[name] == (float(value) if type(value) in (int, float) else value), (c["method"], name)
        acc = EventAccumulator(str(session))
        acc.Reload()
        assert acc.Scalars("success_rate")[-1].value == pytest.approx(c["success_rate"]), c["method"]
        assert acc.Scalars("train_seconds")[-1].value == pytest.approx(c["train_seconds"], rel=1e-6), c["method"]
    training = read_hparams(run_dir / "tb" / "TwoRoom" / "lewm")  # LeWM's own log: its configs
    assert training["train.steps"] == 30 and training["model.latent_dim"] == 16 and "plan.samples" in training


def test_lewm_run_writes_records_in_the_schema_of_a_comparison_cell(smoke, tmp_path):
    from experiments.report import markdown_table
    from lewm_agent.cli import main as lewm
    from lewm_agent.hparams import read_hparams

    _, _, cells = smoke
    out = tmp_path / "run"
    assert lewm(["run", "--preset", "tiny", "--out", str(out), "--episodes", "12", "--steps", "8",
                 "--eval-episodes", "3", "--video", "1"]) == 0
    cell = {c["method"]: c for c in cells}
    records = []
    for method in ("lewm", "random"):
        record = json.loads((out / "cells" / "TwoRoom" / f"{method}.json").read_text())
        assert list(record) == list(cell[method]), method  # the same fields, in the same order
        assert set(record["extra"]) <= set(cell[method]["extra"]), method
        assert record["status"] == "ok" and (out / record["videos"][0]).exists()
        hp = read_hparams(out / "tb" / "TwoRoom" / method / "record")
        assert hp["method"] == method and hp["episodes"] == 12 and hp["protocol.num_episodes"] == 3
        records.append(record)
    assert read_hparams(out / "tb" / "TwoRoom" / "lewm" / "record")["budget.train.steps"] == 8
    assert len({r["pairs_fingerprint"] for r in records}) == 1
    table = markdown_table(records)  # experiments/report.py reads them as it reads a comparison's cells
    assert "| TwoRoom | lewm |" in table and "| TwoRoom | random |" in table


def test_planner_sweep_on_a_comparison_run_resumes_and_reports(smoke, capsys):
    """experiments/planners.py: settings on the run's LeWM agent and pairs, saved per setting, table + plot."""
    from experiments import planners

    run_dir, _, cells = smoke
    lewm_cell = next(c for c in cells if c["method"] == "lewm")
    code = planners.main(["--run", str(run_dir), "--tasks", "TwoRoom", "--settings", "default,cem-300x10,policy",
                          "--policy-steps", "20", "--no-progress"])
    assert code == 0
    records = json.loads((run_dir / "planners" / "planners.json").read_text())
    by_name = {r["setting"]: r for r in records}
    assert set(by_name) == {"default", "cem-300x10", "policy"}
    # the default setting is the comparison's own evaluation: the same pairs, the same outcomes
    assert [e["success"] for e in by_name["default"]["episodes"]] == [e["success"] for e in lewm_cell["episodes"]]
    assert by_name["default"]["seconds_per_plan"] < by_name["cem-300x10"]["seconds_per_plan"]  # tiny: 32x3
    assert (run_dir / "planners" / "TwoRoom" / "agent_policy" / "config.json").exists()
    assert "| cem-300x10 |" in (run_dir / "planners" / "planners.md").read_text()
    assert (run_dir / "planners" / "success_vs_time.png").stat().st_size > 1000
    capsys.readouterr()
    assert planners.main(["--run", str(run_dir), "--tasks", "TwoRoom", "--settings", "cem-300x10",
                          "--no-progress"]) == 0
    assert "done before" in capsys.readouterr().out


FAILING_PLUGIN = """
from experiments.baselines import register


@register("always-fails")
def always_fails(task, ctx, budget):
    raise RuntimeError("this method always fails")
"""


def test_a_failing_method_is_reported_and_loses_no_other_cell(smoke, tmp_path, monkeypatch, capsys):
    run_dir, _, _ = smoke
    (tmp_path / "failing_plugin.py").write_text(FAILING_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))  # the spawned cells get this sys.path too
    before = {p.name: p.stat().st_mtime_ns for p in (run_dir / "cells" / "TwoRoom").glob("*.json")}
    try:
        code = compare.main(["--preset", "smoke", "--results", str(run_dir.parent), "--no-progress",
                             "--methods", "random,expert,always-fails", "--plugin", "failing_plugin"])
    finally:  # registered in this process too: gone again for the other tests
        METHODS.pop("always-fails", None)
        sys.modules.pop("failing_plugin", None)
    assert code == 1
    cells = {c["method"]: c for c in json.loads((run_dir / "results.json").read_text())["cells"]}
    assert cells["always-fails"]["status"] == "error" and "always fails" in cells["always-fails"]["message"]
    assert cells["random"]["status"] == cells["expert"]["status"] == "ok"
    after = {p.name: p.stat().st_mtime_ns for p in (run_dir / "cells" / "TwoRoom").glob("*.json")}
    assert after["random.json"] == before["random.json"] and after["expert.json"] == before["expert.json"]
    assert "**error**" in (run_dir / "results.md").read_text()
    # a bad budget is not a failing cell: it is refused before any cell runs
    capsys.readouterr()
    assert compare.main(["--preset", "smoke", "--results", str(run_dir.parent), "--no-progress",
                         "--methods", "random,lewm", "--set", "lewm.preset=nonexistent"]) == 2
    assert "Budget.preset='nonexistent'" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "cells" / "TwoRoom").glob("*.json")} == after


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float) -> None:
    """Poll until ``path`` exists; fail with the run's output if ``proc`` ends or ``seconds`` pass first.

    The limit is a safety net for a hung run, not a guess at how long the run takes (a loaded machine
    is slow): the test waits for the event itself."""
    deadline = time.time() + seconds
    while not path.exists():
        if proc.poll() is not None or time.time() > deadline:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"{path} never appeared (exit {proc.wait()}):\n" + proc.stdout.read().decode()[-2000:])
        time.sleep(0.1)


def test_killed_run_resumes_with_only_the_missing_cells(tmp_path):
    cmd = [sys.executable, str(ROOT / "experiments" / "compare.py"), "--preset", "smoke", "--results", str(tmp_path),
           "--no-progress", "--methods", "random,expert,lewm", "--set", "lewm.steps=600"]
    cells = tmp_path / "smoke" / "cells" / "TwoRoom"
    # a shell that started this run in the background (cmd &) leaves SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: restore the default so that the run can be interrupted
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for(cells / "expert.json", proc, 900)
    # interrupted on an event, not after a sleep: the lewm cell's first checkpoint (step 25 of 600) means it is
    # inside training with something to resume from, however fast or slow the machine
    checkpoint = tmp_path / "smoke" / "work" / "TwoRoom" / "lewm" / "checkpoint" / "config.json"
    _wait_for(checkpoint, proc, 900)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(120)
    assert not (cells / "lewm.json").exists(), "the interrupted cell left no record"
    saved = json.loads(checkpoint.read_text())["metadata"]["train_step"]
    assert 0 < saved < 600
    first = {name: (cells / f"{name}.json").stat().st_mtime_ns for name in ("random", "expert")}
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "random: done before" in out.stdout and "expert: done before" in out.stdout
    assert {name: (cells / f"{name}.json").stat().st_mtime_ns for name in ("random", "expert")} == first
    assert json.loads((cells / "lewm.json").read_text())["status"] == "ok"


def test_a_plugin_method_joins_the_same_comparison(smoke):
    run_dir, _, _ = smoke
    code = compare.main(["--preset", "smoke", "--results", str(run_dir.parent), "--no-progress", "--methods", "sb3-a2c",
                         "--plugin", "examples.custom_method", "--set", "sb3-a2c.timesteps=64"])
    assert code == 0
    cell = json.loads((run_dir / "cells" / "TwoRoom" / "sb3-a2c.json").read_text())
    assert cell["status"] == "ok" and cell["data_used"] >= 64
    task = json.loads((run_dir / "tasks" / "TwoRoom" / "task.json").read_text())["task"]
    assert cell["pairs_fingerprint"] == pairs_fingerprint(load_pairs(Path(task["pairs_path"])))


def test_a_changed_lewm_preset_runs_its_cells_again_and_no_other(smoke, monkeypatch, capsys, tmp_path):
    """A cell names its LeWM preset; when that preset's configs change, its finished cell is stale."""
    from lewm_agent import config

    run_dir, _, _ = smoke
    cells = run_dir / "cells" / "TwoRoom"
    before = {m: json.loads((cells / f"{m}.json").read_text())["key"] for m in ("random", "lewm")}
    args = ["--preset", "smoke", "--results", str(run_dir.parent), "--no-progress", "--methods", "random,lewm"]
    capsys.readouterr()
    assert compare.main(args) == 0
    out = capsys.readouterr().out
    assert "random: done before" in out and "lewm: done before" in out, "an unchanged preset reuses the cell"
    tiny = config.PRESETS["tiny"]

    def changed_tiny():
        p = tiny()
        p.plan = config.replace(p.plan, samples=p.plan.samples + 1)
        return p

    monkeypatch.setitem(config.PRESETS, "tiny", changed_tiny)
    assert compare.main(args) == 0
    out = capsys.readouterr().out
    assert "random: done before" in out and "lewm: done before" not in out
    after = {m: json.loads((cells / f"{m}.json").read_text()) for m in ("random", "lewm")}
    assert after["random"]["key"] == before["random"] and after["lewm"]["key"] != before["lewm"]
    assert after["lewm"]["status"] == "ok"
    assert after["lewm"]["extra"]["policy_training"] is None, "a preset without a latent policy trains none"

    # a preset that plans from a latent policy's proposal trains one with the model. Cells run in spawned
    # processes, so the changed preset comes as a plugin module, imported there too (sys.path is inherited)
    plugin = tmp_path / "tiny_with_latent_policy.py"
    plugin.write_text("from lewm_agent import config\n"
                      "_tiny = config.PRESETS['tiny']\n"
                      "def _with_policy():\n"
                      "    p = _tiny()\n"
                      "    p.latent_policy = config.PolicyConfig(steps=5, hidden=16, depth=1, batch_size=32)\n"
                      "    return p\n"
                      "config.PRESETS['tiny'] = _with_policy\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(config.PRESETS, "tiny", tiny)  # restored after the test, whatever the plugin sets
    assert compare.main([*args, "--plugin", "tiny_with_latent_policy"]) == 0
    assert "lewm: done before" not in capsys.readouterr().out
    record = json.loads((cells / "lewm.json").read_text())
    assert record["status"] == "ok" and record["key"] != after["lewm"]["key"]
    assert record["extra"]["policy_training"]["config"]["steps"] == 5


@pytest.mark.parametrize("name", compare.PRESETS)
def test_every_preset_budget_is_accepted_by_its_method(name):
    """`full` cannot run here (it needs a GPU and hours): at least every budget field it sets must exist and
    validate."""
    from experiments.baselines import budget_from, dreamer, lewm, sb3
    from lewm_agent.config import preset

    cfg = compare.make_config(name)
    assert set(cfg.methods) <= set(METHODS) and cfg.tasks
    for task in cfg.tasks:
        assert task in compare.TASKS
        short, spec = cfg.spec(task)
        for method in {"lewm", "lewm-nosigreg"} & set(cfg.methods):
            b = budget_from(lewm.Budget, cfg.budget(spec, method))
            p = preset(b.preset)
            assert cfg.image_size % (b.patch_size or p.model.patch_size) == 0
            assert p.env_id in (None, spec.env_id), f"{short}: LeWM preset {b.preset} was made for {p.env_id}"
        if "sb3-ppo" in cfg.methods:
            budget_from(sb3.PPOBudget, cfg.budget(spec, "sb3-ppo"))
            budget_from(sb3.SACBudget, cfg.budget(spec, "sb3-sac"))
            dreamer._check_budget(budget_from(dreamer.Budget, cfg.budget(spec, "dreamerv3")))


def test_unknown_budget_field_is_a_clear_error():
    from experiments.baselines import budget_from, sb3

    with pytest.raises(ValueError, match=r"PPOBudget has no field 'timestep'; did you mean 'timesteps'"):
        budget_from(sb3.PPOBudget, {"timestep": 10})
    with pytest.raises(SystemExit, match="METHOD.KEY=VALUE"):
        compare.apply_overrides(compare.make_config("smoke"), ["sb3-ppo=3"])



def test_tasks_preset_gives_each_task_its_own_lewm_preset_and_set_beats_it():
    cfg = compare.make_config("tasks")
    assert cfg.methods == ["random", "expert", "lewm", "gcbc", "gciql"] and not cfg.every_method  # unless --methods
    _, reacher = cfg.spec("Reacher")
    _, tworoom = cfg.spec("TwoRoom")
    assert cfg.budget(reacher, "lewm") == {"preset": "reacher"} and cfg.budget(tworoom, "lewm") == {"preset": "tworoom"}
    assert cfg.spec("lewm/Reacher-v0")[1] == reacher, "a task named by its env id gets the same recipe"
    over = compare.apply_overrides(cfg, ["lewm.steps=7"])
    assert over.budget(over.spec("Reacher")[1], "lewm") == {"preset": "reacher", "steps": 7}
    assert cfg.budget(reacher, "lewm") == {"preset": "reacher"}, "the preset itself is left unchanged"
    quick = compare.make_config("quick")
    assert cfg.budget(tworoom, "gcbc") == quick.budgets["gcbc"], "TwoRoom: the offline baselines get quick's budget"
    assert cfg.budget(reacher, "gciql") == compare.OFFLINE_BUDGETS["tasks"]["gciql"] != quick.budgets["gciql"]


def test_readme_block_gets_the_per_task_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- smoke-table:begin -->\nold table\n<!-- smoke-table:end -->\noutro\n")
    base = ["--preset", "smoke", "--results", str(tmp_path / "results"), "--no-progress"]
    assert compare.main(base + ["--methods", "random"]) == 0  # an earlier piece of the same run
    assert compare.main(base + ["--methods", "expert", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n<!-- smoke-table:begin -->\n| task | LeWM | GCBC | GCIQL | random | expert |")
    assert "old table" not in text
    row = next(line for line in text.splitlines() if line.startswith("| TwoRoom |"))
    lewm, gcbc, gciql, rnd, expert = row.split("|")[2:7]
    assert "not run" in gcbc and "not run" in gciql, row
    assert "not run" in lewm and "%" in expert, row
    assert "%" in rnd, "the cell finished by an earlier call on the same run is reported too: " + row
    assert text.endswith("<!-- smoke-table:end -->\noutro\n")


def test_readme_without_markers_is_refused_before_any_work(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(SystemExit):
        compare.main(["--preset", "smoke", "--results", str(tmp_path / "r"), "--readme", str(readme)])
    assert "smoke-table:begin" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and readme.read_text() == "no markers here\n"


def test_a_changed_planner_keeps_the_trained_work_and_a_changed_training_does_not(tmp_path):
    """A preset whose planner alone changed re-evaluates the trained agent; other changes start the work afresh."""
    from experiments.compare import _claim_work, _trained_part

    resolved = {"model": {"history": 3}, "train": {"steps": 10}, "plan": {"horizon": 3, "ensemble": False},
                "latent_policy": {"steps": 5}}
    replanned = {**resolved, "plan": {"horizon": 3, "ensemble": True}}
    assert _trained_part(resolved) == _trained_part(replanned)
    assert _trained_part(resolved) != _trained_part({**resolved, "plan": {"horizon": 5, "ensemble": False}})
    assert _trained_part(resolved) != _trained_part({**resolved, "train": {"steps": 20}})
    agent = tmp_path / "work" / "T" / "lewm" / "agent.txt"
    _claim_work(tmp_path, "T", "lewm", "cell-key-1", "work-key-A")
    agent.write_text("trained")
    _claim_work(tmp_path, "T", "lewm", "cell-key-2", "work-key-A")  # the planner changed
    assert agent.read_text() == "trained"
    _claim_work(tmp_path, "T", "lewm", "cell-key-3", "work-key-B")  # the training changed
    assert not agent.exists()
    agent.write_text("old stamp")  # a stamp holding the whole cell key (before work keys) still counts
    (tmp_path / "work" / "T" / "lewm" / "cell_key.txt").write_text("cell-key-4")
    _claim_work(tmp_path, "T", "lewm", "cell-key-4", "work-key-C")
    assert agent.read_text() == "old stamp"
