"""The former single module of the data package, kept as an import path: its public names, now
defined in the modules named for their job (``writer``, ``validate``, ``episodes``, ``split``,
``actions``, ``clips``). New code imports them from :mod:`lewm_agent.data`.
"""

from lewm_agent.data.actions import ActionNormalizer, action_bounds, check_action_bounds, warn_data_bounds
from lewm_agent.data.clips import ClipDataset
from lewm_agent.data.episodes import Episodes, load_episodes
from lewm_agent.data.errors import DatasetError, EpisodeFileWarning
from lewm_agent.data.h5 import FORMAT_VERSION, REQUIRED_COLUMNS
from lewm_agent.data.split import split_episodes
from lewm_agent.data.validate import EpisodeFileInfo, validate_episode_file
from lewm_agent.data.writer import EpisodeWriter

__all__ = ["FORMAT_VERSION", "REQUIRED_COLUMNS", "DatasetError", "EpisodeFileWarning", "EpisodeWriter",
           "EpisodeFileInfo", "validate_episode_file", "Episodes", "load_episodes", "split_episodes",
           "action_bounds", "check_action_bounds", "warn_data_bounds", "ActionNormalizer", "ClipDataset"]
