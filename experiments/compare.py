"""The main job: LeWM beside Stable-Baselines3, DreamerV3, random and the scripted expert, on the
same tasks, the same seeded start/goal pairs and the same success test.

    python experiments/compare.py                         # `quick`: TwoRoom, every installed method, ~20 min on 2 cores
    python experiments/compare.py --preset smoke          # end to end in about 2 minutes (what the tests run)
    python experiments/compare.py --preset full --device cuda           # the GPU comparison (hours)
    python experiments/compare.py --tasks TwoRoom,Reacher --methods lewm,sb3-ppo --set sb3-ppo.timesteps=100000

For each task: collect an offline dataset with the task's collection policy (LeWM trains on its
training split), and draw the evaluation pairs from its held-out episodes (start state, and the
state ``goal_offset`` steps later as the goal image). Then each (task, method) cell trains the
method, runs it through :func:`lewm_agent.evaluation.evaluate` on those pairs, and is saved as it
finishes. Rerunning skips finished cells (same settings), reruns failed or missing ones.

Outputs under ``results/<run-name>/``: results.json, results.csv, results.md, plots/*.png,
videos/<task>/<method>_*.mp4 (observation | goal), tb/ (TensorBoard: tb/<task>/<method>),
cells/ (one record per cell), data/ (episode files), work/ (checkpoints, for resuming).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.baselines import BUDGETS, METHODS, Task, check_budget, resolved_budget  # noqa: E402
from experiments.baselines.dreamer import BUDGETS as DREAMER_BUDGETS  # noqa: E402
from experiments.cells import cell_path, execute_cell, load_cell  # noqa: E402
from experiments.report import find_block, markdown_table, task_table, update_block, write_reports  # noqa: E402
from lewm_agent.experiment import run_key  # noqa: E402
from lewm_agent.settings import check_name, help_text, parse_value, suggest  # noqa: E402

__all__ = ["TaskSpec", "CompareConfig", "TASKS", "PRESETS", "make_config", "prepare_task", "run", "main"]


@dataclass
class TaskSpec:
    """A task of the comparison and how its offline data is collected."""

    env_id: str
    episodes: int
    """Episodes collected with ``policy`` (LeWM's data; 10% are held out for the evaluation pairs)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    policy: str = "expert"
    max_steps: int | None = None
    """Cap on each collected episode (None: the env's time limit)."""
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per method, budget settings for this task over the run's (e.g. ``{"lewm": {"preset": "reacher"}}``)."""


TASKS: dict[str, TaskSpec] = {
    "TwoRoom": TaskSpec("lewm/TwoRoom-v1", 600),
    "Reacher": TaskSpec("lewm/Reacher-v0", 600),
    "MetaWorld-reach": TaskSpec("lewm/MetaWorld-reach-v3", 400),
    "MetaWorld-push": TaskSpec("lewm/MetaWorld-push-v3", 600),
    "OGBench-cube": TaskSpec("lewm/OGBench-cube-single-v0", 600),
    "PushT": TaskSpec("lewm/PushT-v1", 600),
}


@dataclass
class CompareConfig:
    """Everything a comparison run depends on (saved in results.json)."""

    tasks: list[str]
    methods: list[str]
    budgets: dict[str, dict[str, Any]]
    """Per method, its budget settings (see each method's ``Budget`` dataclass)."""
    episodes: int | None = None
    """Override of every task's collected episodes."""
    image_size: int = 64
    eval_episodes: int = 50
    goal_offset: int = 25
    eval_budget: int = 50
    """Env steps each method gets per start/goal pair."""
    seed: int = 0
    video_episodes: int = 2
    workers: int = 1
    """Processes collecting each task's data."""
    device: str = "auto"
    every_method: bool = True
    """Without ``--methods``, also run every other registered method (plugins included) after ``methods``."""
    task_specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per task, :class:`TaskSpec` fields that replace those of :data:`TASKS` (the ``tasks`` preset's recipes)."""

    def spec(self, name: str) -> tuple[str, TaskSpec]:
        """The short name and the collection/budget recipe of task ``name`` in this run."""
        short, spec = _resolve_task(name)
        return short, dataclasses.replace(spec, **self.task_specs.get(short, {}))

    def budget(self, spec: TaskSpec, method: str) -> dict[str, Any]:
        """The method's budget on a task: the run's settings, then the task's own."""
        return {**self.budgets.get(method, {}), **spec.budgets.get(method, {})}


def _task_preset(name: str, **extra: Any) -> dict[str, Any]:
    """TaskSpec fields of the LeWM per-task preset ``name`` (its env, data and budget), plus ``extra``."""
    from lewm_agent.config import preset

    p = preset(name)
    return {"env_id": p.env_id, "episodes": p.episodes, "policy": p.policy, "budgets": {"lewm": {"preset": name}},
            **extra}


OFFLINE_BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    # measured at 64 px on 2 CPU cores: GCBC 93 ms per step at batch 128, GCIQL 138 ms at batch 64, so that each
    # trains about as long as LeWM on the same data: ~3.2 min in `quick` and on TwoRoom in `tasks` (LeWM 1,000
    # steps: 3.2-3.4 min), ~7 min on the other tasks of `tasks` (LeWM's task presets: 8-9 min)
    "quick": {"gcbc": {"steps": 2000, "batch_size": 128}, "gciql": {"steps": 1400, "batch_size": 64}},
    "tasks": {"gcbc": {"steps": 4500, "batch_size": 128}, "gciql": {"steps": 3000, "batch_size": 64}},
    "full": {"gcbc": {"steps": 200_000, "batch_size": 256, "save_every": 10_000},
             "gciql": {"steps": 200_000, "batch_size": 256, "save_every": 10_000}},
}
"""Budgets of the same-data offline baselines (GCBC, GCIQL) per preset."""


TASK_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "TwoRoom": ("tworoom", {"budgets": {"lewm": {"preset": "tworoom"}, **OFFLINE_BUDGETS["quick"]}}),
    "Reacher": ("reacher", {}),
    "PushT": ("pusht", {}),
    # the arm drawn at 10% opacity is ~90% of OGBench's render cost on a CPU (6 against ~48 frames/s);
    # without it the gripper pads still show where the hand is
    "OGBench-cube": ("cube", {"env_kwargs": {"show_arm": False}}),
    "MetaWorld-push": ("metaworld-push", {}),
}
"""The ``tasks`` preset: each task with the LeWM preset of :mod:`lewm_agent.config` made for it (and any
task settings of its own)."""

METHOD_ORDER = ["random", "expert", "lewm", "lewm-nosigreg", "gcbc", "gciql", "sb3-ppo", "sb3-sac", "dreamerv3"]




def make_config(preset: str) -> CompareConfig:
    """The named preset: ``smoke`` (tests, ~2 min), ``quick`` (default, <= 25 min on 2 CPU cores), ``tasks``
    (LeWM, random and the expert on every task with its own LeWM preset, each <= 90 min of training on 2 CPU
    cores; hours in all, resumable), ``full`` (GPU)."""
    if preset == "smoke":
        return CompareConfig(
            tasks=["TwoRoom"], methods=list(METHOD_ORDER), episodes=20, eval_episodes=6, eval_budget=30,
            video_episodes=1,
            budgets={"lewm": {"preset": "tiny", "steps": 30}, "lewm-nosigreg": {"preset": "tiny", "steps": 30},
                     "gcbc": {"steps": 20, "batch_size": 16, "save_every": 10},
                     "gciql": {"steps": 20, "batch_size": 16, "save_every": 10},
                     "sb3-ppo": {"timesteps": 256, "n_envs": 2, "n_steps": 64, "n_epochs": 1},
                     "sb3-sac": {"timesteps": 160, "learning_starts": 64, "batch_size": 16},
                     "dreamerv3": DREAMER_BUDGETS["smoke"]})
    if preset == "quick":
        return CompareConfig(
            tasks=["TwoRoom"], methods=list(METHOD_ORDER),
            budgets={"lewm": {"preset": "cpu", "steps": 1000}, "lewm-nosigreg": {"preset": "cpu", "steps": 1000},
                     **json.loads(json.dumps(OFFLINE_BUDGETS["quick"])),
                     "sb3-ppo": {"timesteps": 20_000}, "sb3-sac": {"timesteps": 1_500},
                     "dreamerv3": DREAMER_BUDGETS["quick"]})
    if preset == "full":
        return CompareConfig(
            tasks=list(TASKS), methods=list(METHOD_ORDER), workers=4,
            budgets={"lewm": {"preset": "paper", "patch_size": 8},
                     "lewm-nosigreg": {"preset": "paper", "patch_size": 8},
                     "sb3-ppo": {"timesteps": 1_000_000, "n_envs": 8, "n_steps": 256, "batch_size": 256,
                                 "n_epochs": 10},
                     "sb3-sac": {"timesteps": 500_000, "buffer_size": 100_000, "learning_starts": 5_000,
                                 "batch_size": 256},
                     "dreamerv3": DREAMER_BUDGETS["full"], **json.loads(json.dumps(OFFLINE_BUDGETS["full"]))})
    if preset == "tasks":
        return CompareConfig(
            tasks=list(TASK_PRESETS), methods=["random", "expert", "lewm", "gcbc", "gciql"], workers=2,
            budgets=json.loads(json.dumps(OFFLINE_BUDGETS["tasks"])), every_method=False,
            task_specs={task: _task_preset(name, **extra) for task, (name, extra) in TASK_PRESETS.items()})
    raise KeyError(f"Unknown preset {preset!r}; choose {', '.join(PRESETS)}.")


PRESETS = ("smoke", "quick", "tasks", "full")


def apply_overrides(cfg: CompareConfig, items: list[str]) -> CompareConfig:
    """``METHOD.KEY=VALUE`` items -> budgets. The value is read in ``lewm``'s grammar (:mod:`lewm_agent.settings`) by
    the type of the method's budget field, and an unknown method or field is named with the closest known one; a
    method registered without a budget class (a plugin) takes any key, its value read as JSON where it parses.
    Ranges are checked by :func:`experiments.baselines.check_budget`."""
    budgets = {m: dict(b) for m, b in cfg.budgets.items()}
    task_specs = json.loads(json.dumps(cfg.task_specs))  # a deep copy
    for item in items:
        method, key, parsed = _parse_set(item)
        budgets.setdefault(method, {})[key] = parsed
        for spec in task_specs.values():  # an explicit setting beats a task's own
            if method in spec.get("budgets", {}):
                spec["budgets"][method][key] = parsed
    return dataclasses.replace(cfg, budgets=budgets, task_specs=task_specs)


def _parse_set(item: str) -> tuple[str, str, Any]:
    """One ``--set METHOD.KEY=VALUE`` -> (method, key, typed value), or a one-line SystemExit naming the item."""
    name, eq, value = item.partition("=")
    method, dot, key = name.partition(".")
    if not (eq and dot and key):
        raise SystemExit(f"error: --set {item!r} is not METHOD.KEY=VALUE (e.g. sb3-ppo.timesteps=50000).")
    if method not in METHODS:
        raise SystemExit(f"error: --set {item}: unknown method {method!r}; {suggest(method, sorted(METHODS))}")
    try:
        if method not in BUDGETS:
            return method, key, parse_value(value, Any)
        cls = BUDGETS[method]
        setting = check_name(cls, key, f"the {method} budget ({cls.__qualname__})")
        return method, key, parse_value(value, setting.kind, f"{cls.__qualname__}.{key}")
    except ValueError as e:
        raise SystemExit(f"error: --set {item}: {e}") from None


def budget_help() -> str:
    """The ``--set`` fields of every registered method with a budget class, with the class's defaults (a preset's
    budgets replace some)."""
    by_class: dict[type, list[str]] = {}
    for method, cls in BUDGETS.items():
        by_class.setdefault(cls, []).append(method)
    parts = [help_text(cls, f"--set {'|'.join(methods)}.KEY=VALUE ({cls.__qualname__}; [default]):")
             for cls, methods in by_class.items() if dataclasses.fields(cls)]
    return "\n\n".join(parts)


def _resolve_task(name: str) -> tuple[str, TaskSpec]:
    """A task by short name (:data:`TASKS`), by its env id, or any goal env id (``module:EnvId`` included,
    its module imported here), collected with the env's expert; an unknown one is a SystemExit."""
    if name in TASKS:
        return name, TASKS[name]
    for short, spec in TASKS.items():
        if spec.env_id == name:
            return short, spec
    if "/" in name or ":" in name:  # any registered goal env id, collected with its expert
        from lewm_agent import envs
        from lewm_agent.envs.loading import env_spec, split_env_id

        try:
            env_spec(name, known=envs.GOAL_ENV_IDS)
        except ValueError as e:
            raise SystemExit(f"error: task {name!r}: {e}") from None
        return split_env_id(name)[1].split("/")[-1].removesuffix("-v0"), TaskSpec(name, 600)
    raise SystemExit(f"error: unknown task {name!r}; tasks: {', '.join(TASKS)} (or a goal env id such as "
                     "lewm/PushT-v1, or MODULE:ENV_ID for an env registered by another package).")


def prepare_task(name: str, spec: TaskSpec, cfg: CompareConfig, run_dir: Path, progress: bool = True) -> Task:
    """Collect the task's episodes (reusing a valid file), split them, draw and save the evaluation pairs:
    :func:`lewm_agent.experiment.prepare_task` into ``<run>/tasks/<name>/`` with the data in ``<run>/data/<name>.h5``.

    The split is LeWM's own (``TrainConfig`` defaults: 10% of episodes, split seed 0), and LeWM trains on
    exactly that split, so it never trains on an episode an evaluation pair comes from. A task prepared
    earlier with other settings is refused rather than silently mixed.
    """
    from lewm_agent.evaluation import EvalProtocol
    from lewm_agent.experiment import TaskMismatch
    from lewm_agent.experiment import prepare_task as prepare

    protocol = EvalProtocol(num_episodes=cfg.eval_episodes, goal_offset=cfg.goal_offset, budget=cfg.eval_budget,
                            seed=cfg.seed)
    try:
        return prepare(run_dir / "tasks" / name, name, spec.env_id, {"image_size": cfg.image_size, **spec.env_kwargs},
                       cfg.episodes or spec.episodes, spec.policy, cfg.seed, protocol, max_steps=spec.max_steps,
                       workers=cfg.workers, progress=progress, data_path=run_dir / "data" / f"{name}.h5")
    except TaskMismatch as e:
        raise SystemExit(f"error: {e}") from None


def machine_summary(device: str) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() and device != "cpu" else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    summary = f"{cores} CPU cores ({platform.machine()}), " + (f"GPU {gpu}" if gpu else "no GPU")
    return {"summary": summary, "cpu_cores": cores, "gpu": gpu, "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def run(cfg: CompareConfig, run_dir: Path, progress: bool = True,
        plugins: list[str] | None = None) -> list[dict[str, Any]]:
    """Prepare every task, run every missing cell (each in its own process), write the reports.

    ``plugins``: modules imported here and in every cell (methods, envs); each cell also imports the modules
    this process imported for its envs (``module:EnvId`` tasks, ``--env-module``)."""
    from lewm_agent import envs

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    plugins = list(plugins or [])
    for module in plugins:
        importlib.import_module(module)
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"error: unknown methods {unknown}; registered: {', '.join(sorted(METHODS))} "
                         "(add your own with --plugin MODULE, see experiments/baselines/base.py).")
    header = {"run_name": run_dir.name, "config": dataclasses.asdict(cfg),
              "protocol_summary": f"{cfg.eval_episodes} start/goal pairs per task from held-out episodes, goal "
                                  f"{cfg.goal_offset} steps ahead, {cfg.eval_budget} env steps per pair, "
                                  f"{cfg.image_size}x{cfg.image_size} pixels, seed {cfg.seed}."}
    records: list[dict[str, Any]] = []
    cells = [(t, m) for t in cfg.tasks for m in cfg.methods]
    tasks: dict[str, Task] = {}
    for i, (tname, method) in enumerate(cells):
        short, spec = cfg.spec(tname)
        if short not in tasks:
            print(f"== task {short}: {spec.env_id}, {cfg.episodes or spec.episodes} {spec.policy} episodes", flush=True)
            tasks[short] = prepare_task(short, spec, cfg, run_dir, progress)
        task = tasks[short]
        budget = cfg.budget(spec, method)
        resolved = resolved_budget(method, budget)
        key = run_key(task, method, budget, resolved)
        path = cell_path(run_dir, short, method)
        old = load_cell(path)
        if old is not None and old.get("status") == "ok" and old.get("key") == key:
            print(f"[{i + 1}/{len(cells)}] {short} / {method}: done before ({100 * old['success_rate']:.0f}%), skipped",
                  flush=True)
            records.append(old)
            continue
        _claim_work(run_dir, short, method, key, run_key(task, method, budget, _trained_part(resolved)))
        print(f"[{i + 1}/{len(cells)}] {short} / {method} {json.dumps(budget) if budget else ''}", flush=True)
        tic = time.perf_counter()
        job = {"task": task.to_dict(), "method": method, "budget": budget, "key": key, "run_dir": str(run_dir),
               "device": cfg.device, "progress": progress, "video_episodes": cfg.video_episodes,
               "plugins": plugins + [m for m in envs.env_modules() if m not in plugins]}
        record = execute_cell(job)
        records.append(record)
        status = (f"{100 * record['success_rate']:.0f}% success" if record["status"] == "ok"
                  else f"{record['status']}: {record.get('message', '')}")
        print(f"    -> {status} ({time.perf_counter() - tic:.0f} s)", flush=True)
        write_reports(run_dir, records, _header(header, cfg))
    write_reports(run_dir, records, _header(header, cfg))
    return records


def finished_cells(run_dir: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records`` plus every other finished cell saved in ``run_dir`` (an earlier call with other ``--tasks``
    or ``--methods``), so that a preset run piece by piece reports all of its pieces."""
    seen = {(r["task"], r["method"]) for r in records}
    extra = []
    for path in sorted(Path(run_dir).glob("cells/*/*.json")):
        r = load_cell(path)
        if r is not None and r.get("status") == "ok" and (r.get("task"), r.get("method")) not in seen:
            extra.append(r)
    return records + extra


def _header(header: dict[str, Any], cfg: CompareConfig) -> dict[str, Any]:
    return {**header, "date": dt.datetime.now().isoformat(timespec="minutes"), "machine": machine_summary(cfg.device)}


def _trained_part(resolved: dict[str, Any] | None) -> dict[str, Any] | None:
    """What of a preset's resolved configs the trained checkpoints depend on: all but the planner, which a trained
    LeWM agent takes from the preset at evaluation (:func:`lewm_agent.pipeline.train_lewm_on_task`)."""
    if resolved is None:
        return None
    part = {k: v for k, v in resolved.items() if k != "plan"}
    if "latent_policy" in part:  # the policy is trained to propose the planner's horizon
        part["plan_horizon"] = resolved["plan"]["horizon"]
    return part


def _claim_work(run_dir: Path, task: str, method: str, key: str, work_key: str) -> None:
    """Keep a cell's checkpoints (to resume, or to evaluate again) only if they were made with the same training
    settings: ``work_key`` (the cell's ``key`` without the planner), or ``key`` itself in a stamp written before
    the two were told apart. A changed planner re-evaluates a trained agent instead of training it again."""
    import shutil

    work = run_dir / "work" / task / method
    stamp = work / "cell_key.txt"
    if work.exists() and (not stamp.exists() or stamp.read_text().strip() not in (key, work_key)):
        for sub in ("work", "tb"):
            shutil.rmtree(run_dir / sub / task / method, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(work_key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=budget_help(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick", choices=PRESETS)
    parser.add_argument("--run-name", default=None, help="results/<run-name> (default: the preset's name)")
    parser.add_argument("--results", default="results", help="parent directory of runs (default: results)")
    parser.add_argument("--tasks", default=None,
                        help=f"comma-separated: {', '.join(TASKS)}, or goal env ids (lewm/PushT-v1, or MODULE:ENV_ID "
                             "for an env registered by another package; see docs/foreign_envs.md)")
    parser.add_argument("--methods", default=None, help="comma-separated (default: every registered method)")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                        help="a budget field of a method, repeatable (e.g. lewm.steps=2500, sb3-ppo.timesteps=100000); "
                             "the value in lewm's grammar (see lewm train --help), the fields below")
    parser.add_argument("--episodes", type=int, default=None, help="episodes collected per task")
    parser.add_argument("--eval-episodes", type=int, default=None, help="start/goal pairs per task")
    parser.add_argument("--eval-budget", type=int, default=None, help="env steps per pair")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda")
    parser.add_argument("--workers", type=int, default=None, help="data-collection processes")
    parser.add_argument("--video-episodes", type=int, default=None)
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE (which registers methods) in every cell, repeatable")
    parser.add_argument("--env-module", action="append", default=[], metavar="MODULE",
                        help="import MODULE (which registers envs and their experts) here and in every cell; "
                             "repeatable or comma-separated (a MODULE:ENV_ID task needs none)")
    parser.add_argument("--readme", default=None, metavar="PATH",
                        help="also write the per-task table into PATH between <!-- RUN-NAME-table:begin/end --> "
                             "markers (the README's `tasks` table: --preset tasks --readme README.md)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    from lewm_agent.cli import sigterm_as_interrupt, user_error

    try:
        with sigterm_as_interrupt():
            return _main(parser, args)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue (finished cells are kept)", file=sys.stderr)
        return 130
    except SystemExit as e:  # this module's own refusals: one line, exit code 2 (argparse's exit as it is)
        if not isinstance(e.code, str):
            raise
        print(e.code if e.code.startswith("error: ") else f"error: {e.code}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a user's error is one line, a bug keeps its traceback
        message = user_error(e)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """:func:`main` once the arguments are parsed."""
    for name in ("episodes", "eval_episodes", "eval_budget", "workers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} {getattr(args, name)} must be >= 1.")
    if args.episodes == 1:  # each task trains on some episodes and draws its evaluation pairs from held-out ones
        raise SystemExit("error: --episodes 1 must be >= 2: one episode to train on, one held out for evaluation.")
    if args.video_episodes is not None and args.video_episodes < 0:
        raise SystemExit(f"error: --video-episodes {args.video_episodes} must be >= 0.")
    run_dir = Path(args.results) / (args.run_name or args.preset)
    block = f"{run_dir.name}-table"
    if args.readme:  # checked before any work starts
        try:
            find_block(Path(args.readme), block)
        except ValueError as e:
            parser.error(f"--readme: {e}")

    for module in args.plugin:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise SystemExit(f"error: --plugin {module}: {e}; pass an importable module that registers "
                             "methods.") from None
    if args.env_module:
        from lewm_agent import envs

        try:
            envs.import_env_modules(args.env_module)
        except ValueError as e:
            parser.error(f"--env-module: {e}")
    cfg = make_config(args.preset)
    over: dict[str, Any] = {}
    if args.tasks:
        over["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.methods:
        over["methods"] = [m.strip() for m in args.methods.split(",") if m.strip()]
    elif cfg.every_method:
        over["methods"] = cfg.methods + [m for m in METHODS if m not in cfg.methods]
    for name in ("episodes", "eval_episodes", "eval_budget", "seed", "device", "workers", "video_episodes"):
        if getattr(args, name) is not None:
            over[name] = getattr(args, name)
    cfg = apply_overrides(dataclasses.replace(cfg, **over), args.set)
    for task in cfg.tasks:  # an unknown task (or env id) or a bad budget stops here, before any work
        _, spec = cfg.spec(task)
        for method in cfg.methods:
            if method in METHODS:
                check_budget(method, cfg.budget(spec, method))
    tic = time.perf_counter()
    records = run(cfg, run_dir, progress=not args.no_progress, plugins=args.plugin)
    print("\n" + markdown_table(records))
    if args.readme:
        order = {name: i for i, name in enumerate(cfg.tasks + [t for t in TASKS if t not in cfg.tasks])}
        cells = sorted(finished_cells(run_dir, records), key=lambda r: order.get(r["task"], len(order)))
        update_block(Path(args.readme), block, task_table(cells))
        print(f"wrote the per-task table into {args.readme}")
    print(f"{time.perf_counter() - tic:.0f} s; results in {run_dir}/ (results.md, plots/, videos/); "
          f"tensorboard --logdir {run_dir / 'tb'}")
    failed = [r for r in records if r["status"] == "error"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
