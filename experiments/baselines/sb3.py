"""Stable-Baselines3 PPO and SAC, trained online on the goal-conditioned task from pixels.

Both see what LeWM sees, the observation and the goal image (``MultiInputPolicy``: one NatureCNN
per image, features concatenated), and learn from the task's dense reward (-distance to the goal
state). Training episodes are cut at the protocol's budget, so the training horizon is the
evaluation horizon; starts and goals come from the task's own reset distribution. The model is
checkpointed every ``save_every`` env steps into the cell's work directory, so an interrupted
cell resumes (SAC's replay buffer is not saved: it restarts empty).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import register
from .base import (CellContext, MethodUnavailable, PredictorActor, Task, TrainClock, Trained, budget_from,
                   require_trusted, trust_checkpoint)

__all__ = ["PPOBudget", "SACBudget", "train_sb3", "sb3_ppo", "sb3_sac"]


@dataclass
class PPOBudget:
    """PPO settings (SB3 defaults where not stated); ``timesteps`` is the online budget."""

    timesteps: int = 20_000
    """Env interactions in total (over all parallel envs)."""
    n_envs: int = 4
    """Parallel training envs."""
    n_steps: int = 128
    """Rollout length per env between updates."""
    batch_size: int = 64
    """Minibatch size of each gradient step."""
    n_epochs: int = 4
    """Passes over each rollout."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus in the loss."""
    save_every: int = 10_000
    """Env steps between resumable checkpoints."""

    def __post_init__(self) -> None:
        _positive(self, "timesteps", "n_envs", "n_steps", "batch_size", "n_epochs", "learning_rate", "save_every")


@dataclass
class SACBudget:
    """SAC settings (SB3 defaults where not stated); ``timesteps`` is the online budget."""

    timesteps: int = 2_000
    """Env interactions in total."""
    buffer_size: int = 100_000
    """Transitions kept; each costs ~50 KB at 64x64 (obs + next obs, two images each)."""
    learning_starts: int = 500
    """Env steps of random actions before the first update."""
    batch_size: int = 64
    """Transitions per gradient step."""
    train_freq: int = 1
    """Env steps between updates."""
    gradient_steps: int = 1
    """Gradient steps per update."""
    learning_rate: float = 3e-4
    """Adam learning rate (actor, critics and entropy)."""
    save_every: int = 10_000
    """Env steps between resumable checkpoints."""

    def __post_init__(self) -> None:
        _positive(self, "timesteps", "buffer_size", "batch_size", "train_freq", "gradient_steps", "learning_rate",
                  "save_every")
        if self.learning_starts < 0:
            raise ValueError(f"SACBudget.learning_starts must be >= 0, got {self.learning_starts}.")


def _positive(budget: Any, *names: str) -> None:
    """ValueError naming the first of ``names`` that is not > 0 (the types are checked by ``budget_from``)."""
    for name in names:
        if not getattr(budget, name) > 0:
            raise ValueError(f"{type(budget).__name__}.{name} must be > 0, got {getattr(budget, name)!r}.")


def _progress_callback(total: int, initial: int, save_every: int, path: Path, show: bool) -> Any:
    """SB3 callback: a tqdm bar over env steps, and an atomic checkpoint every ``save_every`` steps."""
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm.auto import tqdm

    class Callback(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = tqdm(total=total, initial=initial, desc="online", disable=not show, dynamic_ncols=True)
            self.next_save = (self.num_timesteps // save_every + 1) * save_every

        def _on_step(self) -> bool:
            self.bar.update(self.num_timesteps - self.bar.n)
            if self.num_timesteps >= self.next_save:
                _save(self.model, path)
                self.next_save += save_every
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return Callback()


def _save(model: Any, path: Path) -> None:
    """Write ``model`` to ``path`` atomically and record it as this machine's (:func:`trust_checkpoint`)."""
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.zip")
    model.save(tmp)
    trust_checkpoint(tmp)
    os.replace(tmp, path)


def _load(cls: Any, path: Path, **kwargs: Any) -> Any:
    """``cls.load(path)`` of a zip this machine's run wrote (a zip holds pickles: anything else is refused)."""
    require_trusted(path)
    return cls.load(path, **kwargs)


def train_sb3(algo: str, task: Task, ctx: CellContext, budget: dict[str, Any]) -> Trained:
    """Train (or resume, or load) SB3 ``algo`` (``ppo``/``sac``) on ``task`` and wrap it as a batched actor."""
    try:
        import stable_baselines3 as sb3
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.logger import configure
    except ImportError:
        raise MethodUnavailable(
            "stable-baselines3 is not installed; pip install -c constraints.txt -e '.[sb3]'") from None

    b = budget_from(PPOBudget if algo == "ppo" else SACBudget, budget)
    if b.timesteps < 1:
        raise ValueError(f"sb3-{algo}.timesteps must be >= 1, got {b.timesteps}.")
    cls = sb3.PPO if algo == "ppo" else sb3.SAC
    work = ctx.work_dir
    work.mkdir(parents=True, exist_ok=True)
    final, ckpt, clock = work / "model.zip", work / "checkpoint.zip", TrainClock(work)
    n_envs = b.n_envs if algo == "ppo" else 1
    horizon = task.protocol.budget

    def make() -> Any:
        return task.make_env(max_episode_steps=horizon)

    vec = make_vec_env(make, n_envs=n_envs, seed=task.seed, monitor_kwargs={"info_keywords": ("is_success",)})
    if final.exists():
        model = _load(cls, final, env=vec, device=ctx.device)
    else:
        tic = time.perf_counter()
        if ckpt.exists():
            model = _load(cls, ckpt, env=vec, device=ctx.device)
        elif algo == "ppo":
            model = cls("MultiInputPolicy", vec, n_steps=b.n_steps, batch_size=b.batch_size, n_epochs=b.n_epochs,
                        learning_rate=b.learning_rate, ent_coef=b.ent_coef, seed=task.seed, device=ctx.device)
        else:
            model = cls("MultiInputPolicy", vec, buffer_size=min(b.buffer_size, b.timesteps),
                        learning_starts=b.learning_starts, batch_size=b.batch_size, train_freq=b.train_freq,
                        gradient_steps=b.gradient_steps, learning_rate=b.learning_rate, seed=task.seed,
                        device=ctx.device)
        model.set_logger(configure(str(ctx.tb_dir), ["tensorboard"]))
        done = model.num_timesteps
        callback = _progress_callback(b.timesteps, done, b.save_every, ckpt, ctx.progress)
        model.learn(total_timesteps=max(b.timesteps - done, 0), callback=callback, reset_num_timesteps=done == 0)
        _save(model, final)
        clock.add(time.perf_counter() - tic)
        ckpt.unlink(missing_ok=True)
    vec.close()
    space = model.action_space
    params = sum(p.numel() for p in model.policy.parameters() if p.requires_grad)
    return Trained(actor=PredictorActor(model, deterministic=True, action_low=space.low, action_high=space.high),
                   data_used=int(model.num_timesteps), data_kind="env interactions", train_seconds=clock.seconds,
                   params=params, extra={"algo": algo, "budget": asdict(b), "device": str(model.device),
                                         "train_horizon": horizon, "policy": "MultiInputPolicy (NatureCNN per image)"})


@register("sb3-ppo", budget=PPOBudget)
def sb3_ppo(task: Task, ctx: CellContext, budget: dict[str, Any]) -> Trained:
    """Stable-Baselines3 PPO, online, pixels + goal image, dense reward."""
    return train_sb3("ppo", task, ctx, budget)


@register("sb3-sac", budget=SACBudget)
def sb3_sac(task: Task, ctx: CellContext, budget: dict[str, Any]) -> Trained:
    """Stable-Baselines3 SAC, online, pixels + goal image, dense reward."""
    return train_sb3("sac", task, ctx, budget)
