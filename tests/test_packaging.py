"""What installing the project puts on the import path: ``lewm_agent`` (the tasks as ``lewm_agent.envs``) and no
generic top-level name. Checked in a fresh interpreter outside the repository, so that only the install answers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python_outside_repo(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_install_claims_no_envs_or_experiments_module(tmp_path):
    code = (
        "import importlib, sys\n"
        "for name in ('envs', 'experiments'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError as e:\n"
        "        assert e.name == name, e\n"
        "        print(name, 'missing')\n"
        "    else:\n"
        "        print(name, 'found at', sys.modules[name].__file__)\n"
    )
    out = _python_outside_repo(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["envs missing", "experiments missing"], out.stdout


def test_documented_import_registers_the_tasks(tmp_path):
    code = (
        "import sys\n"
        "import gymnasium as gym\n"
        "import lewm_agent.envs\n"
        "env = gym.make('lewm/TwoRoom-v1', image_size=32)\n"
        "obs, info = env.reset(seed=0)\n"
        "assert obs['pixels'].shape == (32, 32, 3) and obs['goal'].shape == (32, 32, 3)\n"
        "assert type(env.unwrapped).__module__ == 'lewm_agent.envs.tworoom'\n"
        "from lewm_agent.envs.policies import make_policy\n"
        "assert type(make_policy('expert', env, seed=0)).__module__ == 'lewm_agent.envs.tworoom_expert'\n"
        "assert not [m for m in sys.modules if m == 'envs' or m.startswith('envs.')]\n"
        "print('ok')\n"
    )
    out = _python_outside_repo(code, tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_no_code_imports_the_tasks_by_their_directory_name():
    """Inside the repository ``import envs`` would still find the directory and load a second copy of the tasks,
    with registries of its own; every import goes through ``lewm_agent.envs``."""
    old = re.compile(r"^\s*(import envs\b|from envs(\.\w+)* import\b)", re.MULTILINE)
    hits = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("results", "build", "dist", "__pycache__")]
        for name in files:
            if name.endswith(".py"):
                path = Path(folder) / name
                text = path.read_text(encoding="utf-8")
                hits += [f"{path.relative_to(ROOT)}: {m.group(0).strip()}" for m in old.finditer(text)]
    assert not hits, hits
