"""Roll a data-collection policy in a Gymnasium task and write the episodes to an HDF5 file.

Episodes can be collected by several processes (``workers``): each worker writes its share of
the episodes to a temporary shard file next to the output, and the shards are merged in
episode order into one atomically written file. Episode ``i`` depends only on ``(seed, i)``
(the env is reset with ``seed + i`` and the policy is built with seed ``seed + i``), so the
file is the same whatever the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from multiprocessing.managers import SyncManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lewm_agent.data.errors import DatasetError
from lewm_agent.data.h5 import open_file
from lewm_agent.data.validate import EpisodeFileInfo, validate_episode_file
from lewm_agent.data.writer import EpisodeWriter
from lewm_agent.files import OutputPathError, check_output_file, remove_leftovers

__all__ = ["collect"]


@dataclass
class _Episode:
    pixels: np.ndarray  # uint8 (T+1, H, W, 3)
    action: np.ndarray  # float32 (T+1, A); NaN on the last row
    state: np.ndarray | None  # float32 (T+1, S) or None
    success: bool  # info["is_success"] held after some step
    episode_return: float  # sum of rewards


def _pixels_of(obs: Any) -> np.ndarray:
    """The frame of an observation: ``obs["pixels"]`` for goal tasks, ``obs`` for pixel-only tasks."""
    return np.asarray(obs["pixels"] if isinstance(obs, dict) else obs)


def _rollout(env, policy_name: str, seed: int, max_steps: int | None, low: np.ndarray, high: np.ndarray,
             policy_kwargs: dict[str, Any] | None = None) -> _Episode:
    """One episode of ``policy_name`` (built with ``policy_kwargs``) from ``env.reset(seed=seed)``."""
    from lewm_agent.envs.policies import make_policy

    actor = make_policy(policy_name, env, seed=seed, **(policy_kwargs or {}))
    obs, info = env.reset(seed=seed)
    actor.reset(obs, info)
    pixels, actions, states = [_pixels_of(obs)], [], [info.get("state")]
    success, total = False, 0.0
    while True:
        action = np.clip(np.asarray(actor(obs, info), np.float32), low, high)
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        pixels.append(_pixels_of(obs))
        states.append(info.get("state"))
        success |= bool(info.get("is_success", False))
        total += float(reward)
        if terminated or truncated or (max_steps is not None and len(actions) >= max_steps):
            break
    actions.append(np.full_like(actions[0], np.nan))  # no action after the last frame
    state = None if any(s is None for s in states) else np.stack(states).astype(np.float32)
    return _Episode(np.stack(pixels), np.stack(actions), state, success, total)


def _write_episodes(env, writer: EpisodeWriter, episodes: range, policy: str, seed: int, max_steps: int | None,
                    low: np.ndarray, high: np.ndarray, on_episode,
                    policy_kwargs: dict[str, Any] | None = None) -> tuple[list[bool], list[float]]:
    """Roll episodes ``episodes`` (episode i from seed ``seed + i``) into ``writer``.

    ``on_episode(successes)`` is called after each episode. Returns (successes, returns).
    """
    successes, returns = [], []
    for i in episodes:
        ep = _rollout(env, policy, seed + i, max_steps, low, high, policy_kwargs)
        writer.add_episode(ep.pixels, ep.action, ep.state)
        successes.append(ep.success)
        returns.append(ep.episode_return)
        on_episode(successes)
    return successes, returns


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this process when ``parent`` dies, even by SIGKILL (no orphan keeps collecting).

    Linux asks the kernel (``PR_SET_PDEATHSIG``); elsewhere a daemon thread polls the parent's pid."""
    import ctypes
    import signal
    import sys
    import threading
    import time

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="lewm-parent-watch", daemon=True).start()


def _collect_shard(job: dict[str, Any]) -> tuple[list[bool], list[float]]:
    """Worker: collect episodes ``job["first"]`` .. ``job["last"] - 1`` into the shard ``job["path"]``.

    Imports the parent's env modules first (``job["env_modules"]``), so that an env or expert registered
    by one (``module:EnvId``, ``--env-module``) is found here too.
    """
    from lewm_agent import envs  # registers the tasks (and sets MUJOCO_GL) in this process

    envs.import_env_modules(job["env_modules"])
    env = envs.make_env(job["env_id"], **job["env_kwargs"])
    try:
        with EpisodeWriter(job["path"], attrs=job["attrs"]) as writer:
            return _write_episodes(env, writer, range(job["first"], job["last"]), job["policy"], job["seed"],
                                   job["max_steps"], job["low"], job["high"], lambda _: job["queue"].put(1),
                                   job["policy_kwargs"])
    finally:
        env.close()


def _copy_shard(shard: Path, writer: EpisodeWriter) -> None:
    """Append every episode of ``shard`` to ``writer``, one episode in memory at a time."""
    with open_file(shard) as f:
        has_state = "state" in f
        for offset, length in zip(f["ep_offset"][()], f["ep_len"][()]):
            rows = slice(int(offset), int(offset + length))
            writer.add_episode(f["pixels"][rows], f["action"][rows], f["state"][rows] if has_state else None)


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
    workers: int = 1,
    policy_kwargs: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> EpisodeFileInfo:
    """Collect ``num_episodes`` episodes of ``policy`` in ``env_id`` into the episode file ``path``.

    Episode i is reset with ``seed + i`` (its policy is built with seed ``seed + i``) and runs
    until terminated or truncated (the env's ``TimeLimit``), or after ``max_steps`` actions.
    Row t of an episode holds the observation ``o_t`` (``obs["pixels"]``, or ``obs`` itself for
    pixel-only tasks), the action ``a_t`` taken from it (clipped to the action space, i.e.
    what the env applied) and ``info["state"]`` when the env reports it; the final observation
    gets a NaN action, so an episode of k actions has k + 1 rows. Written atomically (see
    :class:`EpisodeWriter`).

    File attributes: ``env_id``, ``env_kwargs`` (JSON), ``image_size``, ``action_low``,
    ``action_high``, ``policy``, ``seed``, ``seed_ranges`` (JSON list of ``[first, end)`` episode seed
    ranges of every call), ``max_steps``, ``policy_success_rate`` (fraction of
    episodes in which ``info["is_success"]`` held after some step), ``policy_successes`` and
    ``policy_mean_return`` (mean sum of rewards per episode, of this call).
    When appending, ``policy`` lists every policy used (comma-separated) and the success
    statistics cover the whole file; ``seed``/``max_steps`` are those of the latest call.

    Args:
        env_id: a registered id, e.g. ``"lewm/TwoRoom-v1"``, or ``"module:EnvId"`` for an env registered
            by another package (see :func:`lewm_agent.envs.make_env`); recorded as given.
        path: the ``.h5`` file to write.
        num_episodes: episodes to collect (>= 1).
        policy: ``"expert"`` or ``"random"`` (see :func:`lewm_agent.envs.policies.make_policy`).
        seed: base seed for env resets and the policy.
        env_kwargs: constructor arguments, e.g. ``{"image_size": 224}`` (an env that does not take
            ``image_size`` gets its frames resized, see :func:`lewm_agent.envs.make_env`).
        max_steps: cap on actions per episode (None: the env's own time limit).
        append: add to an existing file. Episode seeds already in the file (its ``seed_ranges``
            attribute) are refused: use another ``seed``, at or past the last range's end.
        overwrite: replace an existing file at ``path``. Without ``append`` or ``overwrite`` an existing
            file is refused (:class:`~lewm_agent.files.OutputPathError`), before any work.
        progress: show a tqdm bar over episodes.
        workers: processes collecting in parallel (>= 1); the file does not depend on it.
        policy_kwargs: constructor arguments of the policy (e.g. ``{"noise_std": 2.0}`` for the
            TwoRoom expert); recorded in the file's ``policy_kwargs`` attribute (JSON).

    Returns:
        :func:`validate_episode_file` of the written file.
    """
    from lewm_agent import envs  # the task registry (Gymnasium ids under lewm/)

    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    workers = min(workers, num_episodes)
    env_kwargs = dict(env_kwargs or {})
    if policy_kwargs is not None and not isinstance(policy_kwargs, dict):
        raise ValueError(f"policy_kwargs must be a dict of the policy's constructor arguments, got {policy_kwargs!r}")
    policy_kwargs = dict(policy_kwargs or {})
    if append and overwrite:
        raise ValueError("append and overwrite exclude each other: add to the file, or replace it.")
    path = check_output_file(path)
    if path.exists() and not (append or overwrite):
        raise OutputPathError(f"{path} already exists; add episodes to it with --append, replace it with --overwrite, "
                              "or choose another --out.")
    if append and path.exists():
        _check_new_seeds(path, seed, num_episodes)
    path.parent.mkdir(parents=True, exist_ok=True)  # `lewm collect --out data/x.h5` on a fresh checkout
    remove_leftovers(path)  # temporary files and shards of a collection that was killed

    env = envs.make_env(env_id, **env_kwargs)  # collects when workers == 1; else only read
    try:
        return _collect_with(env, path, env_id, env_kwargs, num_episodes, policy, seed, max_steps, append, progress,
                             workers, policy_kwargs)
    finally:
        env.close()


def _seed_ranges(info: EpisodeFileInfo) -> list[list[int]]:
    """``[first, end)`` episode seed ranges collected into a file (its ``seed_ranges`` attribute; none for a
    file written before it was recorded, whose earlier calls are not known)."""
    text = info.attrs.get("seed_ranges")
    if isinstance(text, bytes):
        text = text.decode()
    return [[int(a), int(b)] for a, b in json.loads(text)] if isinstance(text, str) else []


def _check_new_seeds(path: Path, seed: int, num_episodes: int) -> None:
    """Refuse an append whose episode seeds ``seed .. seed + num_episodes - 1`` are already in the file:
    episode i is a function of seed + i, so they would be the same episodes again."""
    ranges = _seed_ranges(validate_episode_file(path))
    clash = [r for r in ranges if seed < r[1] and r[0] < seed + num_episodes]
    if clash:
        end = max(r[1] for r in ranges)
        raise ValueError(f"{path} already holds the episodes of seeds {clash[0][0]}..{clash[0][1] - 1}; appending "
                         f"seeds {seed}..{seed + num_episodes - 1} would repeat them: pass --seed {end} (or higher).")


def _collect_with(env, path: Path, env_id: str, env_kwargs: dict[str, Any], num_episodes: int, policy: str, seed: int,
                  max_steps: int | None, append: bool, progress: bool, workers: int,
                  policy_kwargs: dict[str, Any]) -> EpisodeFileInfo:
    """:func:`collect` once the arguments are checked and ``env`` is made."""
    from lewm_agent.envs.policies import make_policy

    try:  # fail fast on an unknown policy or argument, before any worker starts
        make_policy(policy, env, seed=seed, **policy_kwargs)
    except TypeError as e:
        raise ValueError(f"policy_kwargs {policy_kwargs} do not fit policy {policy!r}: {e}") from None
    space = env.action_space
    low, high = np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)
    pixel_space = env.observation_space["pixels"] if hasattr(env.observation_space, "spaces") else env.observation_space
    image_size = int(pixel_space.shape[0])

    prev_episodes, prev_successes, policies, ranges = 0, 0, policy, []
    if append and path.exists():
        old = validate_episode_file(path)
        ranges = _seed_ranges(old)
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
        "seed_ranges": json.dumps(ranges + [[int(seed), int(seed) + num_episodes]]),
        "max_steps": -1 if max_steps is None else int(max_steps),
        "policy_kwargs": json.dumps(policy_kwargs, sort_keys=True),
    }
    bar = tqdm(total=num_episodes, desc=f"collect {env_id}", unit="ep", disable=not progress)
    with EpisodeWriter(path, attrs=attrs, append=append) as writer:
        if workers == 1:
            def on_episode(successes: list[bool]) -> None:
                bar.update(1)
                bar.set_postfix(success=f"{np.mean(successes):.2f}", frames=writer.num_frames)

            successes, returns = _write_episodes(env, writer, range(num_episodes), policy, seed, max_steps, low, high,
                                                 on_episode, policy_kwargs)
        else:
            successes, returns = _collect_in_workers(
                writer, path, env_id, env_kwargs, policy, seed, max_steps, low, high, attrs, num_episodes, workers, bar,
                policy_kwargs)
        bar.close()
        total_successes = prev_successes + int(np.sum(successes))
        writer.update_attrs({
            "policy_successes": total_successes,
            "policy_success_rate": total_successes / (prev_episodes + num_episodes),
            "policy_mean_return": float(np.mean(returns)),
        })
    info_out = validate_episode_file(path)
    if info_out.num_episodes != prev_episodes + num_episodes:  # pragma: no cover (defensive)
        raise DatasetError(f"{path}: expected {prev_episodes + num_episodes} episodes, found {info_out.num_episodes}")
    return info_out


def _collect_in_workers(writer: EpisodeWriter, path: Path, env_id: str, env_kwargs: dict[str, Any], policy: str,
                        seed: int, max_steps: int | None, low: np.ndarray, high: np.ndarray, attrs: dict[str, Any],
                        num_episodes: int, workers: int, bar: tqdm,
                        policy_kwargs: dict[str, Any]) -> tuple[list[bool], list[float]]:
    """Collect in ``workers`` spawned processes (contiguous episode ranges), then merge in order.

    Spawned, not forked: a forked child would share the parent's OpenGL/EGL state. Each worker
    imports the modules this process imported for its envs (:func:`lewm_agent.envs.env_modules`).
    Shards are ``<path>.shard-<pid>-<k>`` files, deleted afterwards whatever happens.
    """
    from lewm_agent import envs

    bounds = np.linspace(0, num_episodes, workers + 1).round().astype(int)
    shards = [path.with_name(f"{path.name}.shard-{os.getpid()}-{k}") for k in range(workers)]
    ctx = mp.get_context("spawn")
    manager = SyncManager(ctx=ctx)
    manager.start(_die_with_parent, (os.getpid(),))  # the manager and the workers die with this process
    queue = manager.Queue()
    jobs = [
        {"env_id": env_id, "env_kwargs": env_kwargs, "env_modules": envs.env_modules(), "policy": policy,
         "policy_kwargs": policy_kwargs, "seed": seed, "max_steps": max_steps,
         "low": low, "high": high, "attrs": attrs, "first": int(bounds[k]), "last": int(bounds[k + 1]),
         "path": str(shards[k]), "queue": queue}
        for k in range(workers)
    ]
    try:
        with ctx.Pool(workers, initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
            pending = pool.map_async(_collect_shard, jobs)
            done = 0
            while done < num_episodes and not (pending.ready() and queue.empty()):
                try:
                    queue.get(timeout=0.5)
                except Exception:  # queue.Empty from the manager proxy
                    continue
                done += 1
                bar.update(1)
            results = pending.get()  # re-raises a worker's exception here
        successes = [s for r in results for s in r[0]]
        returns = [x for r in results for x in r[1]]
        for shard in tqdm(shards, desc="merge shards", unit="shard", disable=bar.disable, leave=False):
            _copy_shard(shard, writer)
        return successes, returns
    finally:
        manager.shutdown()
        for shard in shards:
            shard.unlink(missing_ok=True)
