"""Actions: the bounds an agent clips to (given / file / data) and the z-scoring normaliser that
training, the agent and the planner share.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lewm_agent.data.episodes import Episodes
from lewm_agent.data.errors import DatasetError, EpisodeFileWarning, fail

__all__ = ["check_action_bounds", "action_bounds", "warn_data_bounds", "ActionNormalizer"]


# --------------------------------------------------------------------------- action bounds
def check_action_bounds(low: Any, high: Any, action_dim: int, where: str | os.PathLike = "") -> (
        tuple[np.ndarray, np.ndarray] | None):
    """Action bounds given by the user, checked: None (neither given) or float32 (A,) arrays.

    Raises:
        DatasetError: only one given, a length other than ``action_dim``, a non-finite value, or
            ``low >= high`` in some dimension; the message names the fix (``lewm train --action-low``).
    """
    if low is None and high is None:
        return None
    prefix = f"{where}: " if str(where) else ""
    flags = "--action-low LOW... --action-high HIGH..."
    if low is None or high is None:
        raise DatasetError(f"{prefix}action bounds need both low and high; give both ({flags}, "
                           f"{action_dim} numbers each)")
    low, high = np.asarray(low, np.float64).reshape(-1), np.asarray(high, np.float64).reshape(-1)
    if low.size != action_dim or high.size != action_dim:
        raise DatasetError(f"{prefix}the actions have {action_dim} dimensions but the bounds have {low.size} "
                           f"(low) and {high.size} (high) values; give {action_dim} numbers each ({flags})")
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise DatasetError(f"{prefix}action bounds must be finite, got low={low.tolist()} high={high.tolist()}; "
                           f"leave them out to use the file's or the data's ({flags})")
    if np.any(low >= high):
        d = int(np.flatnonzero(low >= high)[0])
        raise DatasetError(f"{prefix}action bound low {low[d]} >= high {high[d]} in dimension {d}; "
                           f"give low < high in every dimension ({flags})")
    return low.astype(np.float32), high.astype(np.float32)


def action_bounds(episodes: Episodes, episode_ids: np.ndarray, low: Any = None,
                  high: Any = None) -> tuple[np.ndarray, np.ndarray, str]:
    """``(low, high, source)``: the bounds an agent trained on these episodes clips its actions to.

    ``source`` says where they come from: ``"given"`` (``low`` and ``high``, checked with
    :func:`check_action_bounds`; they win over the file's), ``"file"`` (the attributes
    ``action_low`` / ``action_high``, as ``lewm collect`` records the env's action space), or
    ``"data"`` when the file records none (e.g. stable-worldmodel files have no attributes): the
    per-dimension min and max of the actions of ``episode_ids`` that lead to a next frame (an
    episode's last action is never used). Float32 (A,) arrays.
    """
    A = episodes.action_dim
    where = episodes.path if episodes.path is not None else "<in-memory episodes>"
    given = check_action_bounds(low, high, A, where)
    if given is not None:
        return given[0], given[1], "given"
    attrs = episodes.attrs
    if "action_low" in attrs and "action_high" in attrs:
        file_low = np.asarray(attrs["action_low"], np.float32).reshape(-1)
        file_high = np.asarray(attrs["action_high"], np.float32).reshape(-1)
        if file_low.size != A or file_high.size != A:
            raise fail(where, f"attributes action_low / action_high have {file_low.size} / "
                        f"{file_high.size} values but the actions have {A} dimensions",
                        "give the bounds instead (lewm train --action-low LOW... --action-high HIGH...)")
        return file_low, file_high, "file"
    actions = episodes.action[episodes.transition_rows(episode_ids)]
    actions = actions[np.all(np.isfinite(actions), axis=1)]
    if actions.shape[0] == 0:
        raise fail(where, "the file records no action bounds and the episodes have no usable action",
                    "give the bounds (lewm train --action-low LOW... --action-high HIGH...)")
    return actions.min(axis=0).astype(np.float32), actions.max(axis=0).astype(np.float32), "data"


def warn_data_bounds(path: Any, low: np.ndarray, high: np.ndarray) -> None:
    """Warn (:class:`EpisodeFileWarning`, one line) that the action bounds come from the data."""
    fmt = lambda a: "[" + ", ".join(f"{v:.4g}" for v in a) + "]"  # noqa: E731
    dims = " ".join(f"L{d + 1}" for d in range(len(low))), " ".join(f"H{d + 1}" for d in range(len(high)))
    warnings.warn(f"{path}: no action bounds recorded (attributes action_low/action_high); the agent clips its "
                  f"actions to the training actions' min {fmt(low)} and max {fmt(high)}; to use the env's bounds, "
                  f"pass `lewm train --action-low {dims[0]} --action-high {dims[1]}` (train(action_low=..., "
                  "action_high=...))", EpisodeFileWarning, stacklevel=3)


# --------------------------------------------------------------------------- normaliser
Array = np.ndarray | torch.Tensor


@dataclass
class ActionNormalizer:
    """Per-dimension z-scoring of actions: ``(a - mean) / std``.

    Attributes:
        mean: float32 (A,) dataset mean per action dimension.
        std: float32 (A,) dataset std per dimension (dimensions with std < 1e-6 get 1).

    ``normalize``/``denormalize`` take numpy arrays or torch tensors of shape (..., A);
    ``normalize_blocks``/``denormalize_blocks`` take action blocks (..., k * A) (k actions
    concatenated, as in a clip's ``action``) and tile the statistics over the k blocks.
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(self.std, dtype=np.float32).reshape(-1)
        if self.mean.shape != self.std.shape or self.mean.size == 0:
            raise ValueError(f"mean {self.mean.shape} and std {self.std.shape} must be non-empty and the same shape")
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.std)) and np.all(self.std > 0)):
            raise ValueError(f"mean must be finite and std finite and > 0, got mean={self.mean}, std={self.std}")

    @property
    def action_dim(self) -> int:
        return int(self.mean.size)

    @classmethod
    def from_actions(cls, actions: np.ndarray, min_std: float = 1e-6) -> "ActionNormalizer":
        """Statistics of float (N, A) actions, ignoring rows with any NaN (episode ends)."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2:
            raise ValueError(f"actions must be (N, A), got shape {actions.shape}")
        rows = actions[np.all(np.isfinite(actions), axis=1)]
        if rows.shape[0] == 0:
            raise ValueError("no finite action row to compute statistics from")
        std = rows.std(axis=0)
        return cls(mean=rows.mean(axis=0), std=np.where(std < min_std, 1.0, std))

    def _stats(self, a: Array, blocks: bool) -> tuple[Array, Array]:
        A, last = self.action_dim, a.shape[-1] if a.ndim else 0
        if blocks:
            if last == 0 or last % A:
                raise ValueError(f"action blocks must have a last dimension that is a multiple of {A}, "
                                 f"got {tuple(a.shape)}")
            reps = last // A
        else:
            if last != A:
                hint = "; for action blocks use normalize_blocks/denormalize_blocks" if last and last % A == 0 else ""
                raise ValueError(f"actions must have shape (..., {A}), got {tuple(a.shape)}{hint}")
            reps = 1
        mean, std = np.tile(self.mean, reps), np.tile(self.std, reps)
        if isinstance(a, torch.Tensor):
            dtype = a.dtype if a.is_floating_point() else torch.float32
            return (torch.as_tensor(mean, dtype=dtype, device=a.device),
                    torch.as_tensor(std, dtype=dtype, device=a.device))
        return mean, std

    @staticmethod
    def _as_float(a: Array) -> Array:
        if isinstance(a, torch.Tensor):
            return a if a.is_floating_point() else a.float()
        a = np.asarray(a)
        return a if a.dtype.kind == "f" else a.astype(np.float32)

    def normalize(self, a: Array) -> Array:
        """(..., A) raw actions -> normalised (same type; numpy keeps its float dtype)."""
        a = self._as_float(a)
        mean, std = self._stats(a, blocks=False)
        return (a - mean) / std

    def denormalize(self, a: Array) -> Array:
        """(..., A) normalised actions -> raw actions."""
        a = self._as_float(a)
        mean, std = self._stats(a, blocks=False)
        return a * std + mean

    def normalize_blocks(self, a: Array) -> Array:
        """(..., k * A) raw action blocks -> normalised."""
        a = self._as_float(a)
        mean, std = self._stats(a, blocks=True)
        return (a - mean) / std

    def denormalize_blocks(self, a: Array) -> Array:
        """(..., k * A) normalised action blocks -> raw."""
        a = self._as_float(a)
        mean, std = self._stats(a, blocks=True)
        return a * std + mean

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-able ``{"mean": [...], "std": [...]}``."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ActionNormalizer":
        try:
            return cls(mean=np.asarray(d["mean"]), std=np.asarray(d["std"]))
        except KeyError as err:
            raise ValueError(f"an ActionNormalizer dict needs keys 'mean' and 'std', got {sorted(d)}") from err

