"""Roll a data-collection policy in a Gymnasium task and write the episodes to an HDF5 file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lewm_agent.data.dataset import DatasetError, EpisodeFileInfo, EpisodeWriter, validate_episode_file

__all__ = ["collect"]


def collect(
    env_id: str,
    path: str | os.PathLike,
    *,
    num_episodes: int,
    policy: str = "expert",
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    max_steps: int | None = None,
    append: bool = False,
    progress: bool = True,
) -> EpisodeFileInfo:
    """Collect ``num_episodes`` episodes of ``policy`` in ``env_id`` into the episode file ``path``.

    Episode i is reset with ``seed + i`` and runs until terminated or truncated (the env's
    ``TimeLimit``), or after ``max_steps`` actions. Row t of an episode holds the observation
    ``o_t`` (``obs["pixels"]``), the action ``a_t`` taken from it (clipped to the action space,
    i.e. what the env applied) and ``info["state"]``; the final observation gets a NaN action,
    so an episode of k actions has k + 1 rows. Written atomically (see :class:`EpisodeWriter`).

    File attributes: ``env_id``, ``env_kwargs`` (JSON), ``image_size``, ``action_low``,
    ``action_high``, ``policy``, ``seed``, ``max_steps``, ``policy_success_rate`` (fraction of
    episodes in which ``info["is_success"]`` held after some step) and ``policy_successes``.
    When appending, ``policy`` lists every policy used (comma-separated) and the success
    statistics cover the whole file; ``seed``/``max_steps`` are those of the latest call.

    Args:
        env_id: a registered id, e.g. ``"lewm/TwoRoom-v0"``.
        path: the ``.h5`` file to write.
        num_episodes: episodes to collect (>= 1).
        policy: ``"expert"`` or ``"random"`` (see :func:`envs.policies.make_policy`).
        seed: base seed for env resets and the policy.
        env_kwargs: constructor arguments, e.g. ``{"image_size": 224}``.
        max_steps: cap on actions per episode (None: the env's own time limit).
        append: add to an existing file instead of replacing it (use a different ``seed``
            to get different episodes).
        progress: show a tqdm bar over episodes.

    Returns:
        :func:`validate_episode_file` of the written file.
    """
    import envs  # the task registry (Gymnasium ids under lewm/)
    from envs.policies import make_policy

    Path(path).parent.mkdir(parents=True, exist_ok=True)  # `lewm collect --out data/x.h5` on a fresh checkout

    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    env_kwargs = dict(env_kwargs or {})
    path = Path(path)

    env = envs.make_env(env_id, **env_kwargs)
    try:
        actor = make_policy(policy, env, seed=seed)
        space = env.action_space
        low, high = np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)
        image_size = int(env.observation_space["pixels"].shape[0])

        prev_episodes, prev_successes, policies = 0, 0, policy
        if append and path.exists():
            old = validate_episode_file(path)
            prev_episodes = old.num_episodes
            prev_successes = int(old.attrs.get("policy_successes", 0))
            old_policies = str(old.attrs.get("policy", "")).split(",")
            policies = ",".join(old_policies + [policy] if policy not in old_policies else old_policies)
        attrs = {
            "env_id": env_id,
            "env_kwargs": json.dumps(env_kwargs, sort_keys=True),
            "image_size": image_size,
            "action_low": low,
            "action_high": high,
            "policy": policies,
            "seed": int(seed),
            "max_steps": -1 if max_steps is None else int(max_steps),
        }
        successes = 0
        with EpisodeWriter(path, attrs=attrs, append=append) as writer:
            bar = tqdm(range(num_episodes), desc=f"collect {env_id}", unit="ep", disable=not progress)
            for i in bar:
                obs, info = env.reset(seed=seed + i)
                actor.reset(obs, info)
                pixels, actions, states = [obs["pixels"]], [], [info["state"]]
                success = False
                while True:
                    action = np.clip(np.asarray(actor(obs, info), np.float32), low, high)
                    obs, _, terminated, truncated, info = env.step(action)
                    actions.append(action)
                    pixels.append(obs["pixels"])
                    states.append(info["state"])
                    success |= bool(info["is_success"])
                    if terminated or truncated or (max_steps is not None and len(actions) >= max_steps):
                        break
                actions.append(np.full_like(actions[0], np.nan))  # no action after the last frame
                writer.add_episode(np.stack(pixels), np.stack(actions), np.stack(states).astype(np.float32))
                successes += success
                bar.set_postfix(success=f"{successes / (i + 1):.2f}", frames=writer.num_frames)
            total_successes = prev_successes + successes
            writer.update_attrs({
                "policy_successes": total_successes,
                "policy_success_rate": total_successes / (prev_episodes + num_episodes),
            })
    finally:
        env.close()
    info_out = validate_episode_file(path)
    if info_out.num_episodes != prev_episodes + num_episodes:  # pragma: no cover (defensive)
        raise DatasetError(f"{path}: expected {prev_episodes + num_episodes} episodes, found {info_out.num_episodes}")
    return info_out
