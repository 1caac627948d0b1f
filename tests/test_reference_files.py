"""Episode files of the LeWM reference tooling, as they are (docs: /work/shared facts, README "data").

Two layouts, both written here from the tiny TwoRoom file the other tests use:

- the published datasets: pixels Blosc-lz4 in chunks of 100 rows, NaN last action, extra columns
  (``proprio``, ``step_idx``, ``ep_idx``), no attributes;
- stable-worldmodel 0.1.1's HDF5Writer: no attributes, int32 ``ep_len``, one row per chunk, no
  reset frame, a finite leftover last action.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import h5py
import hdf5plugin
import numpy as np
import pytest

from lewm_agent.checkpoint import read_checkpoint
from lewm_agent.cli import main
from lewm_agent.config import preset, replace
from lewm_agent.data import (
    DatasetError,
    EpisodeFileWarning,
    action_bounds,
    load_episodes,
    split_episodes,
    validate_episode_file,
)
from lewm_agent.train import train

LEFTOVER = 1e6  # the finite last action of a 0.1.1 file: huge, so any use of it shows


def _episodes_of(path):
    """[(pixels, action, state)] per episode of a file written by `lewm collect` (last action NaN)."""
    with h5py.File(path, "r") as f:
        cols = {k: f[k][()] for k in ("pixels", "action", "state", "ep_len", "ep_offset")}
    return [tuple(cols[k][o:o + n] for k in ("pixels", "action", "state"))
            for o, n in zip(cols["ep_offset"], cols["ep_len"])]


def write_published(path, episodes, compression=None):
    """The published datasets' layout: one dataset per key, pixels Blosc-lz4 in chunks of 100 rows."""
    compression = compression if compression is not None else hdf5plugin.Blosc(cname="lz4")
    pixels = np.concatenate([p for p, _, _ in episodes])
    action = np.concatenate([a for _, a, _ in episodes])  # NaN on each episode's last row
    state = np.concatenate([s for _, _, s in episodes])
    ep_len = np.array([len(p) for p, _, _ in episodes], np.int64)
    ep_offset = np.concatenate([[0], np.cumsum(ep_len)[:-1]]).astype(np.int64)
    with h5py.File(path, "w") as f:
        f.create_dataset("pixels", data=pixels, chunks=(min(100, len(pixels)),) + pixels.shape[1:], **compression)
        f.create_dataset("action", data=action)
        f.create_dataset("proprio", data=state)
        f.create_dataset("state", data=state)
        f.create_dataset("step_idx", data=np.concatenate([np.arange(n) for n in ep_len]))
        f.create_dataset("ep_idx", data=np.repeat(np.arange(len(ep_len)), ep_len))
        f.create_dataset("ep_len", data=ep_len)
        f.create_dataset("ep_offset", data=ep_offset)
    return path


def write_swm_011(path, episodes):
    """stable-worldmodel 0.1.1's HDF5Writer: libver latest, chunks of one row, no filter, no attributes,
    int32 ep_len, the reset frame not recorded, a finite leftover last action, task columns besides."""
    rows = []
    for pixels, action, state in episodes:
        action = action[1:].copy()  # from o_1 on: row t still holds (o_t, a_t)
        action[-1] = LEFTOVER
        rows.append((pixels[1:], action, state[1:]))
    ep_len = np.array([len(p) for p, _, _ in rows], np.int32)
    columns = {
        "pixels": np.concatenate([p for p, _, _ in rows]),
        "action": np.concatenate([a for _, a, _ in rows]),
        "proprio": np.concatenate([s for _, _, s in rows]),
        "state": np.concatenate([s for _, _, s in rows]),
        "goal_state": np.concatenate([s[::-1] for _, _, s in rows]),
        "reward": np.zeros(int(ep_len.sum()), np.float64),
        "terminated": np.zeros(int(ep_len.sum()), bool),
        "step_idx": np.concatenate([np.arange(1, n + 1) for n in ep_len]).astype(np.int64),
    }
    with h5py.File(path, "w", libver="latest") as f:
        for name, data in columns.items():
            f.create_dataset(name, data=data, maxshape=(None,) + data.shape[1:], chunks=(1,) + data.shape[1:])
        f.create_dataset("ep_len", data=ep_len, maxshape=(None,), chunks=(1024,))
        f.create_dataset("ep_offset", data=np.concatenate([[0], np.cumsum(ep_len)[:-1]]).astype(np.int64),
                         maxshape=(None,), chunks=(1024,))
    return path, rows


@pytest.fixture(scope="module")
def source(tiny_data):
    return _episodes_of(tiny_data)


# --------------------------------------------------------------------------- the published layout
def test_blosc_file_in_the_published_layout_trains_directly(source, tmp_path, capsys):
    path = write_published(tmp_path / "tworoom.h5", source)
    with h5py.File(path, "r") as f:  # what the test claims to have written
        plist = f["pixels"].id.get_create_plist()
        assert [plist.get_filter(i)[0] for i in range(plist.get_nfilters())] == [32001]
        assert f["pixels"].chunks[0] == 100 and not f.attrs.keys()
    info = validate_episode_file(path)
    assert (info.num_episodes, info.image_size, info.action_dim) == (len(source), (32, 32), 2)
    np.testing.assert_array_equal(load_episodes(path).pixels, np.concatenate([p for p, _, _ in source]))

    run = tmp_path / "run"
    assert main(["train", "--data", str(path), "--out", str(run), "--preset", "tiny", "--steps", "3",
                 "--action-low", "-1", "-1", "--action-high", "1", "1"]) == 0
    assert "warning:" not in capsys.readouterr().err  # the bounds were given
    config, _ = read_checkpoint(run / "agent")
    assert config["agent"]["action_low"] == [-1, -1] and config["agent"]["action_high"] == [1, 1]
    assert config["metadata"]["action_bounds"] == "given" and config["agent"]["obs_shape"] == [32, 32, 3]


def test_without_the_filter_package_the_error_names_the_filter_and_the_fix(source, tmp_path):
    """A process where `import hdf5plugin` fails and HDF5's plugin directory is empty: the real
    HDF5 read error, met by `lewm train`, becomes one line naming Blosc and `pip install hdf5plugin`."""
    path = write_published(tmp_path / "tworoom.h5", source[:2])
    no_plugins = tmp_path / "no-plugins"
    no_plugins.mkdir()
    script = ("import sys; sys.modules['hdf5plugin'] = None\n"  # `import hdf5plugin` raises ImportError
              "from lewm_agent.cli import main\n"
              f"sys.exit(main(['train', '--data', {str(path)!r}, '--out', {str(tmp_path / 'run')!r}, "
              "'--preset', 'tiny', '--steps', '1']))\n")
    env = {**os.environ, "HDF5_PLUGIN_PATH": str(no_plugins)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "column 'pixels' is compressed with Blosc (HDF5 filter 32001)" in lines[0]
    assert "pip install hdf5plugin" in lines[0] and str(path) in lines[0]
    assert not (tmp_path / "run").exists()  # caught by validation, before any work


def test_a_gzip_file_with_a_damaged_chunk_is_still_reported_as_corrupt(source, tmp_path):
    """Only a filter that is really unavailable is named; other read errors stay 'corrupt'."""
    path = write_published(tmp_path / "ep.h5", source[:2], compression={"compression": "gzip"})
    with h5py.File(path, "r") as f:
        offset = f["pixels"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 64)
    with pytest.raises(DatasetError, match="corrupt or truncated") as err:
        validate_episode_file(path)
    assert "hdf5plugin" not in str(err.value)


# --------------------------------------------------------------------------- stable-worldmodel 0.1.1
def test_swm_0_1_1_file_trains_with_finite_bounds_from_the_data_and_eval_names_the_env(source, tmp_path, capsys):
    path, rows = write_swm_011(tmp_path / "swm.h5", source)
    info = validate_episode_file(path)  # int32 ep_len, a finite last action, extra columns: all fine
    assert info.attrs == {} and info.num_frames == sum(len(p) for p, _, _ in rows)
    episodes = load_episodes(path)
    last = episodes.ep_offset + episodes.ep_len - 1
    assert np.isnan(episodes.action[last]).all() and episodes.ep_len.dtype == np.int64

    run = tmp_path / "run"
    assert main(["train", "--data", str(path), "--out", str(run), "--preset", "tiny", "--steps", "3"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(err) == 1 and "no action bounds recorded" in err[0]
    assert "lewm train --action-low L1 L2 --action-high H1 H2" in err[0]

    # what the leftover must not touch: computed here from the episodes' own actions, last ones left out
    p = preset("tiny")
    train_ids, _ = split_episodes(len(rows), p.train.val_fraction, p.train.split_seed)
    used = np.concatenate([rows[i][1][:-1] for i in train_ids]).astype(np.float64)
    config, _ = read_checkpoint(run / "agent")
    agent = config["agent"]
    np.testing.assert_allclose(agent["action_low"], used.min(0), rtol=1e-6)
    np.testing.assert_allclose(agent["action_high"], used.max(0), rtol=1e-6)
    np.testing.assert_allclose(agent["action_mean"], used.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(agent["action_std"], used.std(0), rtol=1e-4)
    assert np.all(np.abs(agent["action_low"]) <= 1) and np.all(np.abs(agent["action_high"]) <= 1)
    assert config["metadata"]["action_bounds"] == "data" and config["metadata"]["env_id"] == ""

    # no env recorded: `lewm eval` says to name one; named, it evaluates on the file's held-out episodes
    assert main(["eval", "--agent", str(run / "agent"), "--eval-episodes", "1"]) == 2
    assert "lewm eval --env ENV_ID" in capsys.readouterr().err
    assert main(["eval", "--agent", str(run / "agent"), "--env", "lewm/TwoRoom-v0", "--eval-episodes", "2",
                 "--goal-offset", "5", "--budget", "5", "--no-random"]) == 0
    result = json.loads((run / "eval.json").read_text())["lewm"]
    assert result["status"] == "ok" and result["num_episodes"] == 2 and result["env_id"] == "lewm/TwoRoom-v0"
    assert result["extra"]["trained_env_id"] == ""


def test_a_finite_last_action_never_reaches_a_clip(source, tmp_path):
    from lewm_agent.data import ActionNormalizer, ClipDataset

    path, _ = write_swm_011(tmp_path / "swm.h5", source[:4])
    episodes = load_episodes(path)
    ids = np.arange(episodes.num_episodes)
    norm = ActionNormalizer.from_actions(episodes.action[episodes.transition_rows(ids)])
    clips = ClipDataset(episodes, ids, num_frames=3, frameskip=2, normalizer=norm)
    batch = clips.get_batch(np.arange(len(clips)))
    assert np.isfinite(batch["action"].numpy()).all() and np.abs(batch["action"].numpy()).max() < 100


# --------------------------------------------------------------------------- action bounds
def test_action_bounds_given_file_or_data(tiny_data, tmp_path):
    episodes = load_episodes(tiny_data)  # `lewm collect` records the env's bounds
    ids = np.arange(episodes.num_episodes)
    low, high, src = action_bounds(episodes, ids)
    assert src == "file" and low.tolist() == [-1, -1] and high.tolist() == [1, 1]
    low, high, src = action_bounds(episodes, ids, [-2, -3], [2, 3])
    assert src == "given" and low.tolist() == [-2, -3] and high.tolist() == [2, 3]
    episodes.attrs = {}
    low, high, src = action_bounds(episodes, ids[:3])
    used = episodes.action[episodes.transition_rows(ids[:3])]
    assert src == "data" and np.array_equal(low, used.min(0)) and np.array_equal(high, used.max(0))


@pytest.mark.parametrize("low,high,problem", [
    ([-1], [1], "the actions have 2 dimensions but the bounds have 1"),
    ([-1, 1], [1, 1], "low 1.0 >= high 1.0 in dimension 1"),
    ([-1, -1], None, "need both low and high"),
    ([-1, float("inf")], [1, float("inf")], "must be finite"),
])
def test_bad_action_bounds_fail_before_any_work(tiny_data, tmp_path, capsys, low, high, problem):
    p = preset("tiny")
    with pytest.raises(DatasetError, match=problem):
        train(tiny_data, tmp_path / "run", p.model, replace(p.train, steps=1), p.plan, progress=False,
              action_low=low, action_high=high)
    assert not (tmp_path / "run").exists()
    args = ["train", "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--preset", "tiny"]
    args += ["--action-low", *map(str, low)] + (["--action-high", *map(str, high)] if high else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert problem in err and "--action-low" in err and len(err.strip().splitlines()) == 1


def test_data_bounds_warning_is_an_episode_file_warning(source, tmp_path):
    path, _ = write_swm_011(tmp_path / "swm.h5", source[:4])
    p = preset("tiny")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(path, tmp_path / "run", p.model, replace(p.train, steps=1, val_fraction=0.25), p.plan, progress=False)
    found = [w for w in caught if issubclass(w.category, EpisodeFileWarning)]
    assert len(found) == 1 and "\n" not in str(found[0].message)
