"""Agent checkpoints: a directory with ``config.json`` and ``model.safetensors``.

Like Hugging Face's ``save_pretrained``: JSON for everything a person may read (model config,
action normaliser, planner defaults, env id, observation shape, library version), safetensors
for the weights (no pickle, safe to load from strangers). Written to a temporary directory
next to the target and renamed, so a crash never leaves half a checkpoint at ``path``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "lewm-agent-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint directory is missing, incomplete, corrupt or does not fit the model."""


class CheckpointWarning(UserWarning):
    """A checkpoint that loads but deserves a look (written by another minor version of the library)."""


def check_library_version(config: dict, where: Any) -> None:
    """Warn (:class:`CheckpointWarning`) if ``config["library_version"]`` has another major.minor version than
    the running library: its settings may mean something else now. (A changed format is ``format_version``'s
    job, refused by :func:`read_checkpoint`.)"""
    from . import __version__

    written = str(config.get("library_version", ""))
    if written and written.split(".")[:2] != __version__.split(".")[:2]:
        warnings.warn(f"{where} was written by lewm-agent {written}, this is {__version__}: check its results, or "
                      "retrain it with this version.", CheckpointWarning, stacklevel=3)


def _jsonable(x: Any) -> Any:
    if dataclasses.is_dataclass(x):
        return dataclasses.asdict(x)
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def write_checkpoint(
    path: str | os.PathLike,
    config: dict,
    state_dict: dict[str, torch.Tensor],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Atomically write ``config`` (JSON-able) and ``state_dict`` into directory ``path``.

    ``extra`` maps file names to objects saved beside them with ``torch.save`` (the training
    loop's optimiser/scheduler state); they are part of the same atomic swap.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_checkpoint(path)  # a swap a dead process left half done, and its temporary directories
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        config = {"format": FORMAT, "format_version": FORMAT_VERSION, **config}
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, default=_jsonable))
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
        save_file(tensors, str(tmp / WEIGHTS_NAME))
        for name, obj in (extra or {}).items():
            torch.save(obj, tmp / name)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        # swap: the old checkpoint stays at `old` until the new one is in place
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():
            os.replace(old, path)
        raise
    return path


def recover_checkpoint(path: str | os.PathLike) -> bool:
    """Finish the swap of a process that died inside :func:`write_checkpoint`, then delete dead writers' leftovers.

    A swap renames ``path`` to ``.NAME.old-PID``, then the complete new ``.NAME.tmp-PID`` to ``path``. A process
    killed between the two renames leaves no ``path``: the new checkpoint (complete: it is renamed only once
    written and synced) is then put in place, or, without it, the old one. Temporary directories of dead
    writers are deleted afterwards. Returns whether a checkpoint was put back at ``path``.
    """
    from .files import leftovers, pid_alive, remove_leftovers

    path = Path(path)
    restored = False
    if not path.exists():
        dead = {entry.name: entry for entry, pid in leftovers(path) if not pid_alive(pid) and entry.is_dir()}
        olds = sorted((e for n, e in dead.items() if n.startswith(f".{path.name}.old-")),
                      key=lambda e: e.stat().st_mtime, reverse=True)
        for old in olds:  # the newest interrupted swap: its new checkpoint, else its old one
            new = dead.get(old.name.replace(".old-", ".tmp-", 1))
            for candidate in (new, old):
                complete = candidate is not None and (candidate / CONFIG_NAME).is_file()
                if complete and (candidate / WEIGHTS_NAME).is_file():
                    os.replace(candidate, path)
                    restored = True
                    break
            if restored:
                break
    remove_leftovers(path)
    return restored


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read and validate a checkpoint directory; errors name the file and what to do."""
    path = Path(path)
    if not path.is_dir():
        hint = " (a file: pass the checkpoint directory that holds config.json)" if path.exists() else ""
        raise CheckpointError(f"No checkpoint directory at {path}{hint}. Train one with `lewm train`.")
    cfg_file, w_file = path / CONFIG_NAME, path / WEIGHTS_NAME
    for f in (cfg_file, w_file):
        if not f.is_file():
            raise CheckpointError(f"Checkpoint {path} is incomplete: {f.name} is missing. Re-save or retrain it.")
    try:
        config = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"Checkpoint config {cfg_file} is not valid JSON ({e}); the file is corrupt.") from e
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_file} is not a lewm-agent checkpoint config (no format={FORMAT!r}).")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{cfg_file} has format_version {config['format_version']}, newer than this library "
            f"understands ({FORMAT_VERSION}); upgrade lewm-agent."
        )
    try:
        state_dict = load_file(str(w_file))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"Checkpoint weights {w_file} cannot be read ({e}); the file is truncated or corrupt. "
            "Re-save or retrain the checkpoint."
        ) from e
    return config, state_dict


def load_state_checked(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict`` with an error that names the first mismatched tensor and its shapes."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: weights do not match the model config (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}). Was the checkpoint written by another version or config?"
        )
    for k, v in own.items():
        if v.shape != state_dict[k].shape:
            raise CheckpointError(
                f"{where}: tensor {k!r} has shape {tuple(state_dict[k].shape)} in the file but "
                f"{tuple(v.shape)} in a model built from its config.json (another image size, patch or "
                "width?). The config and the weights disagree: re-save the checkpoint."
            )
    module.load_state_dict(state_dict)
