"""Episode files (HDF5) and what training reads from them, one module per job:

- ``h5``: the file format (columns, version, HDF5 filters, attributes); ``errors``: its errors;
- ``writer``: :class:`EpisodeWriter` (atomic, appendable); ``collect``: policy rollouts into a file;
- ``validate``: :func:`validate_episode_file`; ``episodes``: :class:`Episodes`, :func:`load_episodes`;
- ``pixels``: :class:`DiskPixels` (pixels read on demand, a bounded cache of decoded chunks), :func:`stream_pixels`;
- ``split``: :func:`split_episodes`; ``actions``: action bounds and :class:`ActionNormalizer`;
- ``clips``: :class:`ClipDataset` (clips and their batches).
"""

from lewm_agent.data.actions import ActionNormalizer, action_bounds, check_action_bounds, warn_data_bounds
from lewm_agent.data.clips import ClipDataset
from lewm_agent.data.episodes import Episodes, load_episodes
from lewm_agent.data.errors import DatasetError, EpisodeFileWarning
from lewm_agent.data.h5 import FORMAT_VERSION, REQUIRED_COLUMNS
from lewm_agent.data.pixels import DiskPixels, stream_pixels
from lewm_agent.data.split import split_episodes
from lewm_agent.data.validate import EpisodeFileInfo, validate_episode_file
from lewm_agent.data.writer import EpisodeWriter
from lewm_agent.data.collect import collect
from lewm_agent.data import dataset  # noqa: F401,E402  (the former module's path; the CLI's warning hook looks it up)

__all__ = [
    "FORMAT_VERSION",
    "REQUIRED_COLUMNS",
    "ActionNormalizer",
    "ClipDataset",
    "DatasetError",
    "DiskPixels",
    "EpisodeFileInfo",
    "EpisodeFileWarning",
    "Episodes",
    "EpisodeWriter",
    "action_bounds",
    "check_action_bounds",
    "load_episodes",
    "split_episodes",
    "stream_pixels",
    "validate_episode_file",
    "warn_data_bounds",
    "collect",
]
