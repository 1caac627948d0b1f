"""DreamerV3 (sheeprl's PyTorch implementation), trained online on the goal-conditioned task from pixels.

Dreamer sees what LeWM sees: the observation and the goal image, both encoded by its CNN (sheeprl
concatenates the cnn keys ``pixels`` and ``goal`` on the channel axis; no mlp keys) and both
reconstructed by its decoder. It learns from the task's dense reward (-distance to the goal state);
episodes end on success or after the protocol's budget, so the training horizon is the evaluation
horizon, and starts and goals come from the task's own reset distribution.

Training runs in this process through sheeprl's own entry: its Hydra config (``exp=dreamer_v3``,
``algo=dreamer_v3_<size>``) is composed with the overrides of :func:`sheeprl_overrides`, the env is
built by :func:`make_task_env` (sheeprl's ``env.wrapper._target_``), then
``sheeprl.cli.run_algorithm`` trains (the body of ``sheeprl.cli.run`` without ``@hydra.main``,
which would parse ``sys.argv`` and write Hydra's output directory into the working directory).
Everything sheeprl writes (config.yaml, checkpoints, the memory-mapped replay buffer, deleted
once the run is finished, its printed log) goes under ``ctx.work_dir/sheeprl/<task>-<hash of the
settings>``; its TensorBoard scalars go to ``ctx.tb_dir`` through :func:`scalar_logger`. Then the
last checkpoint is loaded into sheeprl's ``PlayerDV3``, which :class:`DreamerActor` steps inside our
evaluation loop. A finished run is reused, an interrupted one resumes from its latest checkpoint
(sheeprl's ``checkpoint.resume_from``).

    budget = {**BUDGETS["smoke"], "env_steps": 512}
    trained = dreamerv3(task, ctx, budget)        # -> Trained(actor=DreamerActor, ...)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import register
from .base import (CellContext, MethodUnavailable, Task, TrainClock, Trained, budget_from, require_trusted,
                   trust_checkpoint)

__all__ = ["Budget", "BUDGETS", "MODEL_SIZES", "DreamerActor", "dreamerv3", "load_actor", "make_task_env",
           "scalar_logger", "sheeprl_overrides"]

MODEL_SIZES = ("XS", "S", "M", "L", "XL")
"""sheeprl's DreamerV3 size presets (``algo=dreamer_v3_<size>``): about 7.5M (XS) to 200M (XL) parameters."""
CNN_KEYS = ("pixels", "goal")


@dataclass
class Budget:
    """DreamerV3's budget; defaults are the ``full`` (GPU) settings. ``dreamerv3.<field>=value`` overrides one."""

    env_steps: int = 500_000
    """Policy steps of online training, over all parallel envs (= env interactions: no action repeat)."""
    learning_starts: int = 1024
    """Policy steps played with uniform random actions before training starts."""
    replay_ratio: float = 0.5
    """Gradient steps per policy step (sheeprl's ``algo.replay_ratio``; 0.5 x 16 x 64 = DreamerV3's train ratio 512)."""
    model_size: str = "S"
    """sheeprl's size preset, one of :data:`MODEL_SIZES`."""
    batch_size: int = 16
    """Sequences per gradient step."""
    sequence_length: int = 64
    """Steps per sequence."""
    num_envs: int = 4
    """Parallel training envs."""
    sync_env: bool = True
    """Step the envs in this process (True) or one subprocess each (False: for envs that render slowly)."""
    screen_size: int = 0
    """Side of the images sheeprl feeds its CNN, a power of 2 (0: the task's image size if a power of 2, else 64)."""
    buffer_size: int = 0
    """Replay capacity in policy steps (0: ``env_steps``, at most 1M); memory-mapped under the work dir."""
    checkpoint_every: int = 50_000
    """Policy steps between resumable checkpoints (the final one is always written)."""
    log_every: int = 5_000
    """Policy steps between TensorBoard points."""
    precision: str = "auto"
    """Lightning precision: ``auto`` = ``bf16-mixed`` on CUDA, ``32-true`` on CPU."""
    compile: bool = False
    """``torch.compile`` the losses (sheeprl's ``algo.compile.enabled``): faster steps after minutes of compiling."""

    def __post_init__(self) -> None:
        _check_budget(self)


BUDGETS: dict[str, dict[str, Any]] = {
    # Tests and `compare.py --preset smoke`: 6 gradient steps on tiny batches; about 6 s in all on 2 idle cores
    # (1.8 s of training, the rest importing sheeprl and loading the player).
    "smoke": {"env_steps": 64, "learning_starts": 16, "replay_ratio": 0.125, "model_size": "XS", "batch_size": 2,
              "sequence_length": 8, "num_envs": 2, "screen_size": 32, "checkpoint_every": 0, "log_every": 16},
    # `compare.py` (default preset): 122 gradient steps of ~1.45 s, 3 minutes on 2 idle cores; far from converged.
    "quick": {"env_steps": 2_048, "learning_starts": 512, "replay_ratio": 0.08, "model_size": "XS", "batch_size": 8,
              "sequence_length": 32, "num_envs": 4, "screen_size": 0, "checkpoint_every": 0, "log_every": 256},
    # GPU: sheeprl's DreamerV3 DMC-vision recipe (exp=dreamer_v3_dmc_walker_walk: size S, replay ratio 0.5, batch
    # 16 x 64, 500k policy steps = DMC's 1M env frames at action repeat 2; no action repeat here): 250k gradient
    # steps, and ~12 GB of memory-mapped replay at 64x64 while it trains.
    "full": {"env_steps": 500_000, "learning_starts": 1024, "replay_ratio": 0.5, "model_size": "S", "batch_size": 16,
             "sequence_length": 64, "num_envs": 4, "screen_size": 0, "checkpoint_every": 50_000, "log_every": 5_000},
}


# ---------------------------------------------------------------------------------------------- hydra targets
def make_task_env(env_id: str, env_kwargs: dict[str, Any], max_episode_steps: int) -> Any:
    """sheeprl's env factory (``env.wrapper._target_``): the task's env, episodes cut at ``max_episode_steps``.

    Dict obs ``pixels``/``goal`` (H, W, 3) uint8, Box actions, reward ``-distance``, ``info["is_success"]``:
    what ``Task.make_env(max_episode_steps)`` builds. sheeprl adds its own wrappers on top (resize to its
    screen size, channels first, episode statistics).
    """
    from lewm_agent import envs

    env = envs.make_env(env_id, **dict(env_kwargs), max_episode_steps=int(max_episode_steps))
    if _STEPS["count"] is not None:
        env = _counting(env, _STEPS["count"])
    return env


def scalar_logger(tb_dir: str) -> Any:
    """sheeprl's metric logger (``metric.logger._target_``): TensorBoard scalars written straight into ``tb_dir``.

    sheeprl puts its run files (checkpoints, config, replay buffer) in its logger's ``log_dir`` when the logger
    has one; this one reports none, so they stay under ``log_root`` (the work dir) while the event files go to
    ``tb_dir``. (Its target name must not contain "tensorboard": sheeprl would move such a logger into its run
    directory.)
    """
    from lightning.fabric.loggers import Logger, TensorBoardLogger

    class _Scalars(Logger):
        def __init__(self) -> None:
            super().__init__()
            self._tb = TensorBoardLogger(root_dir=tb_dir, name="", version="", default_hp_metric=False)

        @property
        def name(self) -> str:
            return "dreamerv3"

        @property
        def version(self) -> int:
            return 0

        @property
        def log_dir(self) -> None:
            return None

        def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
            self._tb.log_metrics(metrics, step)

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            self._tb.log_hyperparams(params)

        def save(self) -> None:
            self._tb.save()

        def finalize(self, status: str) -> None:
            self._tb.finalize(status)

    return _Scalars()


_STEPS: dict[str, Any] = {"count": None}
"""While :func:`_train` shows progress: a ``multiprocessing.Value`` counting the training env steps, shared
with the env workers that ``sync_env=False`` forks."""


def _counting(env: Any, count: Any) -> Any:
    """``env`` whose steps add to the shared ``count``."""
    import gymnasium as gym

    class StepCounter(gym.Wrapper):
        def step(self, action: Any) -> Any:
            with count.get_lock():
                count.value += 1
            return self.env.step(action)

    return StepCounter(env)


@contextlib.contextmanager
def _progress_bar(total: int, done: int, show: bool) -> Any:
    """A tqdm bar over training env steps, polled from :data:`_STEPS` by a thread while the block runs."""
    import multiprocessing
    import threading

    from tqdm.auto import tqdm

    if not show:
        yield
        return
    bar = tqdm(total=total, initial=done, desc="dreamerv3", unit="step", dynamic_ncols=True)
    count, stop = multiprocessing.Value("q", done), threading.Event()
    _STEPS["count"] = count

    def poll() -> None:
        while not stop.wait(0.5):
            bar.update(count.value - bar.n)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        _STEPS["count"] = None
        bar.update(count.value - bar.n)
        bar.close()


# ---------------------------------------------------------------------------------------------- config
def _check_budget(b: Budget) -> None:
    """Raise a ValueError naming the bad field and the fix."""
    for name in ("env_steps", "learning_starts", "batch_size", "sequence_length", "num_envs", "screen_size",
                 "buffer_size", "checkpoint_every", "log_every"):
        value = getattr(b, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"dreamerv3.{name} must be an int, got {value!r} ({type(value).__name__}).")
    if b.model_size not in MODEL_SIZES:
        raise ValueError(f"dreamerv3.model_size must be one of {list(MODEL_SIZES)} (sheeprl's presets), "
                         f"got {b.model_size!r}.")
    if isinstance(b.replay_ratio, bool) or not isinstance(b.replay_ratio, (int, float)) or not b.replay_ratio > 0:
        raise ValueError(f"dreamerv3.replay_ratio must be a number > 0 (gradient steps per policy step), "
                         f"got {b.replay_ratio!r}.")
    for name in ("sync_env", "compile"):
        if not isinstance(getattr(b, name), bool):
            raise ValueError(f"dreamerv3.{name} must be true or false, got {getattr(b, name)!r}.")
    for name in ("batch_size", "num_envs", "log_every"):
        if getattr(b, name) < 1:
            raise ValueError(f"dreamerv3.{name} must be >= 1, got {getattr(b, name)}.")
    if b.sequence_length < 2:
        raise ValueError(f"dreamerv3.sequence_length must be >= 2 steps, got {b.sequence_length}.")
    for name in ("learning_starts", "screen_size", "buffer_size", "checkpoint_every"):
        if getattr(b, name) < 0:
            raise ValueError(f"dreamerv3.{name} must be >= 0, got {getattr(b, name)}.")
    if b.screen_size and (b.screen_size < 8 or b.screen_size & (b.screen_size - 1)):
        raise ValueError(f"dreamerv3.screen_size must be a power of 2 >= 8 (sheeprl's CNN halves it down to 4), "
                         f"or 0 for the task's image size; got {b.screen_size}.")
    if b.precision not in ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true"):
        raise ValueError(f"dreamerv3.precision must be auto, 32-true, bf16-mixed, 16-mixed or bf16-true, "
                         f"got {b.precision!r}.")
    # sheeprl trains from the iteration after the random ones, once every env has played a whole sequence
    iters, fill = b.env_steps // b.num_envs, max(b.learning_starts // b.num_envs, b.sequence_length, 1)
    gradient_steps = math.floor((iters - fill + 1) * b.num_envs * b.replay_ratio)
    if iters <= fill or gradient_steps < 1:
        raise ValueError(
            f"dreamerv3.env_steps={b.env_steps} leaves no gradient step: with num_envs={b.num_envs}, training starts "
            f"after {fill * b.num_envs} policy steps (max(learning_starts={b.learning_starts}, "
            f"sequence_length={b.sequence_length} x num_envs)) and does replay_ratio={b.replay_ratio} gradient steps "
            f"per policy step. Raise env_steps or replay_ratio, or lower learning_starts / sequence_length.")
    if b.buffer_size and b.buffer_size // b.num_envs < b.sequence_length:
        raise ValueError(f"dreamerv3.buffer_size={b.buffer_size} holds less than one sequence per env "
                         f"(sequence_length={b.sequence_length} x num_envs={b.num_envs}); raise it or use 0 (auto).")


def _where(device: str, precision: str) -> dict[str, Any]:
    """``ctx.device`` and the budget's precision -> sheeprl's ``fabric`` settings (accelerator, devices, precision)."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    m = re.fullmatch(r"(cpu|cuda)(?::(\d+))?", device)
    if m is None:
        raise ValueError(f"dreamerv3 runs on 'auto', 'cpu', 'cuda' or 'cuda:<index>', got device={device!r}.")
    accelerator = m.group(1)
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA device; use device='cpu' or 'auto'.")
    if precision == "auto":  # bf16 autocast is ~14x slower than fp32 on CPU (measured, XS)
        precision = "bf16-mixed" if accelerator == "cuda" else "32-true"
    return {"accelerator": accelerator, "devices": [int(m.group(2))] if m.group(2) else 1, "precision": precision}


def _screen_size(b: Budget, task: Task) -> int:
    if b.screen_size:
        return b.screen_size
    size = int(task.env_kwargs.get("image_size", 64))
    return size if size >= 8 and size & (size - 1) == 0 else 64


def sheeprl_overrides(task: Task, b: Budget) -> list[str]:
    """The Hydra overrides of sheeprl's ``config`` that decide what is trained, for ``task`` and budget ``b``.

    The env and logger targets and the paths are set by :func:`_compose`, the device by :func:`_where`.
    """
    return [
        "exp=dreamer_v3", f"algo=dreamer_v3_{b.model_size}", "env=default", f"seed={task.seed}",
        # the env: ours, unchanged but for sheeprl's resize to a power-of-2 screen (no action repeat, no frame
        # stack, colour; the TimeLimit at the protocol's budget comes from make_task_env)
        f"env.id={task.name}", f"env.num_envs={b.num_envs}", f"env.sync_env={b.sync_env}",
        f"env.screen_size={_screen_size(b, task)}", "env.action_repeat=1", "env.grayscale=False",
        "env.capture_video=False", "env.max_episode_steps=null", "env.clip_rewards=False",
        # both images go to the CNN encoder and are reconstructed by its decoder; no vector inputs
        f"algo.cnn_keys.encoder=[{','.join(CNN_KEYS)}]", f"algo.cnn_keys.decoder=[{','.join(CNN_KEYS)}]",
        "algo.mlp_keys.encoder=[]", "algo.mlp_keys.decoder=[]",
        f"algo.total_steps={b.env_steps}", f"algo.learning_starts={b.learning_starts}",
        f"algo.replay_ratio={b.replay_ratio}", f"algo.per_rank_batch_size={b.batch_size}",
        f"algo.per_rank_sequence_length={b.sequence_length}", f"algo.compile.enabled={b.compile}",
        # our evaluation is the test: sheeprl's own one-episode test after training is skipped
        "algo.run_test=False",
        f"buffer.size={b.buffer_size or min(b.env_steps, 1_000_000)}", "buffer.memmap=True", "buffer.checkpoint=True",
        f"checkpoint.every={b.checkpoint_every or b.env_steps}", "checkpoint.save_last=True", "checkpoint.keep_last=2",
        f"metric.log_every={b.log_every}", "metric.log_level=1", "model_manager.disabled=True",
    ]


def _compose(overrides: list[str], task: Task, work_root: Path, run_name: str, tb_dir: Path) -> Any:
    """sheeprl's config composed with ``overrides``, with our env factory, TensorBoard logger and paths."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_module(config_module="sheeprl.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    with open_dict(cfg):
        cfg.env.wrapper = {"_target_": f"{__name__}.make_task_env", "env_id": task.env_id,
                           "env_kwargs": dict(task.env_kwargs), "max_episode_steps": int(task.protocol.budget)}
        cfg.metric.logger = {"_target_": f"{__name__}.scalar_logger", "tb_dir": str(tb_dir)}
        cfg.log_root, cfg.root_dir, cfg.run_name = str(work_root), "", run_name
    return cfg


# ---------------------------------------------------------------------------------------------- checkpoints
def _checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(policy step, path) of every checkpoint of every version of the run, oldest first."""
    found = []
    for path in run_dir.glob("version_*/checkpoint/ckpt_*_0.ckpt"):
        m = re.fullmatch(r"ckpt_(\d+)_0\.ckpt", path.name)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


def _train(cfg: Any, device_overrides: list[str], resume_from: Path | None, log_path: Path, progress: bool,
           total: int, done: int) -> None:
    """``sheeprl.cli.run`` without ``@hydra.main``: resume, resolve, check, run.

    Its prints and warnings go to ``log_path``; the process-wide settings it changes (distribution argument
    validation, float32 matmul precision, ``OMP_NUM_THREADS``) are restored afterwards.
    """
    import torch
    import yaml
    from omegaconf import OmegaConf, open_dict
    from sheeprl.cli import check_configs, resume_from_checkpoint, run_algorithm
    from sheeprl.utils.utils import dotdict

    if resume_from is not None:
        with open_dict(cfg):
            cfg.checkpoint.resume_from = str(resume_from)
        cfg = resume_from_checkpoint(cfg)  # the run's saved config wins, but for where it runs now:
        for item in device_overrides:
            key, value = item.split("=", 1)
            OmegaConf.update(cfg, key, yaml.safe_load(value))
    cfg = dotdict(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    check_configs(cfg)
    saved = (torch.distributions.Distribution._validate_args, torch.get_float32_matmul_precision(),
             os.environ.get("OMP_NUM_THREADS"))
    try:
        with (_progress_bar(total, done, progress), open(log_path, "a") as log, contextlib.redirect_stdout(log),
              warnings.catch_warnings(record=True) as caught):
            warnings.simplefilter("default")
            try:
                run_algorithm(cfg)
            finally:
                for w in caught:
                    log.write(f"{w.category.__name__}: {w.message}\n")
    finally:
        torch.distributions.Distribution.set_default_validate_args(saved[0])
        torch.set_float32_matmul_precision(saved[1])
        if saved[2] is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved[2]


# ---------------------------------------------------------------------------------------------- the actor
class DreamerActor:
    """sheeprl's DreamerV3 player of a checkpoint, batched for :func:`lewm_agent.evaluation.evaluate`.

    ``reset(num_envs)`` starts N episodes: initial recurrent and stochastic states, zero previous action.
    ``act({"pixels": uint8 (N, H, W, 3), "goal": uint8 (N, H, W, 3)}) -> float32 (N, A)``: each image
    preprocessed as sheeprl does in training (resized to its screen size S with ``cv2.INTER_AREA`` when
    (H, W) != (S, S), channels first, ``x / 255 - 0.5``), then one step of the player: the recurrent model
    takes the previous latent and action, the posterior the new observation, and the actor's greedy action
    (sheeprl's ``greedy=True``) comes back rescaled from [-1, 1] to the env's action bounds. The player
    samples its posterior (and its greedy continuous action is the likeliest of 100 samples), so every call
    draws from a generator reseeded from ``seed`` and the step index: the same observations after ``reset``
    give the same actions, and the global torch RNG is left untouched.
    """

    def __init__(self, player: Any, fabric: Any, screen_size: int, action_low: np.ndarray, action_high: np.ndarray,
                 normalize_actions: bool, seed: int = 0):
        self.player, self.fabric, self.screen_size, self.seed = player, fabric, int(screen_size), int(seed)
        self.low, self.high = np.asarray(action_low, np.float32), np.asarray(action_high, np.float32)
        self.normalize_actions = bool(normalize_actions)
        self.num_envs = 0
        self._t = 0

    def reset(self, num_envs: int | None = None) -> None:
        import torch

        self.num_envs, self._t = int(num_envs or 1), 0
        self.player.num_envs = self.num_envs
        with torch.inference_mode():
            self.player.init_states()

    def _preprocess(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """(N, H, W, 3) uint8 images -> (N, 3, S, S) uint8, as sheeprl's ``make_env`` observation transform."""
        import cv2

        out = {}
        for key in CNN_KEYS:
            if key not in obs:
                raise KeyError(f"DreamerActor.act needs obs[{key!r}] (uint8 (N, H, W, 3)); got keys {sorted(obs)}.")
            x = np.asarray(obs[key])
            if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
                raise ValueError(f"obs[{key!r}] must be uint8 (N, H, W, 3), got {x.dtype} {x.shape}.")
            if x.shape[1:3] != (self.screen_size, self.screen_size):
                size = (self.screen_size, self.screen_size)
                x = np.stack([cv2.resize(img, size, interpolation=cv2.INTER_AREA) for img in x])
            out[key] = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return out

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        import torch
        from sheeprl.algos.dreamer_v3.utils import prepare_obs

        images = self._preprocess(obs)
        n = images[CNN_KEYS[0]].shape[0]
        if n != self.num_envs:
            self.reset(n)
        device = self.fabric.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.inference_mode():
            torch.manual_seed(self.seed * 1_000_003 + self._t)
            torch_obs = prepare_obs(self.fabric, images, cnn_keys=list(CNN_KEYS), num_envs=n)  # (1, N, 3, S, S)
            actions = self.player.get_actions(torch_obs, greedy=True)
            a = torch.cat(actions, -1).float().cpu().numpy().reshape(n, -1)  # (N, A) in [-1, 1]
        self._t += 1
        if self.normalize_actions:  # sheeprl's NormalizeAction: [-1, 1] -> the env's bounds
            a = np.clip(a, -1.0, 1.0)
            finite = np.isfinite(self.low) & np.isfinite(self.high)
            a = np.where(finite, (a + 1.0) / 2.0 * (self.high - self.low) + self.low, a)
        return np.clip(a, self.low, self.high).astype(np.float32)


def load_actor(ckpt_path: Path, device: str = "auto", precision: str = "auto",
               seed: int = 0) -> tuple[DreamerActor, dict[str, Any], dict[str, Any], int]:
    """Build sheeprl's DreamerV3 player from a checkpoint (and the config.yaml of its run directory).

    ``device``/``precision`` are where it runs now (``auto``: CUDA with bf16-mixed when available, else CPU
    with fp32), whatever the training used. Returns the actor, the run's resolved config (a dotdict), the
    checkpoint's state dict and the parameter count of what acts (world model + actor).
    """
    import gymnasium as gym
    from lightning import Fabric
    from omegaconf import OmegaConf
    from sheeprl.algos.dreamer_v3.agent import build_agent
    from sheeprl.utils import fs
    from sheeprl.utils.env import make_env
    from sheeprl.utils.utils import dotdict

    cfg = dotdict(OmegaConf.to_container(fs.load_yaml(fs.run_config(str(ckpt_path))), resolve=True))
    fabric = Fabric(**_where(device, precision))
    fabric.launch()
    state = fs.load_checkpoint(fabric, str(ckpt_path), weights_only=False)
    env = make_env(cfg, cfg.seed, 0, None, "eval")()  # the spaces sheeprl trained with
    obs_space, space, raw = env.observation_space, env.action_space, env.unwrapped.action_space
    env.close()
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"dreamerv3 supports Box action spaces only, got {space}.")
    world_model, actor, _, _, player = build_agent(fabric, tuple(space.shape), True, cfg, obs_space,
                                                   state["world_model"], state["actor"])
    params = sum(p.numel() for p in world_model.parameters()) + sum(p.numel() for p in actor.parameters())
    dreamer_actor = DreamerActor(player, fabric, cfg.env.screen_size, raw.low, raw.high,
                                 cfg.algo.get("normalize_actions", False), seed=seed)
    return dreamer_actor, cfg, state, int(params)


# ---------------------------------------------------------------------------------------------- the method
@register("dreamerv3", budget=Budget)
def dreamerv3(task: Task, ctx: CellContext, budget: dict[str, Any]) -> Trained:
    """DreamerV3 (sheeprl), online on ``task`` from pixels + goal image with the dense reward; see :class:`Budget`."""
    try:
        import sheeprl  # noqa: F401 - registers its algorithms
    except ImportError:
        raise MethodUnavailable("sheeprl is not installed; pip install -c constraints.txt -e '.[dreamer]'") from None

    b = budget_from(Budget, budget)
    _check_budget(b)
    import torch

    where = _where(ctx.device, b.precision)
    device_overrides = [f"fabric.{k}={v}".replace(" ", "") for k, v in where.items()]
    device_overrides.append(f"num_threads={torch.get_num_threads()}")
    overrides = sheeprl_overrides(task, b)
    # one run directory per (task, settings), whatever the device: a changed budget never reuses another's
    # checkpoints, and a run trained on a GPU is evaluated on the CPU as it is
    key = json.dumps({"overrides": overrides, "env_id": task.env_id, "env_kwargs": task.env_kwargs,
                      "horizon": task.protocol.budget, "precision": b.precision}, sort_keys=True, default=str)
    run_name = f"{task.name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    work_root = Path(ctx.work_dir) / "sheeprl"
    run_dir = work_root / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    clock = TrainClock(run_dir)
    final_step = (b.env_steps // b.num_envs) * b.num_envs

    ckpts = _checkpoints(run_dir)
    reused = bool(ckpts) and ckpts[-1][0] >= final_step
    if not reused:
        if not ckpts:  # a fresh start: drop what an earlier attempt left before its first checkpoint
            clock.reset()
            for old in Path(ctx.tb_dir).glob("events.out.tfevents.*"):
                old.unlink()  # its curves would overlap the new ones
            for old in run_dir.glob("version_*"):
                shutil.rmtree(old)  # its replay buffer
        Path(ctx.tb_dir).mkdir(parents=True, exist_ok=True)
        cfg = _compose(overrides + device_overrides, task, work_root, run_name, Path(ctx.tb_dir))
        if ckpts:  # sheeprl resumes with a pickle load: only from a checkpoint this machine's run wrote
            require_trusted(ckpts[-1][1])
        before = {path for _, path in ckpts}
        tic = time.perf_counter()
        try:
            _train(cfg, device_overrides, ckpts[-1][1] if ckpts else None, run_dir / "sheeprl.log", ctx.progress,
                   final_step, ckpts[-1][0] if ckpts else 0)
        finally:  # an interrupted attempt's time counts too: the resumed run repeats what followed its checkpoint
            clock.add(time.perf_counter() - tic)
            for _, path in _checkpoints(run_dir):  # what this attempt wrote is this machine's
                if path not in before:
                    trust_checkpoint(path)
        ckpts = _checkpoints(run_dir)
        if not ckpts or ckpts[-1][0] < final_step:
            raise RuntimeError(f"sheeprl finished without its final checkpoint (step {final_step}) in {run_dir}; "
                               f"see {run_dir / 'sheeprl.log'}.")
        # the run is finished: its replay buffer (env_steps x both images, GBs at full budget) is not needed to act
        for version in run_dir.glob("version_*"):
            for sub in ("memmap_buffer", "checkpoint_buffers"):
                shutil.rmtree(version / sub, ignore_errors=True)
    seconds = clock.read().get("seconds", float("nan"))
    step, ckpt = ckpts[-1]
    require_trusted(ckpt)  # loaded with weights_only=False (sheeprl's format): only this machine's
    actor, cfg, state, params = load_actor(ckpt, ctx.device, b.precision, seed=task.seed)
    return Trained(
        actor=actor, data_used=int(step), data_kind="env interactions", train_seconds=float(seconds), params=params,
        extra={"checkpoint": str(ckpt), "reused_checkpoint": reused, "budget": asdict(b),
               "gradient_steps": int(state.get("per_rank_gradient_steps", 0)),
               "sheeprl_overrides": overrides + device_overrides,
               "sheeprl_version": sys.modules["sheeprl"].__version__, "screen_size": int(cfg.env.screen_size),
               "cnn_keys": list(CNN_KEYS), "train_horizon": int(task.protocol.budget),
               "trained_on": f"{cfg.fabric.accelerator} {cfg.fabric.precision}",
               "acting_on": f"{where['accelerator']} {where['precision']}"},
    )
