"""End to end in one call (``lewm run``): prepare the task, train LeWM, evaluate it and random, record.

The same experiment core as ``experiments/compare.py`` (:mod:`lewm_agent.experiment`): the task is
prepared once (episodes collected or reused, split, pairs drawn and saved), LeWM trains on that
split, and LeWM and the random policy are evaluated on the task's pairs into
:class:`~lewm_agent.experiment.RunRecord` records, written as a comparison writes its cells.
Every stage is resumable: a prepared task and a valid episode file are reused, training resumes
from its last checkpoint, and a finished agent is not trained again (only evaluated).

``lewm eval`` (:func:`evaluate_checkpoint`) scores a saved agent into the same record type.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .agent import LeWMAgent
from .checkpoint import recover_checkpoint
from .config import ModelConfig, PlanConfig, PolicyConfig, Preset, TrainConfig, replace
from .data import Episodes, load_episodes
from .evaluation import EvalProtocol, RandomActor, evaluate, sample_pairs
from .experiment import RunRecord, Task, TrainClock, evaluate_on_task, prepare_task, record_path, run_key, task_name
from .files import atomic_write_json, file_fingerprint
from .policy import ensure_policy

__all__ = ["evaluate_checkpoint", "held_out_episodes", "run_pipeline", "train_lewm_on_task"]


def held_out_episodes(agent: LeWMAgent, data_path: str | os.PathLike | None = None) -> tuple[Episodes, np.ndarray, str]:
    """(episodes, ids, description): the agent's validation episodes of its training file, or every
    episode of ``data_path`` when given (a separately collected file). The pixels stay on disk (read
    as indexed): the pairs need only the states, a probe or a video a few frames."""
    if data_path is None:
        path, recorded = agent.metadata.get("data_path"), agent.metadata.get("data_fingerprint")
        if not path or "val_episodes" not in agent.metadata:
            raise ValueError("the agent records no training file and held-out episodes (it was not trained by "
                             "lewm train); pass an episode file to evaluate on with --data FILE.")
        if recorded and Path(path).is_file() and file_fingerprint(path) != recorded:
            raise ValueError(f"{path} is not the file this agent was trained on (it was replaced or changed since), so "
                             "its held-out episode ids would pick other episodes; pass the episodes to evaluate on "
                             "with --data FILE.")
        episodes = load_episodes(path, stream=True)
        return episodes, np.asarray(agent.metadata["val_episodes"]), "validation episodes of the training file"
    episodes = load_episodes(data_path, stream=True)
    return episodes, np.arange(episodes.num_episodes), "every episode of a separate file"


def _param_breakdown(agent: LeWMAgent) -> dict[str, int]:
    """The world model's parameter counts (``total`` is the model's) and the latent policy's, if any."""
    breakdown = agent.model.num_params()
    if agent.policy is not None:
        breakdown["latent_policy"] = agent.policy.num_params()
    return breakdown


def train_lewm_on_task(
    task: Task,
    work_dir: str | os.PathLike,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    plan_cfg: PlanConfig | None = None,
    *,
    policy_cfg: PolicyConfig | None = None,
    tb_dir: str | os.PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
) -> tuple[LeWMAgent, dict[str, Any], Callable[[], None]]:
    """LeWM trained on the task's training episodes (its split, exactly), ready to evaluate.

    Trains in ``work_dir`` (resuming from ``work_dir/checkpoint``) unless ``work_dir/agent`` exists, then plans
    with ``plan_cfg`` (if given) rather than the planner saved with the agent, so that a preset's planner
    change applies to an agent trained before it. With ``policy_cfg`` a latent policy is then trained on the same
    training episodes (:func:`~lewm_agent.policy.fit_policy`) and saved with the agent, unless it has one. The
    training wall-clock (world model and policy) is summed over attempts (``work_dir/train_seconds.json``). The
    agent logs its planning diagnostics (``plan/*``) to ``tb_dir``, where the training curves and configs go too.

    Returns ``(agent, figures, close)``: ``figures`` are :func:`~lewm_agent.experiment.evaluate_on_task`'s
    keyword arguments ``data_used``, ``data_kind``, ``train_seconds``, ``params`` and ``extra`` (parameter
    breakdown, steps, batch size, SIGReg weight, final losses, planner); call ``close()`` once the
    evaluation is over (it flushes the planning log).
    """
    from torch.utils.tensorboard import SummaryWriter

    from .train import train

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    tb_dir = Path(tb_dir) if tb_dir is not None else work_dir / "tb"
    clock = TrainClock(work_dir)
    recover_checkpoint(work_dir / "checkpoint")  # before deciding to resume: a swap a killed run left half done
    if not (work_dir / "agent" / "config.json").exists():
        tic = time.perf_counter()
        result = train(task.data_path, work_dir, model_cfg, train_cfg, plan_cfg,
                       resume=(work_dir / "checkpoint" / "config.json").exists(), progress=progress, tb_dir=tb_dir,
                       split=task.split)
        clock.add(time.perf_counter() - tic, final=result.final)
    if policy_cfg is not None:
        tic = time.perf_counter()
        if ensure_policy(work_dir / "agent", policy_cfg, device=device, progress=progress) is not None:
            clock.add(time.perf_counter() - tic)
    record = clock.read()
    agent = LeWMAgent.load(work_dir / "agent", device=device,
                           **({} if plan_cfg is None else dataclasses.asdict(plan_cfg)))
    writer = SummaryWriter(str(tb_dir))  # the search diagnostics of every evaluation decision: plan/*
    agent.log_to(writer)
    figures = {
        "data_used": task.train_frames(), "data_kind": "offline transitions",
        "train_seconds": float(record.get("seconds", 0.0)), "params": agent.num_params,
        "extra": {"param_breakdown": _param_breakdown(agent), "steps": train_cfg.steps,
                  "batch_size": train_cfg.batch_size, "sigreg_lambda": model_cfg.sigreg_lambda,
                  "final": record.get("final", {}), "plan": dataclasses.asdict(agent.plan_cfg),
                  "policy_training": agent.metadata.get("policy_training")},
    }
    return agent, figures, writer.close


def evaluate_checkpoint(
    agent_dir: str | os.PathLike,
    protocol: EvalProtocol | None = None,
    data_path: str | os.PathLike | None = None,
    video_dir: str | os.PathLike | None = None,
    video_episodes: int = 0,
    with_random: bool = True,
    device: str = "auto",
    plan_overrides: dict[str, Any] | None = None,
    progress: bool = True,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    video_root: str | os.PathLike | None = None,
) -> dict[str, RunRecord]:
    """Run the protocol for a saved agent (and the random policy on the same pairs).

    Start/goal pairs come from the agent's held-out episodes (recorded at training time) of its
    training file, or from every episode of ``data_path`` when given (a separately collected file).
    The env is the one recorded with the agent's data (id and kwargs), or ``env_id`` (any id, or
    ``module:EnvId``) made with ``env_kwargs`` over ``{"image_size": the agent's frame size}``; without
    ``env_id``, ``env_kwargs`` update the recorded kwargs. The pairs' states must suit that env.

    Returns ``{"lewm": record, "random": record}`` (:class:`~lewm_agent.experiment.RunRecord`, the schema of a
    comparison cell): ``env_id`` is the env evaluated on; ``extra`` holds the agent, the env it was trained on
    (``trained_env_id``), the env kwargs, the pairs' source, the planner and the planning time per decision.
    ``video_root``: record the videos' paths relative to it (default: as written).

    Raises:
        ValueError: no env recorded nor given, or an env whose frames or actions do not fit the agent.
    """
    from lewm_agent import envs

    protocol = protocol or EvalProtocol()
    agent = LeWMAgent.load(agent_dir, device=device, **(plan_overrides or {})).require_trained()
    meta = agent.metadata
    if env_id:
        env_kwargs = {"image_size": agent.obs_shape[0], **(env_kwargs or {})}
    else:
        env_id, env_kwargs = meta.get("env_id"), {**meta.get("env_kwargs", {}), **(env_kwargs or {})}
    if not env_id:
        raise ValueError(f"Agent {agent_dir} records no env_id (it was not trained from a `lewm collect` file); "
                         "pass the env to evaluate on (lewm eval --env ENV_ID).")
    make_env = lambda: envs.make_env(env_id, **env_kwargs)  # noqa: E731
    probe = make_env()
    try:
        _check_env_fits(agent, probe, env_id)
        episodes, episode_ids, held_out = held_out_episodes(agent, data_path)
        data_path = episodes.path
        pairs = sample_pairs(episodes, episode_ids, protocol, env=probe.unwrapped)
    finally:
        probe.close()
    cfg = agent.model.cfg
    settings = {
        "agent": str(agent_dir), "trained_env_id": meta.get("env_id"), "env_kwargs": env_kwargs, "data": str(data_path),
        "held_out": held_out, "history": cfg.history, "frameskip": cfg.frameskip, "device": str(agent.device),
    }
    name = task_name(env_id)

    def run(method: str, actor: Any, videos: int, **figures: Any) -> RunRecord:
        record = RunRecord.begin(name, env_id, method)
        tic = time.perf_counter()
        result = evaluate(actor, make_env, pairs, protocol, video_dir, videos, method, progress)
        record.set_result(result, pairs, video_root=video_root, **figures)
        return record.finish(time.perf_counter() - tic)

    out = {"lewm": run("lewm", agent, video_episodes, data_used=None, data_kind="offline transitions",
                       train_seconds=None, params=agent.num_params, extra=settings)}
    out["lewm"].extra.update(plan=dataclasses.asdict(agent.plan_cfg), plan_seconds_per_decision=agent.seconds_per_plan,
                             plans=agent.num_plans, param_breakdown=_param_breakdown(agent))
    if with_random:
        random = RandomActor(agent.action_low, agent.action_high, seed=protocol.seed)
        out["random"] = run("random", random, min(video_episodes, 1), data_used=0, data_kind="none", train_seconds=0.0,
                            extra=settings)
    return out


def _check_env_fits(agent: LeWMAgent, env: Any, env_id: str) -> None:
    """A ValueError naming the mismatch if ``env``'s frames or actions are not the agent's."""
    frames = getattr(env.observation_space, "spaces", {}).get("pixels")
    if frames is None or tuple(frames.shape) != agent.obs_shape:
        raise ValueError(f"env {env_id} observes {getattr(frames, 'shape', env.observation_space)} frames, the agent "
                         f"{agent.obs_shape}; pass image_size={agent.obs_shape[0]} in the env kwargs")
    shape = getattr(env.action_space, "shape", None)
    if shape != agent.action_low.shape:
        raise ValueError(f"env {env_id} takes actions of shape {shape}, the agent plans {agent.action_low.shape}: "
                         "evaluate the agent on the env (or a variant with the same actions and state) it was "
                         "trained on")


def run_pipeline(
    preset: Preset,
    out_dir: str | os.PathLike,
    env_id: str = "lewm/TwoRoom-v1",
    env_kwargs: dict[str, Any] | None = None,
    episodes: int | None = None,
    policy: str = "expert",
    seed: int = 0,
    protocol: EvalProtocol | None = None,
    video_episodes: int = 4,
    plan: PlanConfig | None = None,
    progress: bool = True,
    workers: int = 1,
    max_steps: int | None = None,
) -> dict[str, RunRecord]:
    """Prepare the task, train LeWM (resuming), evaluate LeWM and random, write their records under ``out_dir``.

    Layout (a comparison run's, with LeWM's training directory at the top)::

        out_dir/
          episodes.h5                   the task's episodes (collected with ``policy``, or reused)
          tasks/<task>/task.json        the task's settings, split and pairs (pairs.npz beside it)
          checkpoint/, agent/           LeWM (lewm_agent.train), trained on the task's training episodes
          cells/<task>/lewm.json        the records (RunRecord: the schema of a comparison cell);
          cells/<task>/random.json      ``<task>`` is the env id's short name (lewm/TwoRoom-v1: TwoRoom)
          tb/<task>/lewm/               TensorBoard: training curves and configs, plan/* of the evaluation;
          tb/<task>/<method>/record/    the run's settings as hparams, with success_rate and train_seconds
          videos/<task>/<method>_000.mp4

    ``workers`` collection processes; ``max_steps`` caps each collected episode (None: the env's time
    limit). The split is ``preset.train``'s (``val_fraction``, ``split_seed``). A directory prepared
    earlier with other task settings (env, kwargs, episodes, policy, seed, protocol, split) is refused
    (:class:`~lewm_agent.experiment.TaskMismatch`). Returns ``{"lewm": record, "random": record}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env_kwargs = {"image_size": preset.model.image_size, **(env_kwargs or {})}
    train_cfg = replace(preset.train, seed=seed)
    plan = plan or preset.plan
    name = task_name(env_id)
    task = prepare_task(out_dir / "tasks" / name, name, env_id, env_kwargs, episodes or preset.episodes, policy, seed,
                        protocol, max_steps=max_steps, workers=workers, progress=progress,
                        data_path=out_dir / "episodes.h5", val_fraction=train_cfg.val_fraction,
                        split_seed=train_cfg.split_seed)
    where = {"video_dir": out_dir / "videos" / name, "video_root": out_dir, "progress": progress}
    records: dict[str, RunRecord] = {}

    budget = {"model": dataclasses.asdict(preset.model), "train": dataclasses.asdict(train_cfg),
              "plan": dataclasses.asdict(plan)}
    if preset.latent_policy is not None:
        budget["latent_policy"] = dataclasses.asdict(preset.latent_policy)
    record = RunRecord.begin(task.name, task.env_id, "lewm", run_key(task, "lewm", budget), budget)
    tic = time.perf_counter()
    tb = out_dir / "tb" / name / "lewm"
    agent, figures, close = train_lewm_on_task(task, out_dir, preset.model, train_cfg, plan,
                                               policy_cfg=preset.latent_policy, tb_dir=tb, device=train_cfg.device,
                                               progress=progress)
    try:
        evaluate_on_task(task, record, agent, **figures, video_episodes=video_episodes, tb_dir=tb, **where)
    finally:
        close()
    records["lewm"] = record.finish(time.perf_counter() - tic)

    record = RunRecord.begin(task.name, task.env_id, "random", run_key(task, "random", {}), {})
    tic = time.perf_counter()
    env = task.make_env()
    low, high = env.action_space.low, env.action_space.high
    env.close()
    evaluate_on_task(task, record, RandomActor(low, high, seed=task.protocol.seed), data_used=0, data_kind="none",
                     train_seconds=0.0, video_episodes=min(video_episodes, 1), tb_dir=out_dir / "tb" / name / "random",
                     **where)
    records["random"] = record.finish(time.perf_counter() - tic)

    for method, record in records.items():
        atomic_write_json(record_path(out_dir, task.name, method), record.to_dict(), default=str)
    return records
