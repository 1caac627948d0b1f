"""The errors and warnings of the data package (no heavy imports, so the CLI can check them cheaply)."""

from __future__ import annotations

import os

__all__ = ["DatasetError", "EpisodeFileWarning", "fail"]


class DatasetError(ValueError):
    """An episode file or a dataset request is invalid; the message names the file and the fix."""


class EpisodeFileWarning(UserWarning):
    """An episode file lacks something that was filled in another way (e.g. action bounds from the data)."""


def fail(path: str | os.PathLike, problem: str, fix: str) -> DatasetError:
    """``DatasetError("<path>: <problem>; <fix>")``: one line naming the file, the problem and the fix."""
    return DatasetError(f"{path}: {problem}; {fix}")
