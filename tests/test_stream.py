"""Streaming reads: pixels from disk on demand (DiskPixels), batches from DataLoader workers, bounded memory.

Every batch is a pure function of (seed, step, rank), so streamed batches equal in-memory ones for
any worker count, and training reads only the chunks its batches need.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from test_reference_files import write_published, write_swm_011

from lewm_agent.config import TrainConfig, preset, replace
from lewm_agent.data import (ActionNormalizer, ClipDataset, DiskPixels, EpisodeWriter, load_episodes, stream_pixels,
                             validate_episode_file)
from lewm_agent.train import BatchStream, train


def _random_episodes(n_episodes=12, length=20, size=32, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_episodes):
        pixels = rng.integers(0, 256, (length, size, size, 3), dtype=np.uint8)
        action = rng.uniform(-1, 1, (length, 2)).astype(np.float32)
        action[-1] = np.nan
        out.append((pixels, action, rng.standard_normal((length, 2)).astype(np.float32)))
    return out


def _write_ours(path, episodes):
    with EpisodeWriter(path, attrs={"env_id": "lewm/TwoRoom-v1", "action_low": [-1, -1], "action_high": [1, 1]}) as w:
        for pixels, action, state in episodes:
            w.add_episode(pixels, action, state)
    return path


def _write_legacy(path, episodes):
    """This writer's former layout: pixels gzip level 1 in chunks of 6 rows."""
    _write_ours(path, episodes)
    with h5py.File(path, "a") as f:
        pixels = f["pixels"][()]
        del f["pixels"]
        f.create_dataset("pixels", data=pixels, chunks=(6,) + pixels.shape[1:], compression="gzip",
                         compression_opts=1, maxshape=(None,) + pixels.shape[1:])
    return path


LAYOUTS = {
    "ours": _write_ours,
    "legacy-gzip-6": _write_legacy,
    "published-blosc-100": write_published,
    "swm-0.1.1": lambda path, episodes: write_swm_011(path, episodes)[0],
}


@pytest.fixture(scope="module")
def episodes():
    return _random_episodes()


def test_our_writer_stores_one_frame_per_chunk_in_blosc_lz4(episodes, tmp_path):
    path = _write_ours(tmp_path / "ours.h5", episodes)
    with h5py.File(path, "r") as f:
        plist = f["pixels"].id.get_create_plist()
        assert f["pixels"].chunks == (1, 32, 32, 3)
        assert [plist.get_filter(i)[0] for i in range(plist.get_nfilters())] == [32001]  # Blosc


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_disk_pixels_read_what_memory_holds_in_every_layout(layout, episodes, tmp_path):
    path = LAYOUTS[layout](tmp_path / f"{layout}.h5", episodes)
    in_memory = load_episodes(path).pixels
    frame = in_memory[0].nbytes
    disk = load_episodes(path, stream=True, cache_bytes=8 * frame).pixels
    assert isinstance(disk, DiskPixels) and disk.shape == in_memory.shape and len(disk) == len(in_memory)
    rows = np.random.default_rng(1).integers(0, len(in_memory), size=(7, 3))
    rows[0, 1] = rows[0, 0]  # a repeated row
    np.testing.assert_array_equal(disk[rows], in_memory[rows])  # (7, 3, H, W, 3)
    np.testing.assert_array_equal(disk[5:40:4], in_memory[5:40:4])
    np.testing.assert_array_equal(disk[-1], in_memory[-1])
    np.testing.assert_array_equal(np.asarray(disk), in_memory)
    assert disk.max_cached_bytes <= 8 * frame  # the cache never holds more than it is given
    with pytest.raises(IndexError, match="rows must be in"):
        disk[np.array([len(in_memory)])]


def _clips(path, stream):
    ep = load_episodes(path, stream=stream, cache_bytes=1 << 16)
    norm = ActionNormalizer.from_actions(ep.action)
    return ClipDataset(ep, np.arange(ep.num_episodes), num_frames=3, frameskip=2, normalizer=norm)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("layout", ["ours", "published-blosc-100"])
def test_streamed_batches_equal_in_memory_batches(layout, workers, episodes, tmp_path):
    path = LAYOUTS[layout](tmp_path / f"{layout}.h5", episodes)
    with BatchStream(_clips(path, stream=False), 7, 1, 5, 3, 9, "cpu", prefetch=False) as plain:
        expected = list(plain)
    with BatchStream(_clips(path, stream=True), 7, 1, 5, 3, 9, "cpu", workers=workers) as stream:
        got = list(stream)
    assert len(got) == len(expected) == 6
    for (seed_a, a), (seed_b, b) in zip(expected, got):
        assert seed_a == seed_b and a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_stopping_a_worker_stream_early_ends_it(episodes, tmp_path):
    path = _write_ours(tmp_path / "ours.h5", episodes)
    with BatchStream(_clips(path, stream=True), 0, 0, 4, 0, 1000, "cpu", workers=1) as stream:
        for i, _ in enumerate(stream):
            if i == 2:
                break
    assert stream._loader is None


def test_training_reads_only_the_chunks_its_batches_need(tmp_path, monkeypatch):
    """Fails if training reads the pixels whole, or keeps more decoded chunks than ``cache_mb``."""
    path = _write_ours(tmp_path / "big.h5", _random_episodes(n_episodes=60, length=40))  # 2,400 frames, 7 MB
    rows_read, readers = [], []
    dataset_getitem, pixels_init = h5py.Dataset.__getitem__, DiskPixels.__init__

    def counting_getitem(self, selection):
        out = dataset_getitem(self, selection)
        if self.name == "/pixels":
            rows_read.append(out.shape[0] if out.ndim == 4 else 1)
        return out

    def recording_init(self, *args, **kwargs):
        pixels_init(self, *args, **kwargs)
        readers.append(self)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting_getitem)
    monkeypatch.setattr(DiskPixels, "__init__", recording_init)
    p = preset("tiny")
    steps, cache_mb = 3, 1
    result = train(path, tmp_path / "run", p.model, replace(p.train, steps=steps, stream="on", cache_mb=cache_mb),
                   p.plan, progress=False)
    assert result.steps == steps and readers
    frames = p.model.num_frames
    val_episodes = round(60 * p.train.val_fraction)
    val_clips = min(256, val_episodes * (40 - (frames - 1) * p.model.frameskip))
    bound = 1 + (steps * p.train.batch_size + val_clips) * frames  # validation's one chunk, then one row per frame
    assert sum(rows_read) <= bound < 2400 // 2
    assert max(r.max_cached_bytes for r in readers) <= cache_mb << 20


def test_stream_settings_validate_themselves():
    assert TrainConfig(stream="ON").stream == "on"
    with pytest.raises(ValueError, match=r"TrainConfig.stream='maybe': choose one of \['auto', 'on', 'off'\]"):
        TrainConfig(stream="maybe")
    with pytest.raises(ValueError, match=r"TrainConfig.workers=-1 must be an integer >= 0"):
        TrainConfig(workers=-1)
    with pytest.raises(ValueError, match=r"TrainConfig.cache_mb=1.5 must be an integer >= 0"):
        TrainConfig(cache_mb=1.5)


def test_auto_streams_only_what_would_not_fit_comfortably(episodes, tmp_path):
    info = validate_episode_file(_write_ours(tmp_path / "ours.h5", episodes))
    pixel_bytes = info.num_frames * 32 * 32 * 3
    assert not stream_pixels("auto", info, available=4 * pixel_bytes)
    assert stream_pixels("auto", info, available=pixel_bytes)
    assert stream_pixels("auto", info, copies=4, available=4 * pixel_bytes)  # one copy per rank
    assert stream_pixels("on", info) and not stream_pixels("off", info)
