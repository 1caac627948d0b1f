"""End to end in one call: collect -> train -> evaluate (LeWM and random on the same pairs) -> videos.

Every stage is resumable: an existing valid episode file is reused, training resumes from its
last checkpoint, and a finished stage is not redone. ``lewm run`` and the examples call this.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .agent import LeWMAgent
from .config import PlanConfig, Preset, replace
from .data import DatasetError, Episodes, collect, load_episodes, validate_episode_file
from .evaluation import EvalProtocol, RandomActor, evaluate, sample_pairs
from .files import atomic_write_json

__all__ = ["evaluate_checkpoint", "held_out_episodes", "run_pipeline"]


def held_out_episodes(agent: LeWMAgent, data_path: str | os.PathLike | None = None) -> tuple[Episodes, np.ndarray, str]:
    """(episodes, ids, description): the agent's validation episodes of its training file, or every
    episode of ``data_path`` when given (a separately collected file)."""
    if data_path is None:
        episodes = load_episodes(agent.metadata["data_path"])
        return episodes, np.asarray(agent.metadata["val_episodes"]), "validation episodes of the training file"
    episodes = load_episodes(data_path)
    return episodes, np.arange(episodes.num_episodes), "every episode of a separate file"


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
) -> dict[str, Any]:
    """Run the protocol for a saved agent (and the random policy on the same pairs).

    Start/goal pairs come from the agent's held-out episodes (recorded at training time) of its
    training file, or from every episode of ``data_path`` when given (a separately collected file).
    The env is the one recorded with the agent's data (id and kwargs), or ``env_id`` (any id, or
    ``module:EnvId``) made with ``env_kwargs`` over ``{"image_size": the agent's frame size}``; without
    ``env_id``, ``env_kwargs`` update the recorded kwargs. The pairs' states must suit that env.
    Returns a JSON-able dict: ``lewm`` and ``random`` results, the protocol, the planner settings.

    Raises:
        ValueError: no env recorded nor given, or an env whose frames or actions do not fit the agent.
    """
    from lewm_agent import envs

    protocol = protocol or EvalProtocol()
    agent = LeWMAgent.load(agent_dir, device=device, **(plan_overrides or {}))
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
        "env_id": env_id, "env_kwargs": env_kwargs, "trained_env_id": meta.get("env_id"), "data": str(data_path),
        "held_out": held_out,
        "history": cfg.history, "frameskip": cfg.frameskip, "plan": dataclasses.asdict(agent.plan_cfg),
        "agent": str(agent_dir), "device": str(agent.device),
    }
    lewm = evaluate(agent, make_env, pairs, protocol, video_dir, video_episodes, "lewm", progress, settings)
    out: dict[str, Any] = {"lewm": lewm.to_dict()}
    out["lewm"]["plan_seconds_per_decision"] = agent.seconds_per_plan
    out["lewm"]["plans"] = agent.num_plans
    out["lewm"]["params"] = agent.model.num_params()
    if with_random:
        random = RandomActor(agent.action_low, agent.action_high, seed=protocol.seed)
        out["random"] = evaluate(random, make_env, pairs, protocol, video_dir, min(video_episodes, 1), "random",
                                 progress, settings).to_dict()
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
                         "evaluate the agent on the env (or a variant with the same actions and state) it was trained on")


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
) -> dict[str, Any]:
    """Collect (if needed), train (resuming), evaluate and write ``summary.json`` under ``out_dir``.

    ``workers`` collection processes; ``max_steps`` caps each collected episode (None: the
    env's time limit).
    """
    from .train import train

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    env_kwargs = {"image_size": preset.model.image_size, **(env_kwargs or {})}

    data_path = out_dir / "episodes.h5"
    tic = time.perf_counter()
    try:
        info = validate_episode_file(data_path)
    except DatasetError:
        info = collect(env_id, data_path, num_episodes=episodes or preset.episodes, policy=policy, seed=seed,
                       env_kwargs=env_kwargs, progress=progress, workers=workers, max_steps=max_steps)
    timings["collect_s"] = time.perf_counter() - tic

    tic = time.perf_counter()
    agent_dir = out_dir / "agent"
    if not (agent_dir / "config.json").exists():
        resume = (out_dir / "checkpoint" / "config.json").exists()
        train(data_path, out_dir, preset.model, replace(preset.train, seed=seed), plan or preset.plan,
              resume=resume, progress=progress)
    timings["train_s"] = time.perf_counter() - tic

    tic = time.perf_counter()
    result = evaluate_checkpoint(agent_dir, protocol, video_dir=out_dir / "videos", video_episodes=video_episodes,
                                 progress=progress)
    timings["eval_s"] = time.perf_counter() - tic
    result["data"] = {"path": str(data_path), "episodes": info.num_episodes, "frames": info.num_frames,
                      "policy": policy, "policy_success_rate": info.attrs.get("policy_success_rate")}
    result["timings"] = timings
    atomic_write_json(out_dir / "eval.json", result)
    return result
