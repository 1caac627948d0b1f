"""The training loop: episode file -> LeWM weights, TensorBoard scalars and checkpoints.

Runs in one process (CPU or one GPU) or under ``torchrun`` (DistributedDataParallel; each rank
draws ``batch_size / world_size`` clips and SIGReg sees the global batch).

Output directory layout::

    out_dir/
      train_config.json      the model / train / plan configs and the data file used
      checkpoint/            resumable: an agent checkpoint + train_state.pt (optimiser, scheduler, step)
      agent/                 the final agent (config.json + model.safetensors), LeWMAgent.load(out_dir/"agent")
      tb/                    TensorBoard scalars under train/ and val/

Randomness is a pure function of (seed, step, rank): the clips of step s and the dropout /
SIGReg directions drawn at step s are the same whether or not the run was interrupted, so
``resume=True`` continues exactly where the last checkpoint left off.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import math
import os
import pickle
import queue
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .agent import LeWMAgent, resolve_device
from .checkpoint import CheckpointError, load_state_checked, read_checkpoint, recover_checkpoint, write_checkpoint
from .config import ModelConfig, PlanConfig, TrainConfig
from .files import OutputPathError, atomic_write_json, check_output_dir, file_fingerprint
from .data import (ActionNormalizer, ClipDataset, action_bounds, check_action_bounds, load_episodes, split_episodes,
                   stream_pixels, validate_episode_file, warn_data_bounds)
from .metrics import effective_rank, embedding_std, participation_ratio
from .model import LeWM
from .precision import autocast

__all__ = ["train", "train_step", "step_batch", "BatchStream", "autocast_context", "cpu_bf16_enabled",
           "make_optimizer", "reuse_freed_memory", "TrainResult"]

TRAIN_STATE = "train_state.pt"


@dataclasses.dataclass
class TrainResult:
    agent_dir: Path
    """Directory of the final agent checkpoint."""
    steps: int
    """Optimiser steps completed."""
    seconds: float
    """Wall-clock of this call (s)."""
    final: dict[str, float]
    """Last logged scalars (train/* and val/*)."""


def lr_lambda(cfg: TrainConfig):
    """Linear warm-up to 1, then cosine to ``min_lr_ratio`` at ``cfg.steps`` (multiplier of ``cfg.lr``)."""

    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def step_batch(clips: ClipDataset, seed: int, step: int, rank: int,
               batch_size: int) -> tuple[int, dict[str, torch.Tensor]]:
    """(torch seed, CPU batch) of optimiser step ``step`` on ``rank``: a pure function of (seed, step, rank).

    The torch seed seeds the step's dropout and SIGReg directions; the batch holds ``pixels``
    and ``action`` of ``batch_size`` clips drawn uniformly with replacement.
    """
    rng = np.random.default_rng([seed, step, rank])
    torch_seed = int(rng.integers(2**62))
    batch = clips.get_batch(rng.integers(0, len(clips), size=batch_size))
    return torch_seed, {"pixels": batch["pixels"], "action": batch["action"]}


class _StepBatches(torch.utils.data.Dataset):
    """Item i = :func:`step_batch` of step ``start + i``: what a DataLoader worker builds."""

    def __init__(self, clips: ClipDataset, seed: int, rank: int, batch_size: int, start: int, end: int):
        self.clips, self.seed, self.rank, self.batch_size = clips, seed, rank, batch_size
        self.start, self.end = start, end

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, i: int) -> tuple[int, dict[str, torch.Tensor]]:
        return step_batch(self.clips, self.seed, self.start + i, self.rank, self.batch_size)


class BatchStream:
    """Iterates ``(torch_seed, batch)`` for steps ``start .. end-1`` with the batch on ``device``.

    Batches are built ahead of the step that uses them: with ``workers`` > 0 by a torch DataLoader's
    worker processes (each ``depth`` batches ahead; pinned by the DataLoader on CUDA), else, with
    ``prefetch``, by a daemon thread (pinned there on CUDA). Each batch is a pure function of
    (seed, step, rank) (:func:`step_batch`), so it is the same for any ``workers``, with or
    without prefetching, and whether the clips' pixels are in memory or read from disk.
    Host-to-device copies are ``non_blocking`` (asynchronous from pinned memory on CUDA). Use as a
    context manager, or call :meth:`close`, to stop the thread or the workers early.
    """

    def __init__(self, clips: ClipDataset, seed: int, rank: int, batch_size: int, start: int, end: int,
                 device: torch.device, prefetch: bool = True, depth: int = 2, workers: int = 0):
        if workers < 0 or depth < 1:
            raise ValueError(f"BatchStream: workers={workers} must be >= 0 and depth={depth} >= 1.")
        self.clips, self.seed, self.rank, self.batch_size = clips, seed, rank, batch_size
        self.start, self.end, self.device = start, end, torch.device(device)
        self.pin = self.device.type == "cuda"
        self._stop = threading.Event()
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._loader: torch.utils.data.DataLoader | None = None
        if workers > 0 and end > start:
            self._loader = torch.utils.data.DataLoader(
                _StepBatches(clips, seed, rank, batch_size, start, end), batch_size=None, shuffle=False,
                num_workers=workers, prefetch_factor=depth if prefetch else 1, pin_memory=self.pin)
        elif prefetch and end > start:
            self._queue = queue.Queue(maxsize=max(1, depth))
            self._thread = threading.Thread(target=self._produce, name="lewm-batch-prefetch", daemon=True)
            self._thread.start()

    def _make(self, step: int) -> tuple[int, dict[str, torch.Tensor]]:
        torch_seed, batch = step_batch(self.clips, self.seed, step, self.rank, self.batch_size)
        if self.pin:
            batch = {k: v.pin_memory() for k, v in batch.items()}
        return torch_seed, batch

    def _produce(self) -> None:
        for step in range(self.start, self.end):
            try:
                item = ("ok", self._make(step))
            except BaseException as e:  # handed to the consumer, raised there
                item = ("error", e)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set() or item[0] == "error":
                return

    def _batches(self):
        if self._loader is not None:
            yield from self._loader
            return
        for step in range(self.start, self.end):
            if self._queue is None:
                yield self._make(step)
            else:
                kind, value = self._queue.get()
                if kind == "error":
                    raise value
                yield value

    def __iter__(self):
        batches = self._batches()
        try:
            for torch_seed, batch in batches:
                yield int(torch_seed), {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        finally:
            batches.close()  # a DataLoader iterator dropped here shuts its workers down
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._loader = None

    def __enter__(self) -> "BatchStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextmanager
def reuse_freed_memory(enabled: bool = True):
    """glibc only: while inside, the heap keeps freed memory for reuse instead of returning it.

    CPU training allocates and frees the same large activations at every step (the paper
    preset's are about 100 MB each). glibc serves blocks over its mmap threshold (at most 32 MB)
    with fresh ``mmap`` and returns them with ``munmap``, so every step page-faults and zeroes
    gigabytes again: measured on a 2-core EPYC, 30 of the paper preset's 68 CPU-seconds went to
    the kernel. With mmap off (``M_MMAP_MAX = 0``) and no trimming, blocks are reused from the
    heap: paper preset 14.5 -> 10.3 s per step. On exit the defaults are restored and the
    heap is trimmed. Elsewhere (no glibc) it does nothing.
    """
    libc = None
    if enabled and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None)
            libc.mallopt, libc.malloc_trim  # noqa: B018 (glibc has both; musl lacks mallopt)
        except (OSError, AttributeError):
            libc = None
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    if libc is not None and not (libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)):
        libc = None
    try:
        yield
    finally:
        if libc is not None:
            libc.mallopt(M_MMAP_MAX, 65536)  # glibc's defaults
            libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024)
            libc.malloc_trim(0)


def cpu_bf16_enabled(train_cfg: TrainConfig, model_cfg: ModelConfig) -> bool:
    """Whether to train under bf16 autocast on CPU: ``TrainConfig.cpu_bf16`` resolved (see there).

    ``auto``: on iff oneDNN has bf16 kernels for this CPU (x86 AVX-512 or Arm bf16) and the encoder
    sees at least 64 patches per image (paper-size); the small presets are faster in fp32 everywhere.
    """
    choice = train_cfg.cpu_bf16
    if isinstance(choice, str):
        choice = choice.strip().lower()
        if choice not in ("auto", "on", "off", "true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"TrainConfig.cpu_bf16={train_cfg.cpu_bf16!r}: choose 'auto', 'on' or 'off'.")
        if choice != "auto":
            return choice in ("on", "true", "1", "yes")
    else:
        return bool(choice)
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return native and (model_cfg.image_size // model_cfg.patch_size) ** 2 >= 64


def autocast_context(device: torch.device, bf16: bool):
    """A factory of bf16 autocast contexts on ``device`` (or of null contexts when ``bf16`` is off)."""
    device, precision = torch.device(device), "bf16" if bf16 else "fp32"
    return lambda: autocast(precision, device)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
               batch: dict[str, torch.Tensor], autocast: Any,
               grad_clip: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One optimiser step: forward under ``autocast()``, backward, global-norm clip, AdamW, schedule.

    ``model`` is the LeWM (or its DistributedDataParallel wrapper); ``batch`` holds ``pixels``
    uint8 (B, T, H, W, 3) and ``action`` (B, T-1, k*A) already on the model's device.
    Returns the model's output dict and the gradient norm before clipping.
    """
    with autocast():
        out = model(batch["pixels"], batch["action"])
    optimizer.zero_grad(set_to_none=True)
    out["loss"].backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    return out, grad_norm


def make_optimizer(model: torch.nn.Module,
                   cfg: TrainConfig) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (``cfg.lr``, ``cfg.weight_decay``) and the warm-up + cosine schedule.

    The fused AdamW kernel (one pass over all parameters) where the parameters' device has it
    (CPU and CUDA): the same update as the per-tensor loop, measured 8.5 -> 1.5 ms per step for
    the ``cpu`` preset and 53 -> 12 ms for ``paper`` on 2 CPU cores.
    """
    params = list(model.parameters())
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))


def _launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (it sets ``LOCAL_RANK`` for every worker)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def _setup_distributed(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world_size, device); initialises the process group when launched by torchrun.

    Under torchrun the process group and DistributedDataParallel are used even for one process
    (``--nproc_per_node 1``), so the DDP path (NCCL on CUDA, gloo on CPU) can be checked on one GPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not _launched_by_torchrun():
        return 0, 1, resolve_device(device_name)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        return dist.get_rank(), world, torch.device("cuda", local_rank)
    return dist.get_rank(), world, torch.device("cpu")


def _given_split(split: tuple[Any, Any], num_episodes: int, data_path: Any) -> tuple[np.ndarray, np.ndarray]:
    """``split`` as two int64 arrays, or a ValueError naming what is wrong with it."""
    try:
        train_ids, val_ids = (np.asarray(ids).reshape(-1) for ids in split)
    except (TypeError, ValueError):
        train_ids = val_ids = None
    if train_ids is None or any(a.size and not np.issubdtype(a.dtype, np.integer) for a in (train_ids, val_ids)):
        raise ValueError(f"split must be (train episode ids, held-out episode ids), two lists of ints; "
                         f"got {str(split)[:80]}")
    train_ids, val_ids = train_ids.astype(np.int64), val_ids.astype(np.int64)
    problem = None
    if len(train_ids) == 0 or len(val_ids) == 0:
        problem = f"{len(train_ids)} training and {len(val_ids)} held-out episodes (each needs at least one)"
    elif np.intersect1d(train_ids, val_ids).size:
        problem = f"episodes {np.intersect1d(train_ids, val_ids)[:5].tolist()} are in both parts"
    elif min(train_ids.min(), val_ids.min()) < 0 or max(train_ids.max(), val_ids.max()) >= num_episodes:
        problem = f"ids outside the file's episodes 0..{num_episodes - 1}"
    elif len(np.unique(train_ids)) < len(train_ids) or len(np.unique(val_ids)) < len(val_ids):
        problem = "an episode id appears twice"
    if problem:
        raise ValueError(f"split does not fit {data_path}: {problem}; pass the split prepared for this file "
                         "(lewm_agent.experiment.prepare_task), or none to split it here.")
    return train_ids, val_ids


def _load_train_state(path: Path, device: torch.device) -> dict[str, Any]:
    """The optimiser/scheduler/step state a checkpoint saved, or a CheckpointError naming the file and the fix
    (missing, truncated, or not the plain tensors and numbers that ``weights_only`` loading accepts)."""
    fix = "delete the checkpoint directory and train again without --resume (or with --overwrite)."
    if not path.is_file():
        raise CheckpointError(f"--resume: {path} is missing, so the optimiser state is lost; {fix}")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refused an object that is not plain data
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"--resume: {path} holds more than tensors and numbers ({first[:120]}); it was not "
                              f"written by lewm train and is not loaded; {fix}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"--resume: {path} cannot be read ({type(e).__name__}); it is truncated or corrupt; "
                              f"{fix}") from None
    if not isinstance(state, dict) or not {"optimizer", "scheduler", "step"} <= set(state):
        raise CheckpointError(f"--resume: {path} is not a training state (no optimizer/scheduler/step); {fix}")
    return state


def train(  # noqa: C901 - one run's stages in order: data, model, resume, loop, save
    data_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    plan_cfg: PlanConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
    tb_dir: str | os.PathLike | None = None,
    time_limit_s: float | None = None,
    split: tuple[Any, Any] | None = None,
    action_low: Any = None,
    action_high: Any = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train LeWM on an HDF5 episode file and write an agent to ``out_dir/agent``.

    Args:
        data_path: episode file written by ``lewm collect`` (or any file of the same layout).
        out_dir: run directory (created).
        model_cfg, train_cfg, plan_cfg: configs; ``model_cfg.action_dim`` is taken from the data.
        resume: continue from ``out_dir/checkpoint`` (same step, optimiser, scheduler).
        progress: show a tqdm bar.
        stop_at: stop (after checkpointing) at this step, as if killed; for tests and time-boxed runs.
        tb_dir: TensorBoard log directory (default ``out_dir/tb``).
        time_limit_s: stop (after checkpointing) once this call has run this many seconds; the run
            is then unfinished (no ``agent`` written) and continues with ``resume=True``.
        split: ``(train_episode_ids, held_out_episode_ids)`` of the file, used as given (e.g. a prepared
            task's, :attr:`lewm_agent.experiment.Task.split`); None: ``split_episodes`` with
            ``train_cfg.val_fraction`` and ``split_seed``. The held-out ids are recorded with the agent.
        action_low, action_high: (A,) bounds the agent clips its actions to, over the file's
            ``action_low`` / ``action_high``; when neither is there they come from the data, with an
            :class:`~lewm_agent.data.EpisodeFileWarning` (:func:`lewm_agent.data.action_bounds`).
        overwrite: replace the run in ``out_dir`` (its ``agent``, ``checkpoint`` and default ``tb``), removed
            once the data is loaded and just before the first write. Without ``resume`` or ``overwrite``, an
            ``out_dir`` that holds a run is refused (:class:`~lewm_agent.files.OutputPathError`) before any work.

    Besides its scalars, the TensorBoard log gets the model / train / plan configs as hparams.
    """
    if time_limit_s is not None and time_limit_s <= 0:
        raise ValueError(f"time_limit_s={time_limit_s} must be > 0 seconds (None: no limit).")
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: continue the run, or replace it.")
    start_time = time.perf_counter()
    out_dir = check_output_dir(out_dir)
    if int(os.environ.get("RANK", "0")) == 0:  # one process puts back a swap a killed run left half done
        recover_checkpoint(out_dir / "checkpoint")
    held = [name for name in ("agent", "checkpoint") if (out_dir / name).exists()]
    if held and not (resume or overwrite):
        raise OutputPathError(f"{out_dir} already holds a run ({' and '.join(held)}/); continue it with --resume, "
                              "replace it with --overwrite, or choose another --out.")
    plan_cfg = (plan_cfg or PlanConfig()).validate()
    # recorded with the agent, so that evaluating its held-out ids on another file at this path is refused
    data_fingerprint = file_fingerprint(data_path) if Path(data_path).is_file() else None
    rank, world, device = _setup_distributed(train_cfg.device)
    is_main = rank == 0

    # ---- data: episodes (pixels in memory or streamed from disk), split by episode, normaliser from
    # the training episodes
    info = validate_episode_file(data_path)
    check_action_bounds(action_low, action_high, info.action_dim, data_path)  # before the long load
    streamed = stream_pixels(train_cfg.stream, info, copies=int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    episodes = load_episodes(data_path, validate=False, stream=streamed, cache_bytes=train_cfg.cache_mb << 20)
    H, W = episodes.pixels.shape[1:3]
    A = episodes.action.shape[1]
    if model_cfg.action_dim != A:
        model_cfg = dataclasses.replace(model_cfg, action_dim=A)
    if split is None:
        train_ids, val_ids = split_episodes(episodes.num_episodes, train_cfg.val_fraction, train_cfg.split_seed)
    else:
        train_ids, val_ids = _given_split(split, episodes.num_episodes, data_path)
    normalizer = ActionNormalizer.from_actions(episodes.action[episodes.transition_rows(train_ids)])
    train_clips = ClipDataset(episodes, train_ids, model_cfg.num_frames, model_cfg.frameskip, normalizer)
    val_clips = ClipDataset(episodes, val_ids, model_cfg.num_frames, model_cfg.frameskip, normalizer)
    attrs = episodes.attrs
    action_low, action_high, bounds_from = action_bounds(episodes, train_ids, action_low, action_high)
    if bounds_from == "data" and is_main:
        warn_data_bounds(data_path, action_low, action_high)
    metadata: dict[str, Any] = {
        "env_id": str(attrs.get("env_id", "")),
        "env_kwargs": json.loads(attrs["env_kwargs"]) if isinstance(attrs.get("env_kwargs"), str) else {},
        "data_path": str(Path(data_path).resolve()),
        "action_bounds": bounds_from,
        "val_episodes": [int(i) for i in val_ids],
        "train_episodes": len(train_ids),
        "train_config": dataclasses.asdict(train_cfg),
    }

    # ---- model, optimiser, schedule
    torch.manual_seed(train_cfg.seed)
    model = LeWM(model_cfg).to(device)
    optimizer, scheduler = make_optimizer(model, train_cfg)
    step = 0
    ckpt_dir = out_dir / "checkpoint"
    if resume:
        if not ckpt_dir.exists():
            raise CheckpointError(f"--resume: no checkpoint at {ckpt_dir}; start without --resume"
                                  + (" (with --overwrite: it holds an agent)." if held else "."))
        config, state_dict = read_checkpoint(ckpt_dir)
        if config["model"] != dataclasses.asdict(model_cfg):
            raise CheckpointError(f"--resume: {ckpt_dir} was trained with another model config; use a new out_dir.")
        trained_val = config.get("metadata", {}).get("val_episodes")
        if trained_val is not None and trained_val != metadata["val_episodes"]:
            raise CheckpointError(f"--resume: {ckpt_dir} was trained holding out other episodes ({trained_val[:5]}... "
                                  f"against {metadata['val_episodes'][:5]}...); resume with its split or use a new "
                                  "out_dir.")
        load_state_checked(model, state_dict, where=f"checkpoint {ckpt_dir}")
        state = _load_train_state(ckpt_dir / TRAIN_STATE, device)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = int(state["step"])
    ddp_model: torch.nn.Module = model
    if dist.is_available() and dist.is_initialized():
        if device.type == "cuda":
            ddp_model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            ddp_model, device_ids=[device.index] if device.type == "cuda" else None)

    use_bf16 = (train_cfg.bf16 if device.type == "cuda"
                else device.type == "cpu" and cpu_bf16_enabled(train_cfg, model_cfg))
    autocast = autocast_context(device, use_bf16)
    local_batch = max(1, train_cfg.batch_size // world)
    writer = None
    if is_main:
        if overwrite:  # asked for: the old run goes only now, once the new one has its data and model
            for old in [out_dir / "agent", ckpt_dir] + ([out_dir / "tb"] if tb_dir is None else []):
                shutil.rmtree(old, ignore_errors=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "train_config.json", {  # a kill leaves the old file or the new one
            "model": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(train_cfg),
            "plan": dataclasses.asdict(plan_cfg), "data": metadata["data_path"],
            "train_clips": len(train_clips), "val_clips": len(val_clips), "params": model.num_params(),
            "world_size": world, "ddp_backend": dist.get_backend() if ddp_model is not model else None,
            "device": str(device), "pixels": "streamed from disk" if streamed else "in memory",
        })
        from torch.utils.tensorboard import SummaryWriter

        from .hparams import write_hparams

        tb = Path(tb_dir or out_dir / "tb")
        writer = SummaryWriter(str(tb), purge_step=step if resume else None)
        write_hparams(tb, {"model": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(train_cfg),
                           "plan": dataclasses.asdict(plan_cfg), "data": metadata["data_path"],
                           "train_episodes": len(train_ids), "val_episodes": len(val_ids)})

    def agent_config() -> dict:
        meta = {**metadata, "train_step": step, "data_fingerprint": data_fingerprint}
        return LeWMAgent.checkpoint_config(model_cfg, plan_cfg, normalizer.mean, normalizer.std,
                                           action_low, action_high, (H, W, 3), meta)

    def save_checkpoint() -> None:
        if is_main:
            write_checkpoint(ckpt_dir, agent_config(), model.state_dict(), extra={TRAIN_STATE: {
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step}})

    val_idx = np.random.default_rng(0).permutation(len(val_clips))[:256]

    @torch.no_grad()
    def validate() -> dict[str, float]:
        """Held-out one-step MSE (``val/pred_loss``, comparable whatever ``rollout_loss_steps`` is) and, with
        R > 0, the MSE of the R rolled-out steps after it (``val/rollout_loss``)."""
        model.eval()
        names = {"one_step_loss": "val/pred_loss", "rollout_loss": "val/rollout_loss"}
        losses: dict[str, list[float]] = {}
        for chunk in np.array_split(val_idx, max(1, len(val_idx) // 64)):
            batch = val_clips.get_batch(chunk)
            with autocast():
                z = model.encode(batch["pixels"].to(device))
                for k, v in model.prediction_errors(z, batch["action"].to(device)).items():
                    losses.setdefault(names[k], []).append(v.item())
        model.train()
        return {k: float(np.mean(v)) for k, v in losses.items()}

    final: dict[str, float] = {}
    end = train_cfg.steps if stop_at is None else min(stop_at, train_cfg.steps)
    bar = tqdm(total=train_cfg.steps, initial=step, desc="train", disable=not (progress and is_main),
               dynamic_ncols=True)
    model.train()
    t_log = time.perf_counter()
    # randomness of each step depends only on (seed, step, rank): exact resume; the next batches
    # are built in a background thread while this step runs
    with reuse_freed_memory(device.type == "cpu"), BatchStream(
            train_clips, train_cfg.seed, rank, local_batch, step, end, device, prefetch=train_cfg.prefetch,
            workers=train_cfg.workers) as stream:
        for torch_seed, batch in stream:
            torch.manual_seed(torch_seed)
            out, grad_norm = train_step(ddp_model, optimizer, scheduler, batch, autocast, train_cfg.grad_clip)
            step += 1
            bar.update(1)
            if is_main and (step % train_cfg.log_every == 0 or step == end):
                now = time.perf_counter()
                z = out["z"].reshape(-1, out["z"].shape[-1])
                final.update({
                    "train/loss": out["loss"].item(), "train/pred_loss": out["pred_loss"].item(),
                    "train/sigreg_loss": out["sigreg_loss"].item(), "train/lr": scheduler.get_last_lr()[0],
                    "train/grad_norm": float(grad_norm), "train/emb_std": embedding_std(z),
                    "train/eff_rank": effective_rank(z), "train/participation_ratio": participation_ratio(z),
                    "train/steps_per_sec": train_cfg.log_every / max(now - t_log, 1e-9),
                    **{f"train/{k}": out[k].item() for k in ("one_step_loss", "rollout_loss") if k in out},
                })
                t_log = now
                for k, v in final.items():
                    if k.startswith("train/"):
                        writer.add_scalar(k, v, step)
                bar.set_postfix(loss=f"{final['train/loss']:.3f}", pred=f"{final['train/pred_loss']:.4f}",
                                sig=f"{final['train/sigreg_loss']:.2f}")
            if is_main and (step % train_cfg.val_every == 0 or step == train_cfg.steps):
                for k, v in validate().items():
                    final[k] = v
                    writer.add_scalar(k, v, step)
            out_of_time = time_limit_s is not None and time.perf_counter() - start_time >= time_limit_s
            if step % train_cfg.ckpt_every == 0 or step == end or out_of_time:
                save_checkpoint()
            if out_of_time:
                break
    bar.close()

    agent_dir = out_dir / "agent"
    if is_main:
        if writer is not None:
            writer.flush()
            writer.close()
        if step >= train_cfg.steps:
            write_checkpoint(agent_dir, agent_config(), model.state_dict())
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    return TrainResult(agent_dir=agent_dir, steps=step, seconds=time.perf_counter() - start_time, final=final)
