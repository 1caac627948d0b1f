"""Atomic text and JSON files (readers never see a half-written file, a crash leaves the old one), and the
checks of an output path made before any work (so that a long run never ends in an unwritable path)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_text", "atomic_write_json", "OutputPathError", "check_output_dir", "check_output_file",
           "pid_alive", "leftovers", "remove_leftovers", "file_fingerprint"]


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (ours or another user's). A zombie (exited, not yet
    reaped by its parent) is not alive: it writes nothing more, so its temporary files may go."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if not Path("/proc/self/stat").exists():  # no /proc here: the signal's answer is all there is
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False  # gone since the signal
    return state not in ("Z", "X")


_TEMP_FORMS = (r"\.{name}\.tmp-(\d+)", r"\.{name}\.old-(\d+)", r"{name}\.tmp-(\d+)", r"{name}\.shard-(\d+)-\d+",
               r"{name}\.shard-\d+-\d+\.tmp-(\d+)", r"\.{stem}\.tmp-(\d+){suffix}")


def leftovers(path: str | os.PathLike) -> list[tuple[Path, int]]:
    """(temporary path, pid of its writer) of every temporary file or directory the project's atomic writers
    made beside ``path`` (``.NAME.tmp-PID``, ``.NAME.old-PID``, ``NAME.tmp-PID``, ``NAME.shard-PID-K`` and a
    shard writer's ``NAME.shard-PID-K.tmp-PID``), alive or not."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    names = {"name": re.escape(path.name), "stem": re.escape(path.stem), "suffix": re.escape(path.suffix)}
    forms = [re.compile(form.format(**names)) for form in _TEMP_FORMS]
    found = []
    for entry in path.parent.iterdir():
        for form in forms:
            m = form.fullmatch(entry.name)
            if m:
                found.append((entry, int(m.group(1))))
                break
    return found


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files and directories beside ``path`` whose writer is dead (killed mid-write:
    SIGKILL, a power cut); a live writer's are left alone. Returns what was deleted."""
    removed = []
    for entry, pid in leftovers(path):
        if not pid_alive(pid):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def atomic_write_json(path: str | os.PathLike, data: Any, **dumps_kwargs: Any) -> Path:
    """``atomic_write_text`` of ``json.dumps(data, indent=2, **dumps_kwargs)``."""
    return atomic_write_text(path, json.dumps(data, indent=2, **dumps_kwargs))


class OutputPathError(ValueError):
    """An output path that cannot or must not be written: the message names it and what to do instead."""


def _check_parent(path: Path, flag: str) -> None:
    """The nearest existing ancestor of ``path`` must be a writable directory (the rest is created)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"{flag} {path}: {parent} is a file, not a directory; choose another path.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} {path}: directory {parent} is not writable; choose another path.")


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` as a Path if it is a directory to write into (existing or creatable), else OutputPathError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{flag} {path} is a file, not a directory; choose a directory path.")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputPathError(f"{flag} {path}: the directory is not writable; choose another path.")
    else:
        _check_parent(path, flag)
    return path


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` as a Path if it is a file that can be written (a new one, or an existing regular file), else
    OutputPathError. Whether an existing file may be replaced is the caller's question."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{flag} {path} is a directory; give a file path (e.g. {path / 'out.json'}).")
    if path.exists() and not path.is_file():
        raise OutputPathError(f"{flag} {path} is not a regular file; choose another path.")
    _check_parent(path, flag)
    return path


def file_fingerprint(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """sha256 (hex) of a file's size and its first and last ``block`` bytes: cheap for a file of gigabytes, and
    different for another file put at the same path (another collection, an append, a copy of another file)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        digest.update(str(size).encode())
        for start in sorted({0, max(0, size - block)}):
            f.seek(start)
            digest.update(f.read(block))
    return digest.hexdigest()
