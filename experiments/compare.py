"""The main job: LeWM beside baselines on the same start/goal pairs, under one protocol.

    python experiments/compare.py                 # `quick`: TwoRoom, the cpu preset, ~15 min on 2 cores
    python experiments/compare.py --preset smoke  # a 1-minute end-to-end check

This version compares LeWM (collect -> train -> latent CEM-MPC) with the random policy and the
task's scripted collection expert (whose own success rate is measured while collecting); the
SB3 and Dreamer-style baselines plug into the same evaluation (issue "experiments/compare.py").
Outputs under results/<run-name>/: results.json, results.md, videos/, tb/ (TensorBoard), the
episode file and the agent. Rerunning resumes: finished stages are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lewm_agent.config import preset, replace
from lewm_agent.evaluation import EvalProtocol
from lewm_agent.pipeline import run_pipeline

PRESETS = {
    # name: (model preset, episodes, train steps, eval episodes)
    "smoke": ("tiny", 20, 60, 10),
    "quick": ("cpu", None, None, 50),
    "full": ("paper", None, None, 50),
}


def markdown_table(result: dict, env_id: str) -> str:
    rows = ["| task | method | success | 95% CI | mean steps to success | ms per env step (mean / max) |",
            "|---|---|---|---|---|---|"]
    for name in ("lewm", "random"):
        r = result[name]
        steps = r["mean_steps_to_success"]
        rows.append(
            f"| {env_id} | {name} | {100 * r['success_rate']:.0f}% ({r['successes']}/{r['num_episodes']}) | "
            f"{100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f}% | {'-' if steps is None else f'{steps:.1f}'} | "
            f"{1000 * r['decision_seconds_mean']:.1f} / {1000 * r['decision_seconds_max']:.0f} |")
    rate = result["data"].get("policy_success_rate")
    if rate is not None:
        rows.append(f"| {env_id} | expert (collection policy, own goals) | {100 * float(rate):.0f}% | | | |")
    plan_ms = 1000 * result["lewm"]["plan_seconds_per_decision"]
    rows.append(f"\nLeWM plans once per {result['lewm']['protocol']['plan']['receding_horizon']} action blocks: "
                f"{plan_ms:.0f} ms of planning per env decision (all envs planned in one batch).\n")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    parser.add_argument("--run-name", default=None, help="results/<run-name> (default: the preset name)")
    parser.add_argument("--env", default="lewm/TwoRoom-v0")
    parser.add_argument("--episodes", type=int, default=None, help="episodes to collect")
    parser.add_argument("--steps", type=int, default=None, help="LeWM training steps")
    parser.add_argument("--eval-episodes", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model_preset, episodes, steps, eval_episodes = PRESETS[args.preset]
    p = preset(model_preset)
    steps = args.steps or steps
    if steps:
        p.train = replace(p.train, steps=steps, ckpt_every=min(p.train.ckpt_every, steps))
    out = Path("results") / (args.run_name or args.preset)
    protocol = EvalProtocol(num_episodes=args.eval_episodes or eval_episodes, seed=args.seed)
    result = run_pipeline(p, out, env_id=args.env, episodes=args.episodes or episodes, seed=args.seed,
                          protocol=protocol, video_episodes=4)
    table = markdown_table(result, args.env)
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(table)
    t = result["timings"]
    print(f"collect {t['collect_s']:.0f}s, train {t['train_s']:.0f}s, eval {t['eval_s']:.0f}s; outputs in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
