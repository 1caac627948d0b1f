"""Episode files (HDF5): collection, validation, loading, clips and action normalisation."""

from lewm_agent.data.dataset import (
    FORMAT_VERSION,
    REQUIRED_COLUMNS,
    ActionNormalizer,
    ClipDataset,
    DatasetError,
    EpisodeFileInfo,
    EpisodeFileWarning,
    Episodes,
    EpisodeWriter,
    action_bounds,
    check_action_bounds,
    load_episodes,
    split_episodes,
    validate_episode_file,
    warn_data_bounds,
)
from lewm_agent.data.collect import collect

__all__ = [
    "FORMAT_VERSION",
    "REQUIRED_COLUMNS",
    "ActionNormalizer",
    "ClipDataset",
    "DatasetError",
    "EpisodeFileInfo",
    "EpisodeFileWarning",
    "Episodes",
    "EpisodeWriter",
    "action_bounds",
    "check_action_bounds",
    "load_episodes",
    "split_episodes",
    "validate_episode_file",
    "warn_data_bounds",
    "collect",
]

