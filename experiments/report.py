"""Turn cell records into results.json, results.csv, results.md and PNG plots.

Every function takes the list of cell records written by :mod:`experiments.cells` (one dict per
(task, method)); records whose status is ``skipped`` or ``error`` appear in the table with their
message and are left out of the plots.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from lewm_agent.files import atomic_write_json, atomic_write_text

__all__ = ["CSV_COLUMNS", "PAPER_SUCCESS", "find_block", "markdown_table", "task_table", "update_block", "write_csv",
           "write_plots", "write_reports"]

CSV_COLUMNS = [
    "task", "method", "status", "success_rate", "ci95_low", "ci95_high", "successes", "num_episodes", "mean_return",
    "mean_steps_to_success", "data_used", "data_kind", "train_seconds", "decision_ms_median", "decision_ms_p95",
    "decision_ms_mean",
    "params", "peak_rss_mb", "peak_cuda_mb", "eval_seconds", "pairs_fingerprint", "message",
]


LEGEND = """
Success: the task's success test held at some step within the budget; 95% Wilson interval.
Training data: offline transitions (frames of the training episodes) for LeWM, env interactions
for online methods. Train time: wall-clock of training in its cell. Ms per decision: wall-clock
of one batched `act` over all pairs divided by their number; a planner that replans every k
steps (LeWM) has a small median and carries its planning cost in the mean. Peak memory: the
peak resident memory of the cell's own process (training and evaluation).
"""


def _fmt_int(n: Any) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}".replace(".0", "")
    return f"{n:.0f}"


def _fmt_seconds(s: Any) -> str:
    if s is None:
        return "-"
    s = float(s)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def _ms(x: Any) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def markdown_table(records: list[dict[str, Any]]) -> str:
    """One row per cell: success with its Wilson 95% interval, return, data, cost and latency."""
    lines = ["| task | method | success | 95% CI | mean return | training data | train time | "
             "ms per decision (median / p95 / mean) | params | peak memory |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for r in records:
        if r.get("status") != "ok":
            lines.append(f"| {r['task']} | {r['method']} | {r.get('status', '?')} | | | | | | | |")
            notes.append(f"- {r['task']} / {r['method']}: **{r.get('status')}**: {r.get('message', '')}")
            continue
        lo, hi = r["ci95"]
        data = "-" if r["data_kind"] == "none" else f"{_fmt_int(r['data_used'])} {r['data_kind']}"
        mem = f"{r['peak_rss_mb']:.0f} MB" + (f" (+{r['peak_cuda_mb']:.0f} MB GPU)" if r.get("peak_cuda_mb") else "")
        lines.append(
            f"| {r['task']} | {r['method']} | {100 * r['success_rate']:.0f}% ({r['successes']}/{r['num_episodes']}) | "
            f"{100 * lo:.0f}-{100 * hi:.0f}% | {r['mean_return']:.2f} | {data} | {_fmt_seconds(r['train_seconds'])} | "
            f"{_ms(r['decision_ms_median'])} / {_ms(r['decision_ms_p95'])} / {_ms(r.get('decision_ms_mean'))} | "
            f"{_fmt_int(r['params'])} | {mem} |")
    out = "\n".join(lines) + "\n"
    collapse = [r for r in records
                if r.get("status") == "ok" and "train/emb_std" in r.get("extra", {}).get("final", {})]
    if collapse:
        out += "\nEmbeddings at the end of training (collapse shows as std -> 0 and few effective dimensions):\n"
        for r in collapse:
            f = r["extra"]["final"]
            out += (f"- {r['task']} / {r['method']}: embedding std {f['train/emb_std']:.2f}, participation ratio "
                    f"{f.get('train/participation_ratio', float('nan')):.1f}, effective rank "
                    f"{f.get('train/eff_rank', float('nan')):.1f}, prediction loss "
                    f"{f.get('train/pred_loss', float('nan')):.4f}\n")
    if notes:
        out += "\n" + "\n".join(notes) + "\n"
    return out


PAPER_SUCCESS = {"TwoRoom": 87, "Reacher": 86, "PushT": 96, "OGBench-cube": 74}
"""LeWM's success (%) in the paper, per task of this project that it reports (50 episodes)."""


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "not run"
    if r.get("status") != "ok":
        return str(r.get("status"))
    lo, hi = r["ci95"]
    return f"{100 * r['success_rate']:.0f}% ({100 * lo:.0f}-{100 * hi:.0f})"


def task_table(records: list[dict[str, Any]], lewm: str = "lewm") -> str:
    """One row per task: LeWM, the same-data offline baselines (GCBC, GCIQL), random and the expert on the
    same pairs (success, 95% Wilson CI), LeWM's training wall-clock and data, and the paper's LeWM figure;
    cells not (yet) run say so."""
    by = {(r["task"], r["method"]): r for r in records}
    tasks = list(dict.fromkeys(r["task"] for r in records))
    lines = ["| task | LeWM | GCBC | GCIQL | random | expert | LeWM training (wall-clock, data) | paper LeWM |",
             "|---|---|---|---|---|---|---|---|"]
    for t in tasks:
        r = by.get((t, lewm))
        train = "-"
        if r is not None and r.get("status") == "ok":
            train = f"{_fmt_seconds(r['train_seconds'])}, {_fmt_int(r['data_used'])} {r['data_kind']}"
        paper = f"{PAPER_SUCCESS[t]}%" if t in PAPER_SUCCESS else "-"
        others = " | ".join(_cell(by.get((t, m))) for m in ("gcbc", "gciql", "random", "expert"))
        lines.append(f"| {t} | **{_cell(r)}** | {others} | {train} | {paper} |")
    return "\n".join(lines) + "\n"


def find_block(path: Path, name: str) -> tuple[str, int, int]:
    """(text of ``path``, end of ``<!-- NAME:begin -->``, start of ``<!-- NAME:end -->``); a file without both
    markers in that order is named in the error."""
    path = Path(path)
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    old = path.read_text() if path.is_file() else ""
    i, j = old.find(begin), old.find(end)
    if i < 0 or j < i:
        raise ValueError(f"{path} has no '{begin}' ... '{end}' block to write into; add both markers where the "
                         "table goes.")
    return old, i + len(begin), j


def update_block(path: Path, name: str, text: str) -> Path:
    """Replace what lies between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` in ``path`` by ``text``
    (atomically); a file without both markers is left alone and named in the error."""
    old, i, j = find_block(path, name)
    return atomic_write_text(path, old[:i] + "\n" + text.rstrip("\n") + "\n" + old[j:])


def write_csv(path: Path, records: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        row = dict(r)
        if "ci95" in r:
            row["ci95_low"], row["ci95_high"] = r["ci95"]
        writer.writerow(row)
    atomic_write_text(path, buf.getvalue())


def _methods_and_tasks(ok: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    methods, tasks = [], []
    for r in ok:
        methods += [r["method"]] if r["method"] not in methods else []
        tasks += [r["task"]] if r["task"] not in tasks else []
    return methods, tasks


def _ci_errors(r: dict[str, Any]) -> tuple[float, float]:
    """Distances (percentage points, >= 0) from a cell's success rate down and up to its Wilson bounds."""
    rate, (lo, hi) = r["success_rate"], r["ci95"]
    return max(0.0, 100 * (rate - lo)), max(0.0, 100 * (hi - rate))


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(plot_dir: Path, records: list[dict[str, Any]]) -> list[Path]:
    """success.png (rate with Wilson intervals per task and method), success_vs_time.png (success
    against training wall-clock), latency.png (decision latency, median with p95)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ok = [r for r in records if r.get("status") == "ok"]
    if not ok:
        return []
    plot_dir.mkdir(parents=True, exist_ok=True)
    methods, tasks = _methods_and_tasks(ok)
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    by = {(r["task"], r["method"]): r for r in ok}
    paths = []

    fig, ax = plt.subplots(figsize=(max(5, 1.2 + 0.9 * len(tasks) * len(methods) / 2), 3.6))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        xs, ys, err = [], [], [[], []]
        for i, t in enumerate(tasks):
            if (t, m) in by:
                r = by[(t, m)]
                xs.append(i + (j - (len(methods) - 1) / 2) * width)
                ys.append(100 * r["success_rate"])
                low, high = _ci_errors(r)
                err[0].append(low)
                err[1].append(high)
        ax.bar(xs, ys, width, yerr=err, capsize=3, color=colors[m], label=m)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("success rate (%), 95% Wilson CI")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title("Success on identical start/goal pairs")
    paths.append(_save(fig, plot_dir / "success.png"))

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for r in ok:
        if r["data_kind"] == "none":
            ax.axhline(100 * r["success_rate"], color=colors[r["method"]], ls="--", lw=1,
                       label=f"{r['method']} ({r['task']})")
            continue
        low, high = _ci_errors(r)
        ax.errorbar(max(r["train_seconds"], 1e-2), 100 * r["success_rate"], yerr=[[low], [high]],
                    fmt="o", color=colors[r["method"]], capsize=3, label=f"{r['method']} ({r['task']})")
    ax.set_xscale("log")
    ax.set_xlabel("training wall-clock (s, log)")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-3, 105)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title("Success against training time")
    paths.append(_save(fig, plot_dir / "success_vs_time.png"))

    fig, ax = plt.subplots(figsize=(6, max(2.4, 1.0 + 0.35 * len(ok))))
    labels = [f"{r['method']} ({r['task']})" for r in ok]
    med = np.array([max(r["decision_ms_median"], 1e-4) for r in ok])
    p95 = np.array([max(r["decision_ms_p95"], 1e-4) for r in ok])
    ax.barh(range(len(ok)), med, color=[colors[r["method"]] for r in ok])
    mean = np.array([max(r.get("decision_ms_mean", r["decision_ms_median"]), 1e-4) for r in ok])
    ax.errorbar(p95, range(len(ok)), fmt="|", color="black", ms=10, label="p95")
    ax.errorbar(mean, range(len(ok)), fmt="o", color="black", ms=3, label="mean")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_yticks(range(len(ok)), labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("ms per env decision (median bar; log)")
    ax.invert_yaxis()
    ax.set_title("Decision latency")
    paths.append(_save(fig, plot_dir / "latency.png"))
    return paths


def write_reports(run_dir: Path, records: list[dict[str, Any]], header: dict[str, Any]) -> dict[str, Path]:
    """Write results.json (header + every record), results.csv, results.md and plots/ under ``run_dir``."""
    run_dir = Path(run_dir)
    plots = write_plots(run_dir / "plots", records)
    atomic_write_json(run_dir / "results.json", {**header, "cells": records}, default=str)
    write_csv(run_dir / "results.csv", records)
    md = [f"# Comparison `{header.get('run_name', run_dir.name)}`\n",
          f"{header.get('date', '')}, {header.get('machine', {}).get('summary', '')}. "
          f"Protocol: {header.get('protocol_summary', '')}\n", markdown_table(records), LEGEND]
    if len({r["task"] for r in records}) > 1 and any(r["method"] == "lewm" for r in records):
        md.append("\n## Per task\n\n" + task_table(records))
    if plots:
        md.append("\n" + "\n".join(f"![{p.stem}](plots/{p.name})" for p in plots) + "\n")
    videos = [v for r in records for v in r.get("videos", [])[:1]]
    if videos:
        links = ", ".join(f"[{v}]({v})" for v in videos)
        md.append(f"\nVideos (observation | goal, green border once solved): {links}\n")
    atomic_write_text(run_dir / "results.md", "\n".join(md))
    return {"json": run_dir / "results.json", "csv": run_dir / "results.csv", "md": run_dir / "results.md"}
