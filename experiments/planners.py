"""Success against planning time, per planner setting, for agents a comparison run trained.

    python experiments/compare.py --tasks TwoRoom,Reacher --methods lewm,random --run-name planners
    python experiments/planners.py --run results/planners                 # every setting below
    python experiments/planners.py --run results/planners --settings cem-300x10,policy

For each task of the run, the LeWM agent the comparison trained (``work/<task>/lewm/agent``) is
evaluated on the run's own 50 start/goal pairs with each planner setting of :data:`SETTINGS`
(``PlanConfig`` overrides). Settings that use the latent policy first train one
(:func:`lewm_agent.policy.fit_policy`) into a copy of the agent, ``planners/<task>/agent_policy``.
Each (task, setting) is saved as it finishes (``planners/<task>/<setting>.json``) and skipped
when rerun, so an interrupted sweep resumes. Outputs: ``planners/planners.md`` (table),
``planners/planners.json`` and ``planners/success_vs_time.png``.

Planning time is wall-clock per env plan: all 50 envs plan in one batched call, and a call's
time is divided by the envs in it (``LeWMAgent.seconds_per_plan``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.baselines import Task  # noqa: E402
from lewm_agent.files import atomic_write_json, atomic_write_text  # noqa: E402

__all__ = ["SETTINGS", "sweep", "main"]

SETTINGS: dict[str, dict[str, Any]] = {
    # the agent's own settings, and the reference CEM at the `cpu` preset's default (the issue-9 baseline)
    "default": {},
    "cem-300x10": {"samples": 300, "iterations": 10, "elites": 30},
    "cem-300x30": {"samples": 300, "iterations": 30, "elites": 30},
    # fewer samples / iterations
    "cem-100x5": {"samples": 100, "iterations": 5, "elites": 10},
    "cem-64x3": {"samples": 64, "iterations": 3, "elites": 8},
    # iCEM: coloured noise, kept elites, decaying sample count, early stop
    "icem-100x5": {"samples": 100, "iterations": 5, "elites": 10, "noise_beta": 2.0, "keep_elites": 3,
                   "sample_decay": 1.25, "select": "best"},
    "icem-64x3": {"samples": 64, "iterations": 3, "elites": 8, "noise_beta": 2.0, "keep_elites": 2,
                  "select": "best"},
    "icem-32x3": {"samples": 32, "iterations": 3, "elites": 6, "noise_beta": 2.0, "keep_elites": 2,
                  "select": "best"},
    # replan after every action block instead of after the whole 5-block plan (the reference's MPC): 5x the
    # plans per episode, each correcting the last one's drift
    "icem-100x5-replan-1": {"samples": 100, "iterations": 5, "elites": 10, "noise_beta": 2.0, "keep_elites": 3,
                            "sample_decay": 1.25, "select": "best", "receding_horizon": 1},
    "cem-300x30-replan-1": {"samples": 300, "iterations": 30, "elites": 30, "receding_horizon": 1},
    "mppi-100x5": {"planner": "mppi", "samples": 100, "iterations": 5, "min_std": 0.05},
    "adam-16x10": {"planner": "adam", "samples": 16, "iterations": 10, "lr": 0.1},
    # amortised: the latent policy alone, and as CEM's starting mean
    "policy": {"mode": "policy"},
    "policy+cem-64x3": {"samples": 64, "iterations": 3, "elites": 8, "init_std": 0.5},
    "policy+icem-64x3": {"samples": 64, "iterations": 3, "elites": 8, "init_std": 0.5, "noise_beta": 2.0,
                         "keep_elites": 2, "select": "best"},
}
"""Setting name -> PlanConfig overrides; a name starting with ``policy`` uses the agent with a latent policy."""


def _uses_policy(name: str) -> bool:
    return name.startswith("policy")


def _policy_agent(run: Path, task: str, steps: int, device: str, progress: bool) -> Path:
    """A copy of the task's LeWM agent with a latent policy (trained once, then reused)."""
    from lewm_agent.policy import PolicyConfig, fit_policy

    target = run / "planners" / task / "agent_policy"
    if (target / "config.json").exists() and json.loads((target / "config.json").read_text()).get("policy"):
        return target
    source = run / "work" / task / "lewm" / "agent"
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    metrics = fit_policy(tmp, PolicyConfig(steps=steps), device=device, progress=progress)
    atomic_write_json(tmp / "policy_metrics.json", metrics, default=str)
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)
    return target


def evaluate_setting(run: Path, task_name: str, name: str, overrides: dict[str, Any], device: str,
                     policy_steps: int, progress: bool) -> dict[str, Any]:
    """Evaluate one planner setting on the task's pairs and return its record."""
    from lewm_agent.agent import LeWMAgent
    from lewm_agent.evaluation import evaluate

    task = Task.from_dict(json.loads((run / "tasks" / task_name / "task.json").read_text())["task"])
    agent_dir = (_policy_agent(run, task_name, policy_steps, device, progress) if _uses_policy(name)
                 else run / "work" / task_name / "lewm" / "agent")
    agent = LeWMAgent.load(agent_dir, device=device, **overrides)
    tic = time.perf_counter()
    result = evaluate(agent, task.make_env, task.pairs(), task.protocol, progress=progress).to_dict()
    return {
        "task": task_name, "setting": name, "overrides": overrides, "precision": agent.precision,
        "success_rate": result["success_rate"], "successes": result["successes"],
        "num_episodes": result["num_episodes"], "ci95": list(result["ci95"]),
        "seconds_per_plan": agent.seconds_per_plan, "plans": agent.num_plans,
        "decision_ms_mean": 1000 * result["decision_seconds_mean"], "eval_seconds": time.perf_counter() - tic,
        "episodes": result["episodes"],
    }


def sweep(run: Path, tasks: list[str], settings: list[str], device: str = "auto", policy_steps: int = 3000,
          progress: bool = True) -> list[dict[str, Any]]:
    """Evaluate every (task, setting) not done yet; return all records of the run."""
    records = []
    for task in tasks:
        if not (run / "work" / task / "lewm" / "agent" / "config.json").exists():
            raise FileNotFoundError(f"{run}/work/{task}/lewm/agent is missing: run experiments/compare.py "
                                    f"--tasks {task} --methods lewm --run-name {run.name} first.")
        for name in settings:
            path = run / "planners" / task / f"{name}.json"
            if path.exists():
                records.append(json.loads(path.read_text()))
                print(f"{task} {name}: done before")
                continue
            rec = evaluate_setting(run, task, name, SETTINGS[name], device, policy_steps, progress)
            atomic_write_json(path, rec)
            records.append(rec)
            print(f"{task} {name}: {rec['success_rate']:.0%} ({rec['successes']}/{rec['num_episodes']}), "
                  f"{rec['seconds_per_plan'] * 1000:.1f} ms per env plan")
    return records


def report(run: Path, records: list[dict[str, Any]]) -> None:
    """planners.md (a table per task, time relative to cem-300x10), planners.json, success_vs_time.png."""
    out = run / "planners"
    lines = ["# Planner settings: success against planning time", "",
             "Same agent and the same 50 start/goal pairs per task; time is wall-clock per env plan "
             "(50 envs planned in one batched call). `x base` = time relative to `cem-300x10`.", ""]
    for task in dict.fromkeys(r["task"] for r in records):
        rows = [r for r in records if r["task"] == task]
        base = next((r["seconds_per_plan"] for name in ("cem-300x10", "default") for r in rows
                     if r["setting"] == name), None)
        lines += [f"## {task}", "", "| setting | success | 95% CI | ms per env plan | x base | overrides |",
                  "|---|---|---|---|---|---|"]
        for r in sorted(rows, key=lambda r: r["seconds_per_plan"]):
            rel = f"{r['seconds_per_plan'] / base:.3f}" if base else "-"
            lines.append(f"| {r['setting']} | {r['success_rate']:.0%} ({r['successes']}/{r['num_episodes']}) | "
                         f"{r['ci95'][0]:.0%}-{r['ci95'][1]:.0%} | {r['seconds_per_plan'] * 1000:.2f} | {rel} | "
                         f"`{json.dumps(r['overrides'])}` |")
        lines.append("")
    atomic_write_text(out / "planners.md", "\n".join(lines))
    atomic_write_json(out / "planners.json", records)
    _plot(out / "success_vs_time.png", records)


def _plot(path: Path, records: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in records))
    names = list(dict.fromkeys(r["setting"] for r in records))
    colours = plt.get_cmap("tab20")
    markers = "osD^v<>P*Xh"
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks) + 2.5, 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for r in (r for r in records if r["task"] == task):
            k = names.index(r["setting"])
            x, y = 1000 * r["seconds_per_plan"], 100 * r["success_rate"]
            err = [[y - 100 * r["ci95"][0]], [100 * r["ci95"][1] - y]]
            ax.errorbar([x], [y], yerr=err, fmt=markers[k % len(markers)], color=colours(k % 20), capsize=3,
                        label=r["setting"])
        ax.set_xscale("log")
        ax.set_xlabel("planning time per env plan (ms, log)")
        ax.set_ylabel("success (%), 95% Wilson CI")
        ax.set_title(task)
        ax.set_ylim(0, 102)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
    fig.subplots_adjust(right=1 - 2.3 / fig.get_figwidth())
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a comparison run directory (results/<run-name>)")
    p.add_argument("--tasks", default="TwoRoom,Reacher", help="comma-separated task names of that run")
    p.add_argument("--settings", default=",".join(s for s in SETTINGS if s != "default"),
                   help=f"comma-separated, from: {', '.join(SETTINGS)} (default: all but 'default')")
    p.add_argument("--policy-steps", type=int, default=3000, help="optimiser steps of the latent policy")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    settings = [s for s in args.settings.split(",") if s]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        p.error(f"unknown settings {unknown}; known: {list(SETTINGS)}")
    if args.policy_steps < 1:
        p.error("--policy-steps must be >= 1")
    if not args.run.is_dir():
        p.error(f"--run {args.run} is not a directory; run experiments/compare.py first")
    records = sweep(args.run, [t for t in args.tasks.split(",") if t], settings, args.device, args.policy_steps,
                    progress=not args.no_progress)
    report(args.run, records)
    print(f"wrote {args.run / 'planners' / 'planners.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
