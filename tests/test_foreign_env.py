"""Any goal env: one from a module ``import lewm_agent.envs`` does not load goes through the CLI and the comparison,
``lewm check-env`` holds every env to the goal-env contract, experts register from outside.

The foreign env is ``tests/foreign_env_pkg/foreign_goal_env.py`` (a 40 x 40 dot env without an
``image_size`` argument, its expert registered with ``lewm_agent.envs.policies.register_expert``), addressed
as ``foreign_goal_env:foreign/Dot-v0`` with that directory on the path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lewm_agent import envs
from lewm_agent.envs.experts import find_expert, register_expert
from lewm_agent.cli import main

ROOT = Path(__file__).resolve().parent.parent
PKG = Path(__file__).resolve().parent / "foreign_env_pkg"
DOT = "foreign_goal_env:foreign/Dot-v0"
IGNORES_GOAL = "foreign_goal_env:foreign/DotIgnoresGoal-v0"


@pytest.fixture
def foreign_path(monkeypatch):
    """The foreign package on sys.path for one test; the env modules it imports are forgotten afterwards (the
    processes later tests start, such as comparison cells, would otherwise import them without that path)."""
    from lewm_agent.envs import loading

    monkeypatch.syspath_prepend(str(PKG))
    monkeypatch.setattr(loading, "_IMPORTED", list(loading._IMPORTED))


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """A command in its own process, with the foreign package on PYTHONPATH (and the repository, as pytest has)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PKG), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args}: exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


def test_the_foreign_module_is_not_loaded_by_import_envs():
    code = "import sys, lewm_agent.envs, lewm_agent.envs.policies; print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(PKG), str(ROOT)])})
    loaded = out.stdout
    assert out.returncode == 0 and "foreign_goal_env" not in loaded
    # no hub: importing the policies imports no suite and no expert beyond the registry
    for suite in ("tworoom", "dmc", "metaworld", "ogbench", "pusht"):
        assert f"'lewm_agent.envs.{suite}'" not in loaded and f"'lewm_agent.envs.{suite}_expert'" not in loaded, suite


def test_foreign_env_goes_through_collect_train_eval_and_compare(tmp_path):
    data, run = tmp_path / "dot.h5", tmp_path / "run"
    out = _run("-m", "lewm_agent.cli", "collect", "--env", DOT, "--episodes", "10", "--workers", "2",
               "--image-size", "32", "--out", str(data))
    assert "10 episodes" in out.stdout and "policy success 1.0" in out.stdout  # the module's expert, in both workers
    _run("-m", "lewm_agent.cli", "train", "--data", str(data), "--out", str(run), "--preset", "tiny", "--steps", "4")
    # eval on an env given here, by the other form: its id plus --env-module
    _run("-m", "lewm_agent.cli", "eval", "--agent", str(run / "agent"), "--env", "foreign/Dot-v0",
         "--env-module", "foreign_goal_env", "--eval-episodes", "3", "--budget", "5", "--goal-offset", "10")
    result = json.loads((run / "eval.json").read_text())
    lewm = result["lewm"]
    assert lewm["env_id"] == "foreign/Dot-v0" and lewm["extra"]["trained_env_id"] == DOT
    assert lewm["extra"]["env_kwargs"] == {"image_size": 32} and lewm["num_episodes"] == 3

    _run("experiments/compare.py", "--preset", "smoke", "--tasks", DOT, "--methods", "random,expert,lewm",
         "--episodes", "10", "--eval-episodes", "3", "--eval-budget", "5", "--video-episodes", "0",
         "--set", "lewm.steps=4", "--results", str(tmp_path / "results"), "--no-progress", timeout=600)
    cells = json.loads((tmp_path / "results" / "smoke" / "results.json").read_text())["cells"]
    by_method = {c["method"]: c for c in cells}
    assert set(by_method) == {"random", "expert", "lewm"}
    assert all(c["status"] == "ok" and c["task"] == "Dot" and c["env_id"] == DOT for c in cells), cells
    assert len({c["pairs_fingerprint"] for c in cells}) == 1


def test_check_env_fails_loudly_on_an_env_that_ignores_goal_state(foreign_path, capsys):
    assert main(["check-env", IGNORES_GOAL, "--image-size", "32"]) == 1
    out = capsys.readouterr()
    failed = [line for line in out.out.splitlines() if line.startswith("FAIL")]
    assert any(line.startswith("FAIL  reset honours goal_state: ") and "ignores 'goal_state'" in line
               for line in failed)
    assert "ok    reset honours state" in out.out and "checks failed" in out.err


def test_check_env_passes_on_the_foreign_env_given_by_env_module(foreign_path, capsys):
    assert main(["check-env", "foreign/Dot-v0", "--env-module", "foreign_goal_env", "--image-size", "24"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "meets the goal-env contract" in out and "expert: DotExpert" in out


@pytest.mark.parametrize("env_id", envs.GOAL_ENV_IDS)
def test_check_env_passes_on_every_lewm_goal_task(env_id, capsys):
    assert main(["check-env", env_id, "--image-size", "24"]) == 0, capsys.readouterr().out
    assert "FAIL" not in capsys.readouterr().out


def test_an_env_without_image_size_gets_its_frames_resized(foreign_path):
    env = envs.make_env(DOT, image_size=24)
    try:
        obs, _ = env.reset(seed=0)
        assert obs["pixels"].shape == obs["goal"].shape == env.render().shape == (24, 24, 3)
        assert env.observation_space.contains(obs) and obs["pixels"].std() > 5
    finally:
        env.close()
    native = envs.make_env(DOT)  # no image_size: the env's own 40 x 40 frames
    assert native.reset(seed=0)[0]["pixels"].shape == (40, 40, 3)
    native.close()


def test_unknown_module_or_id_is_a_one_line_error(foreign_path, capsys):
    assert main(["check-env", "no_such_module_xyz:foreign/Dot-v0"]) == 1
    assert "FAIL  make: ValueError: cannot import env module 'no_such_module_xyz'" in capsys.readouterr().out
    with pytest.raises(ValueError,
                       match="module 'foreign_goal_env' was imported but registers no env 'foreign/Nope-v0'"):
        envs.make_env("foreign_goal_env:foreign/Nope-v0")


def test_register_expert_by_id_beats_the_class_and_conflicts_need_replace(foreign_path):
    import foreign_goal_env as fge

    from lewm_agent.envs.policies import make_policy

    env = envs.make_env(DOT)
    try:
        assert find_expert(env) is fge.DotExpert
        with pytest.raises(ValueError, match="already registered.*replace=True"):
            register_expert(fge.DotEnv, lambda env, seed=0: None)
        register_expert(fge.DotEnv, fge.DotExpert)  # the same again (a module imported twice) is fine

        class Still(fge.DotExpert):
            pass

        register_expert(DOT, Still)  # by id, module prefix dropped: used before the class's
        obs, info = env.reset(seed=0)
        policy = make_policy("expert", env, seed=0, noise_std=0.0)
        policy.reset(obs, info)
        assert isinstance(policy, Still) and np.asarray(policy(obs, info)).shape == (2,)
        with pytest.raises(TypeError, match="factory must be callable"):
            register_expert("foreign/Other-v0", 42)
    finally:
        from lewm_agent.envs import experts

        experts._BY_ID.pop("foreign/Dot-v0", None)
        env.close()
