"""Scaling study: LeWM's planning success, linear probe and latent geometry against training steps,
dataset size and image resolution, on one task (the bare-dot TwoRoom by default).

    python experiments/scaling.py                          # study `tworoom-bare`, one variant at a time
    python experiments/scaling.py --jobs 8 --device cuda   # the same on a GPU, 8 variants at once
    python experiments/scaling.py --variants steps-3k,patch-64-8 --time-limit 30
    python experiments/scaling.py --report                 # docs/scaling.md and docs/assets/scaling_*.png

Every variant trains LeWM (``lewm_agent.train.train``) on its own training file and is evaluated
with the LeWM protocol on the **same** start/goal pairs: they come from a separate evaluation
file collected with another seed (never trained on), at the variant's image size (the expert acts
on states, so the same seed gives the same trajectories at every size). For each variant the
record holds success (Wilson CI), random on the same pairs, the linear probe r of the state, the
rank correlation of latent and state distance (all pairs, and pairs at most ``goal_offset`` steps
apart), the training wall-clock and the device.

Layout under ``results/scaling/<study>/``: ``data/`` (episode files), ``runs/<variant>/`` (a
``lewm train`` run directory; an interrupted or time-limited variant resumes from its
checkpoint), ``records/<variant>.json`` (written atomically when the variant is finished).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lewm_agent.files import atomic_write_json, atomic_write_text  # noqa: E402

__all__ = ["Variant", "Study", "STUDIES", "prepare_data", "run_variant", "write_report", "main"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Variant:
    """One point of a scaling curve: a training budget, a dataset size and a model input."""

    name: str
    axis: str
    """Which curve the variant belongs to (``steps``, ``data``, ``image``, ...); a variant may sit on several
    (see ``also_on``)."""
    steps: int
    episodes: int
    image_size: int = 64
    patch_size: int = 16
    model: dict[str, Any] = field(default_factory=dict)
    """Further ModelConfig overrides."""
    train: dict[str, Any] = field(default_factory=dict)
    """Further TrainConfig overrides."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Env arguments over the study's (e.g. ``{"dot": "gaussian"}``); the evaluation file uses them too."""
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    """Arguments of the collection policy of the training file only (the evaluation pairs always come
    from the study's default policy, so every variant is scored on the same pairs)."""
    also_on: tuple[str, ...] = ()
    """Other axes this variant is the shared point of (e.g. the 10k-step, 600-episode run is on the
    data and image curves too)."""

    def validate(self) -> "Variant":
        if self.steps < 1 or self.episodes < 2:
            raise ValueError(f"variant {self.name}: steps must be >= 1 and episodes >= 2.")
        if self.image_size % self.patch_size:
            raise ValueError(f"variant {self.name}: image_size {self.image_size} is not a multiple of patch "
                             f"{self.patch_size}.")
        return self


@dataclass
class Study:
    """A task, a base preset and the variants trained on it."""

    env_id: str
    env_kwargs: dict[str, Any]
    preset: str
    variants: list[Variant]
    policy: str = "expert"
    """Collection policy of the training and evaluation files (``expert`` or ``random``)."""
    eval_episodes_collected: int = 100
    """Episodes of the evaluation file (seed ``eval_seed``); the pairs are drawn from all of them."""
    eval_seed: int = 1_000_000
    pairs: int = 50
    goal_offset: int = 25
    budget: int = 50
    workers: int = 2
    """Collection processes."""
    description: str = ""
    note: str = ""
    """A paragraph under the description in the report (e.g. how its records were scored)."""
    paper_success: float | None = None
    """The LeWM paper's success rate on this task (drawn on the plot), if it reports one."""
    probe_target: float | None = None
    """The linear probe's target r (drawn on the plot), where the issue sets one (bare-dot TwoRoom: 0.99)."""


REFERENCE_COLLECTOR = {"noise_std": 2.0, "repeat_prob": 0.0, "speed": 1.0}
"""The reference's TwoRoom collector (stable-worldmodel's expert with action noise 2.0, no repeats, unit
action toward the target), in our expert's terms."""
BROAD_PUSHT_COLLECTOR = {"noise_std": 25.0, "random_prob": 0.1}
"""PushT's expert made broader: target noise 25 world units (default 6) and a random-waypoint excursion
started on 10% of steps (default 2%)."""


SINCOS = {"enc_pos_embed": "sincos"}
FLATTEN = {"enc_readout": "flatten"}


def _tworoom_bare() -> Study:
    v = Variant
    return Study(
        env_id="lewm/TwoRoom-v0", env_kwargs={"glow": 0.0, "dot": "disc"}, preset="cpu", paper_success=0.87,
        probe_target=0.99,
        description="TwoRoom with a bare dot (a disc, no glow; `dot=gaussian` rows: the paper's blob), `cpu` preset "
                    "(history 1, frameskip 5, iCEM 100x5 planner)",
        variants=[
            v("steps-1k", "steps", 1_000, 600),
            v("steps-3k", "steps", 3_000, 600),
            v("steps-10k", "steps", 10_000, 600, also_on=("data", "image", "reference", "image-cpu-time")),
            v("steps-30k", "steps", 30_000, 600),
            v("data-2k", "data", 10_000, 2_000),
            v("data-10k", "data", 10_000, 10_000),
            v("patch-64-8", "image", 10_000, 600, 64, 8),
            v("image-96-8", "image", 10_000, 600, 96, 8),
            # about the same CPU time as steps-10k (~33 min on 2 cores): 96/8 costs ~9x a 64/16 step
            v("image-96-8-1k", "image-cpu-time", 1_000, 600, 96, 8),
            # fixed sine-cosine encoder positions (the learned ones barely move: the cost repeats per patch)
            v("sincos-1k", "steps-sincos", 1_000, 600, model=SINCOS),
            v("sincos-3k", "steps-sincos", 3_000, 600, model=SINCOS),
            v("sincos-10k", "steps-sincos", 10_000, 600, model=SINCOS),
            # the projector reads every patch token in its slot instead of the CLS token
            v("flatten-1k", "steps-flatten", 1_000, 600, model=FLATTEN, also_on=("sigreg-lambda", "flatten-dot")),
            v("flatten-3k", "steps-flatten", 3_000, 600, model=FLATTEN),
            v("flatten-10k", "steps-flatten", 10_000, 600, model=FLATTEN),
            # SIGReg's weight (the paper: success above 80% for lambda in [0.01, 0.2], collapse at 0)
            *[v(f"flatten-1k-lambda-{lam}", "sigreg-lambda", 1_000, 600, model={**FLATTEN, "sigreg_lambda": lam})
              for lam in (0.0, 0.01, 0.2, 1.0)],
            v("flatten-ref-dot-1k", "flatten-dot", 1_000, 600, model=FLATTEN, env_kwargs={"dot": "gaussian"}),
            v("flatten-ref-dot-3k", "flatten-dot", 3_000, 600, model=FLATTEN, env_kwargs={"dot": "gaussian"}),
            # the LeWM reference's recipe, one difference at a time (docs/fidelity.md)
            v("ref-dot", "reference", 10_000, 600, env_kwargs={"dot": "gaussian"}),
            v("ref-collector", "reference", 10_000, 600, policy_kwargs=REFERENCE_COLLECTOR),
            v("ref-history-3", "reference", 10_000, 600, model={"history": 3}),
            v("ref-all-patch-8", "reference", 10_000, 600, 64, 8, env_kwargs={"dot": "gaussian"},
              policy_kwargs=REFERENCE_COLLECTOR),
            # the reference's collector with each of the other levers
            v("refcol-sincos", "combined", 10_000, 600, model=SINCOS, policy_kwargs=REFERENCE_COLLECTOR),
            v("refcol-96-8", "combined", 10_000, 600, 96, 8, policy_kwargs=REFERENCE_COLLECTOR),
            v("refcol-2k", "combined", 10_000, 2_000, policy_kwargs=REFERENCE_COLLECTOR),
        ],
    )


def _reacher() -> Study:
    v = Variant
    return Study(
        env_id="lewm/Reacher-v0", env_kwargs={}, preset="cpu", paper_success=0.86,
        description="DeepMind Control Reacher (goal joint angles within 0.05 rad), `cpu` preset",
        variants=[v("cls-2500", "readout", 2_500, 600), v("flatten-2500", "readout", 2_500, 600, model=FLATTEN),
                  v("flatten-2500-nosigreg", "readout", 2_500, 600, model={**FLATTEN, "sigreg_lambda": 0.0}),
                  # the arm is thin and the goal tight (0.05 rad): 96 px images, 6 x 6 patches of 16 px
                  v("flatten-96-16-2500", "readout", 2_500, 600, 96, 16, model=FLATTEN),
                  # the arm has momentum: one frame does not show its velocity (the reference keeps 3)
                  v("flatten-h3-2500", "history", 2_500, 600, model={**FLATTEN, "history": 3})],
    )


def _reacher_random() -> Study:
    v = Variant
    return Study(
        env_id="lewm/Reacher-v0", env_kwargs={}, preset="cpu", paper_success=0.86, policy="random",
        description="DeepMind Control Reacher as the LeWM reference collects and scores it: uniform random torques, "
                    "200-step episodes, pairs (goal 25 steps ahead) from random episodes; `cpu` preset",
        variants=[v("random-h1-2500", "history", 2_500, 300, model=FLATTEN),
                  v("random-h3-2500", "history", 2_500, 300, model={**FLATTEN, "history": 3}),
                  # failures miss by ~0.1 rad, about a pixel at 64 px: more pixels per radian
                  v("random-96-16-2500", "image", 2_500, 300, 96, 16, model=FLATTEN),
                  v("random-h1-10k", "steps", 10_000, 300, model=FLATTEN),
                  # 10k steps on 300 episodes fell to 48% (val prediction loss flat, train loss lower): more data
                  v("random-1k-2500", "data", 2_500, 1_000, model=FLATTEN),
                  v("random-1k-5k", "data", 5_000, 1_000, model=FLATTEN),
                  v("random-3k-2500", "data", 2_500, 3_000, model=FLATTEN)],
    )


def _pusht() -> Study:
    v = Variant
    return Study(
        env_id="lewm/PushT-v1", env_kwargs={}, preset="cpu", paper_success=0.96,
        description="PushT with the LeWM reference's relative actions (target = agent + 100 x action), expert data, "
                    "`cpu` preset (flatten readout)",
        note="Success in the records made before 2026-11-27 (every variant but `relative-2k-h3-2500`) is the block "
             "alone within 20 units and pi/9 of the goal pose. Since then the env applies the reference's test, "
             "which asks for the agent's goal position too; it gave the `tasks` table's agent 4% where the block "
             "alone gave 16% (`docs/fidelity.md`, PushT, success). `relative-2k-h3-2500` was scored with it, "
             "with the `cpu` planner (the whole 5-block plan); planning 3 blocks ahead and replanning after every "
             "block, it gets 18% (10-31) on the same pairs (`docs/pusht_diagnosis.md`). The variants from "
             "2026-11-27 on (the `rollout-loss` axis, and `relative-2k-2500` retrained as their control) use the "
             "reference's test too; their scores with the `pusht` planner are in `docs/pusht_diagnosis.md`, \"A "
             "rollout term in the training loss\". A machine reset removed the records of the earlier variants; "
             "the report carries their rows over from the page.",
        variants=[v("absolute-h1-2500", "control", 2_500, 600, env_kwargs={"relative": False}),
                  v("relative-h1-2500", "control", 2_500, 600, also_on=("history", "data")),
                  # the reference keeps 3 frames: the block's and agent's velocities are not in one frame
                  v("relative-h3-2500", "history", 2_500, 600, model={"history": 3}),
                  v("relative-2k-2500", "data", 2_500, 2_000),
                  # 2k episodes at 2,500 steps underfit (train and validation prediction loss 0.085 / 0.088)
                  v("relative-2k-h3-2500", "combined", 2_500, 2_000, model={"history": 3}),
                  v("relative-2k-7500", "steps", 7_500, 2_000),
                  # a GPU's share (benchmarks/gpu_scaling.sh): 5x the data; fp32 (on an H200 the `cpu` model's
                  # step took 0.016 s in fp32 and 0.027 s in bf16 autocast, batch 128)
                  v("relative-10k-10k", "data", 10_000, 10_000, train={"bf16": False}),
                  v("relative-10k-h3-10k", "combined", 10_000, 10_000, model={"history": 3}, train={"bf16": False}),
                  # finer pixels: the T at 128 px in 16-px patches (64 tokens a frame)
                  v("relative-2k-128-16-5k", "image", 5_000, 2_000, 128, 16, train={"bf16": False}),
                  # the true dynamics with the agent's latent cost plan at 48% where the agent gets 26%
                  # (experiments/diagnose.py): the paper's predictor (6 blocks, 192 wide, 16 x 64 heads,
                  # MLP 2048; "small", PushT 96% against "tiny" 81%) with history 3, on a GPU
                  v("relative-10k-h3-pred6-10k", "combined", 10_000, 10_000,
                    model={"history": 3, "pred_width": 192, "pred_depth": 6, "pred_heads": 16, "pred_head_dim": 64,
                           "pred_mlp_dim": 2048}, train={"bf16": False}),
                  # under the reference's test the true dynamics with the latent cost plan at 42%, the predictor's
                  # rollout at 2%: train it on its own 2-step rollouts too (rollout_loss_steps, not in the paper),
                  # as far ahead as the `pusht` planner looks (3 blocks)
                  v("relative-2k-roll2-2500", "rollout-loss", 2_500, 2_000, model={"rollout_loss_steps": 2}),
                  v("relative-2k-h3-roll2-2500", "rollout-loss", 2_500, 2_000,
                    model={"history": 3, "rollout_loss_steps": 2}),
                  # the rollout term doubled history 1's success at 2,500 steps (6% -> 12%, within noise) and
                  # raised its ranking (0.27 -> 0.35): as far ahead as the ranking's 5 blocks, and the preset's steps
                  v("relative-2k-roll4-2500", "rollout-loss", 2_500, 2_000, model={"rollout_loss_steps": 4}),
                  v("relative-2k-roll2-7500", "rollout-loss", 7_500, 2_000, model={"rollout_loss_steps": 2}),
                  # with the `pusht` planner history 3 at 2,500 steps (18%) and history 1 at 7,500 (16%) are the
                  # best plain-loss figures: both at once, inside the 90-minute budget of a task preset
                  v("relative-2k-h3-7500", "combined", 7_500, 2_000, model={"history": 3}),
                  # the planner scores candidates far from the expert's narrow actions (target noise 6 units of a
                  # 100-unit action scale, 2% excursions); on Reacher broad (random) data doubled success. A broader
                  # expert (BROAD_PUSHT_COLLECTOR)
                  v("relative-2k-broad-2500", "data", 2_500, 2_000, policy_kwargs=BROAD_PUSHT_COLLECTOR),
                  v("relative-2k-broad-7500", "data", 7_500, 2_000, policy_kwargs=BROAD_PUSHT_COLLECTOR),
                  # success needs the agent within 20 units (2.5 px at 64 px) of its goal spot: 8-px patches
                  # (64 tokens a frame, as 128/16) on this machine, under the reference's test
                  v("relative-2k-p8-2500", "image", 2_500, 2_000, 64, 8),
                  # the same at the most steps that fit a task preset's 90 min here (0.84 s a step, 2026-12-07)
                  v("relative-2k-p8-6000", "image", 6_000, 2_000, 64, 8)],
    )


def _cube() -> Study:
    v = Variant
    return Study(
        env_id="lewm/OGBench-cube-single-v0", env_kwargs={"show_arm": False}, preset="cpu", paper_success=0.74,
        description="OGBench cube (single) as the `tasks` table draws it (the arm left out, the gripper pads shown), "
                    "expert data, goal 25 steps ahead; `cpu` preset (flatten readout)",
        note="What the latents hold (`lewm probe --agent results/scaling/cube/runs/VARIANT/agent --data "
             "results/scaling/cube/data/OGBench-cube-single-v0-eval-100ep-64px.h5`, state dims 15-17 counted from "
             "1, measured 2026-12-07): a linear probe of the cube's (x, y, z) gets r = 0.95, 0.98, 0.95 from "
             "`base-300` and 0.96, 0.99, 0.96 from `patch8-300`, with RMSE 2.4, 3.4, 2.0 cm and 2.2, 2.7, 1.8 cm: "
             "4.6 and 3.9 cm of position error, against the task's 4 cm tolerance.\n\n"
             "Acting with a latent policy instead of the search (the `cube` preset's way, measured 2026-12-07): a "
             "copy of a variant's agent saved with plan horizon 1 and receding horizon 1, `lewm policy COPY --set "
             "max_goal_blocks=10`, then `lewm eval --agent COPY --data "
             "results/scaling/cube/data/OGBench-cube-single-v0-eval-100ep-64px.h5 --eval-seed S --plan mode=policy` "
             "on pair sets S = 0-2 (S = 0: the pairs of the table below): `base-300` 13, 11, 9 of 50 = 33/150 = 22% "
             "(16-29), policy validation loss 0.72 (proposing zeros: 0.95); `data-1500-5k` **25, 26, 21 of 50 = "
             "72/150 = 48% (40-56)**, validation loss 0.51 (zeros: 0.97), the policy trained in 1.8 min; random "
             "1, 1, 1 of 50. The same policy trained 6,000 steps on all 1,350 training episodes (`--set "
             "val_fraction=0 --set steps=6000`): 27, 26, 18 = 71/150. Five times the data leaves the search where it "
             "was (2%) and doubles the policy. Twice that again, `data-3000-5k`: **29, 26, 22 of 50 = 77/150 = 51% "
             "(43-59)**, validation loss 0.51 (zeros: 0.98), the search 4%: the policy's gain flattens out.",
        variants=[v("base-300", "data", 2_500, 300),  # the `cube` preset's data and steps
                  v("data-1500-5k", "data", 5_000, 1_500),
                  # the policy doubled with five times the data; twice as much again, the same steps
                  v("data-3000-5k", "data", 5_000, 3_000),
                  # the cube is about 5 x 5 px at 64 px, inside one 16-px patch; the latent policy on the
                  # preset's latents got 8% where GCBC's own pixel encoder got 32%: 8-px patches (64 tokens)
                  v("patch8-300", "image", 2_500, 300, 64, 8),
                  # the reference keeps 3 frames on cube (fidelity audit: our only action-side deviation there)
                  v("history3-300", "history", 2_500, 300, model={"history": 3})],
    )


def _smoke() -> Study:
    v = Variant
    return Study(
        env_id="lewm/TwoRoom-v0", env_kwargs={"glow": 0.0}, preset="tiny", eval_episodes_collected=6, pairs=4,
        goal_offset=5, budget=10, workers=1, description="for tests: seconds",
        variants=[v("steps-10", "steps", 10, 12, 32, 8), v("steps-20", "steps", 20, 12, 32, 8, also_on=("data",)),
                  v("data-16", "data", 20, 16, 32, 8)],
    )


STUDIES = {"tworoom-bare": _tworoom_bare, "reacher": _reacher, "reacher-random": _reacher_random, "pusht": _pusht,
           "cube": _cube, "smoke": _smoke}


def _env_slug(study: Study) -> str:
    return study.env_id.split("/")[-1]


def _tag(**kwargs: dict[str, Any]) -> str:
    """A short, stable file-name tag of non-default env/policy arguments ('' when there are none)."""
    parts = [f"{k}={json.dumps(v, sort_keys=True, separators=(',', ':'))}" for k, v in kwargs.items() if v]
    if not parts:
        return ""
    return "-" + hashlib.sha1(";".join(parts).encode()).hexdigest()[:8]


def _policy_slug(study: Study) -> str:
    return "" if study.policy == "expert" else f"-{study.policy}"


def train_file(root: Path, study: Study, v: Variant) -> Path:
    tag = _tag(env=v.env_kwargs, policy=v.policy_kwargs)
    return root / "data" / f"{_env_slug(study)}{_policy_slug(study)}-train-{v.episodes}ep-{v.image_size}px{tag}.h5"


def eval_file(root: Path, study: Study, v: Variant) -> Path:
    tag = _tag(env=v.env_kwargs)
    name = f"{_env_slug(study)}{_policy_slug(study)}-eval-{study.eval_episodes_collected}ep-{v.image_size}px{tag}.h5"
    return root / "data" / name


def prepare_data(study: Study, variants: list[Variant], root: Path, progress: bool = True) -> None:
    """Collect every training and evaluation file the variants need (valid files are reused)."""
    from lewm_agent.data import DatasetError, collect, validate_episode_file

    wanted: dict[Path, tuple[int, Variant, int, dict]] = {}
    for v in variants:
        wanted[train_file(root, study, v)] = (v.episodes, v, 0, v.policy_kwargs)
        wanted[eval_file(root, study, v)] = (study.eval_episodes_collected, v, study.eval_seed, {})
    for path, (episodes, v, seed, policy_kwargs) in sorted(wanted.items(), key=lambda kv: str(kv[0])):
        try:
            if validate_episode_file(path).num_episodes == episodes:
                continue
            raise SystemExit(f"error: {path} holds another number of episodes than {episodes}; delete it to recollect.")
        except DatasetError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        collect(study.env_id, path, num_episodes=episodes, policy=study.policy, seed=seed, progress=progress,
                workers=study.workers, overwrite=True,
                env_kwargs={**study.env_kwargs, **v.env_kwargs, "image_size": v.image_size},
                policy_kwargs=policy_kwargs)


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def run_variant(study: Study, v: Variant, root: Path, device: str = "auto", time_limit_min: float | None = None,
                progress: bool = True, eval_unfinished: bool = False) -> dict[str, Any] | None:
    """Train (or resume) one variant, then evaluate and probe it; returns its record.

    If the time limit stops training first: None (rerun to continue), or with ``eval_unfinished`` a
    record of the last checkpoint with ``status="unfinished"`` (its learning-rate schedule is not done;
    a later run resumes and replaces it)."""
    import numpy as np

    from lewm_agent.agent import LeWMAgent
    from lewm_agent.analysis import probe_agent
    from lewm_agent.config import preset, replace
    from lewm_agent.data import load_episodes
    from lewm_agent.evaluation import EvalProtocol
    from lewm_agent.pipeline import evaluate_checkpoint
    from lewm_agent.train import train

    p = preset(study.preset)
    model_cfg = replace(p.model, image_size=v.image_size, patch_size=v.patch_size, **v.model).validate()
    train_cfg = replace(p.train, steps=v.steps, device=device, **v.train)
    run_dir = root / "runs" / v.name
    timing_path = run_dir / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {"train_seconds": 0.0, "calls": []}
    agent_dir = run_dir / "agent"
    steps_done = v.steps
    if not (agent_dir / "config.json").exists():
        resume = (run_dir / "checkpoint" / "config.json").exists()
        result = train(train_file(root, study, v), run_dir, model_cfg, train_cfg, p.plan,
                       resume=resume, progress=progress,
                       time_limit_s=None if time_limit_min is None else 60 * time_limit_min)
        timing["train_seconds"] += result.seconds
        timing["calls"].append({"seconds": result.seconds, "steps": result.steps, "device": _device_name(device)})
        timing["final"] = result.final
        atomic_write_json(timing_path, timing)
        if result.steps < v.steps:
            if not eval_unfinished:
                return None
            agent_dir, steps_done = run_dir / "checkpoint", result.steps
    protocol = EvalProtocol(num_episodes=study.pairs, goal_offset=study.goal_offset, budget=study.budget)
    tic = time.perf_counter()
    ev = evaluate_checkpoint(agent_dir, protocol, data_path=eval_file(root, study, v), device=device,
                             progress=progress)
    eval_seconds = time.perf_counter() - tic
    agent = LeWMAgent.load(agent_dir, device=device)
    episodes = load_episodes(eval_file(root, study, v))
    probe = probe_agent(agent, episodes, np.arange(episodes.num_episodes), local_offset=study.goal_offset)
    lewm, rnd = ev["lewm"].to_dict(), ev["random"].to_dict()
    record = {
        "variant": v.name, "status": "ok" if steps_done == v.steps else "unfinished", "steps_done": steps_done,
        "env_kwargs": v.env_kwargs, "policy_kwargs": v.policy_kwargs,
        "axis": v.axis, "also_on": list(v.also_on), "steps": v.steps, "episodes": v.episodes,
        "image_size": v.image_size, "patch_size": v.patch_size, "model_overrides": v.model, "train_overrides": v.train,
        "study": {k: val for k, val in dataclasses.asdict(study).items() if k != "variants"},
        "success_rate": lewm["success_rate"], "ci95": list(lewm["ci95"]), "successes": lewm["successes"],
        "num_pairs": lewm["num_episodes"], "random_success_rate": rnd["success_rate"], "random_ci95": list(rnd["ci95"]),
        "per_pair": [e["success"] for e in lewm["episodes"]],
        "per_pair_min_distance": [e.get("min_distance") for e in lewm["episodes"]],
        "random_per_pair_min_distance": [e.get("min_distance") for e in rnd["episodes"]],
        "probe_r": probe["probe_r"], "probe_r_per_dim": probe["probe_r_per_dim"],
        "probe_rmse_per_dim": probe["probe_rmse_per_dim"],
        "distance_rank_corr": probe["distance_rank_corr"], "local_rank_corr": probe["local_rank_corr"],
        "train_seconds": timing["train_seconds"], "train_calls": timing["calls"],
        "final_metrics": timing.get("final", {}),
        "eval_seconds": eval_seconds, "plan_seconds_per_decision": lewm["extra"].get("plan_seconds_per_decision"),
        "params": lewm["extra"].get("param_breakdown"), "plan": lewm["extra"].get("plan"),
        "device": _device_name(device),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write_json(root / "records" / f"{v.name}.json", record)
    return record


def records_archive(docs: Path, study_name: str) -> Path:
    """Where ``--report`` keeps a copy of every record it draws (``docs/records/scaling_<study>/``, tracked):
    ``results/`` is not, and a reset of the machine would otherwise lose what the page and plot show."""
    return docs / "records" / f"scaling_{study_name}"


def load_records(root: Path, archive: Path | None = None) -> list[dict[str, Any]]:
    """The records under ``root/records``, over those kept in ``archive`` (a variant's record on disk wins)."""
    found = {p.stem: p for p in sorted(archive.glob("*.json"))} if archive is not None else {}
    found.update({p.stem: p for p in sorted((root / "records").glob("*.json"))})
    return [json.loads(p.read_text()) for _, p in sorted(found.items())]


def _collapse(r: dict[str, Any]) -> str:
    """Embedding std and effective rank at the last logged training step (collapse: std -> 0, rank -> 1)."""
    m = r.get("final_metrics") or {}
    if "train/emb_std" not in m:
        return "-"
    return f"{m['train/emb_std']:.2f} / {m['train/eff_rank']:.1f}"


def _closest_failure(r: dict[str, Any]) -> str:
    """Median over the failed pairs of the smallest goal distance reached (task units)."""
    pairs = zip(r.get("per_pair_min_distance") or [], r.get("per_pair") or [])
    dists = [d for d, ok in pairs if not ok and d is not None]
    if not dists:
        return "-"
    dists.sort()
    mid = len(dists) // 2
    return f"{dists[mid] if len(dists) % 2 else (dists[mid - 1] + dists[mid]) / 2:.3g}"


def _fmt_time(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _rows_without_records(md: Path, names: set[str]) -> list[str]:
    """The table rows of an existing report ``md`` whose variant (first cell) has no record in ``names``: a
    report from the records on disk keeps, rather than drops, what an earlier machine measured."""
    if not md.is_file():
        return []
    rows = [line for line in md.read_text().splitlines() if line.startswith("| ") and line.count("|") >= 14]
    return [row for row in rows[1:] if row.split("|")[1].strip() not in names]  # rows[0]: the header


def write_report(study_name: str, root: Path, docs: Path) -> Path:
    """``docs/scaling.md`` (a table per axis) and ``docs/assets/scaling_<study>.png`` from the records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archive = records_archive(docs, study_name)
    records = load_records(root, archive)
    if not records:
        raise SystemExit(f"error: no records under {root / 'records'} or {archive}; run the study first.")
    for r in records:  # keep a copy of what this page draws (atomic; unchanged copies are not rewritten)
        text = json.dumps(r, indent=2, sort_keys=True) + "\n"
        dest = archive / f"{r['variant']}.json"
        if not dest.is_file() or dest.read_text() != text:
            atomic_write_text(dest, text)
    study = STUDIES[study_name]()
    current = {v.name: v for v in study.variants}
    for r in records:  # curves follow the study's current definition, not the one a record was made with
        if r["variant"] in current:
            r["axis"], r["also_on"] = current[r["variant"]].axis, list(current[r["variant"]].also_on)
    order = ["readout", "history", "steps", "steps-sincos", "steps-flatten", "data", "image", "image-cpu-time",
             "reference", "combined", "flatten-dot", "sigreg-lambda"]
    axes = [a for a in order if sum(a == r["axis"] or a in r["also_on"] for r in records) >= 2]  # curves, not points
    numeric = {"steps": ("steps", "training steps"), "steps-sincos": ("steps", "training steps, sincos positions"),
               "steps-flatten": ("steps", "training steps, flatten readout"),
               "data": ("episodes", "training episodes")}
    png = None  # no plot where no axis has two points yet
    if axes:
        ncols = min(5, len(axes))
        blocks = -(-len(axes) // ncols)  # panels wrap into blocks of 3 rows (success, probe, rank corr.)
        fig, panels = plt.subplots(3 * blocks, ncols, figsize=(4.2 * ncols, 8.5 * blocks), squeeze=False)
        for ax in panels.flat:
            ax.set_visible(False)
        for i, axis in enumerate(axes):
            col, grid = i % ncols, panels[3 * (i // ncols):3 * (i // ncols) + 3]
            rows = [r for r in records if r["axis"] == axis or axis in r["also_on"]]
            if axis in numeric:
                rows.sort(key=lambda r: r[numeric[axis][0]])
                xs = [r[numeric[axis][0]] for r in rows]
                pos, labels, xlabel = xs, [f"{x:,}" for x in xs], numeric[axis][1]
            else:  # categorical: the shared baseline first, then the variants in study order
                names = [v.name for v in study.variants]
                rows.sort(key=lambda r: (r["axis"] == axis, names.index(r["variant"]) if r["variant"] in names else 99))
                pos, xlabel = list(range(len(rows))), ("image size / patch" if axis == "image" else "variant")
                labels = [f"{r['image_size']}/{r['patch_size']}" if axis == "image" else r["variant"] for r in rows]
            labels = [lab + ("*" if r.get("status") == "unfinished" else "") for lab, r in zip(labels, rows)]
            for row, (key, label) in enumerate((("success_rate", "success"), ("probe_r", "linear probe r"),
                                                ("local_rank_corr", "rank corr. latent vs state dist."))):
                ax = grid[row][col]
                ax.set_visible(True)
                if key == "success_rate":
                    ys = [r["success_rate"] for r in rows]
                    lo = [r["success_rate"] - r["ci95"][0] for r in rows]
                    hi = [r["ci95"][1] - r["success_rate"] for r in rows]
                    ax.errorbar(pos, ys, yerr=[lo, hi], marker="o", capsize=3, label="LeWM")
                    ax.plot(pos, [r["random_success_rate"] for r in rows], "k--", lw=1, label="random")
                    if study.paper_success is not None:
                        ax.axhline(study.paper_success, color="tab:red", lw=1, ls=":",
                                   label=f"paper {100 * study.paper_success:.0f}%")
                    ax.set_ylim(0, 1)
                elif key == "probe_r":
                    ax.plot(pos, [r["probe_r"] for r in rows], marker="o", label="probe r")
                    if study.probe_target is not None:
                        ax.axhline(study.probe_target, color="tab:red", lw=1, ls=":",
                                   label=f"target {study.probe_target:g}")
                else:
                    ax.plot(pos, [r["local_rank_corr"] for r in rows], marker="o",
                            label=f"frames <= {study.goal_offset} steps apart")
                    ax.plot(pos, [r["distance_rank_corr"] for r in rows], marker="s", ls="--",
                            label="random frame pairs")
                ax.legend(fontsize=7)
                if axis in numeric:
                    ax.set_xscale("log")
                    ax.minorticks_off()
                ax.set_xticks(pos)
                ax.set_xticklabels(labels, fontsize=7, rotation=0 if axis in numeric or axis == "image" else 30,
                                   ha="right" if axis == "reference" else "center")
                ax.set_xlabel(xlabel)
                ax.set_ylabel(label)
                ax.grid(alpha=0.3)
        fig.suptitle(f"LeWM scaling, {study.description}", fontsize=10)
        fig.tight_layout()
        png = docs / "assets" / f"scaling_{study_name}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, dpi=110)
        plt.close(fig)

    lines = ["| variant | steps | episodes | image/patch | other settings | success (95% CI) | random | probe r | "
             "rank corr. local / all | emb. std / eff. rank | closest approach of failures | train wall-clock | "
             "device |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    names = [v.name for v in study.variants]
    for r in sorted(records, key=lambda r: names.index(r["variant"]) if r["variant"] in names else 99):
        other = ", ".join([f"{k}={v}" for k, v in {**r.get("model_overrides", {}), **r.get("train_overrides", {}),
                                                     **r.get("env_kwargs", {})}.items()]
                          + ([f"collector {r['policy_kwargs']}"] if r.get("policy_kwargs") else [])) or "-"
        steps = f"{r['steps']:,}" if r.get("status", "ok") == "ok" else f"{r['steps_done']:,} of {r['steps']:,} (cut)"
        lines.append(
            f"| {r['variant']} | {steps} | {r['episodes']:,} | {r['image_size']}/{r['patch_size']} | {other} | "
            f"**{100 * r['success_rate']:.0f}%** ({100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f}) | "
            f"{100 * r['random_success_rate']:.0f}% | {r['probe_r']:.3f} | {r['local_rank_corr']:.2f} / "
            f"{r['distance_rank_corr']:.2f} | {_collapse(r)} | {_closest_failure(r)} | "
            f"{_fmt_time(r['train_seconds'])} | {r['device']} |")
    md = docs / f"scaling_{study_name}.md"
    carried = _rows_without_records(md, {r["variant"] for r in records})
    lines[2:2] = carried
    table = "\n".join(lines)
    if carried:
        table += ("\n\nRows carried over from the page's previous version (their records are neither under "
                  f"`results/scaling/{study_name}/records/` nor in `docs/records/scaling_{study_name}/`): "
                  + ", ".join(f"`{row.split('|')[1].strip()}`" for row in carried)
                  + ". The plot shows only the variants with records.")
    atomic_write_text(md,
        f"# Scaling study `{study_name}`\n\n{study.description}.\n\n" + (f"{study.note}\n\n" if study.note else "") +
        f"Produced by `python experiments/scaling.py --study {study_name}` (records under "
        f"`results/scaling/{study_name}/records/`), then `--report`, which keeps a copy of every record in "
        f"`docs/records/scaling_{study_name}/`. Every variant is evaluated on the same "
        f"{study.pairs} start/goal pairs (LeWM protocol: goal {study.goal_offset} steps ahead in a held-out "
        f"episode, {study.budget}-step budget), drawn from a separate file of {study.eval_episodes_collected} "
        f"episodes (seed {study.eval_seed}); random acts on the same pairs. Closest approach of failures: the "
        f"median over failed pairs of the smallest goal distance reached (task units; '-' for records made "
        f"before it was kept).\n\n{table}\n\n" + (f"![scaling](assets/scaling_{study_name}.png)\n" if png else ""))
    return md


def _launch(args: argparse.Namespace, names: list[str]) -> int:
    """Run the variants in ``args.jobs`` child processes at once (for a GPU); returns the number that failed."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads_per_job)}
    pending, running, failed = list(names), [], 0
    logs = Path(args.root) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            cmd = [sys.executable, __file__, "--study", args.study, "--root", str(args.root), "--variants", name,
                   "--device", args.device, "--no-progress", "--jobs", "1"]
            if args.time_limit is not None:
                cmd += ["--time-limit", str(args.time_limit)]
            if args.eval_unfinished:
                cmd += ["--eval-unfinished"]
            log = open(logs / f"{name}.log", "a")
            running.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
            print(f"started {name}", flush=True)
        time.sleep(2)
        for item in list(running):
            name, proc, log = item
            if proc.poll() is not None:
                running.remove(item)
                log.close()
                failed += proc.returncode != 0
                print(f"{name} exited with code {proc.returncode}", flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default="tworoom-bare", choices=sorted(STUDIES))
    ap.add_argument("--variants", help="comma-separated variant names (default: all of the study)")
    ap.add_argument("--root", help="results directory (default: results/scaling/<study>)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--jobs", type=int, default=1, help="variants trained at once in child processes (a GPU: 4-8)")
    ap.add_argument("--threads-per-job", type=int, default=2, help="OMP threads of each child when --jobs > 1")
    ap.add_argument("--time-limit", type=float, metavar="MINUTES",
                    help="training minutes per variant per call; an unfinished variant resumes on the next call")
    ap.add_argument("--eval-unfinished", action="store_true",
                    help="evaluate a variant stopped by --time-limit from its checkpoint (record status 'unfinished')")
    ap.add_argument("--workers", type=int, help="collection processes (default: the study's)")
    ap.add_argument("--prepare-only", action="store_true", help="collect the variants' data files and stop")
    ap.add_argument("--report", action="store_true", help="only write docs/scaling_<study>.md and the plot")
    ap.add_argument("--docs", default=str(ROOT / "docs"), help="where --report writes")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    study = STUDIES[args.study]()
    args.root = Path(args.root or ROOT / "results" / "scaling" / args.study)
    if args.jobs < 1 or args.threads_per_job < 1:
        raise SystemExit("error: --jobs and --threads-per-job must be >= 1.")
    if args.time_limit is not None and args.time_limit <= 0:
        raise SystemExit(f"error: --time-limit {args.time_limit} must be > 0 minutes.")
    if args.report:
        print(f"wrote {write_report(args.study, args.root, Path(args.docs))}")
        return 0
    known = {v.name: v for v in study.variants}
    names = args.variants.split(",") if args.variants else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"error: unknown variants {unknown} of study {args.study}; known: {', '.join(known)}.")
    variants = [known[n].validate() for n in names]
    if args.workers is not None:
        if args.workers < 1:
            raise SystemExit("error: --workers must be >= 1.")
        study.workers = args.workers

    def finished(v: Variant) -> bool:
        path = args.root / "records" / f"{v.name}.json"
        return path.exists() and json.loads(path.read_text()).get("status", "ok") == "ok"

    todo = [v for v in variants if not finished(v)]
    for v in variants:
        if v not in todo:
            print(f"{v.name}: finished earlier (records/{v.name}.json)")
    prepare_data(study, todo, args.root, progress=not args.no_progress)
    if args.prepare_only:
        return 0
    if args.jobs > 1 and len(todo) > 1:
        return 1 if _launch(args, [v.name for v in todo]) else 0
    for v in todo:
        rec = run_variant(study, v, args.root, args.device, args.time_limit, progress=not args.no_progress,
                          eval_unfinished=args.eval_unfinished)
        if rec is None:
            print(f"{v.name}: stopped by --time-limit; rerun to continue", flush=True)
        else:
            print(f"{v.name} ({rec['status']}, {rec['steps_done']} steps): success {100 * rec['success_rate']:.0f}% "
                  f"(random {100 * rec['random_success_rate']:.0f}%), probe r {rec['probe_r']:.3f}, rank corr local "
                  f"{rec['local_rank_corr']:.2f} / all "
                  f"{rec['distance_rank_corr']:.2f}, {rec['train_seconds'] / 60:.1f} min of training", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
