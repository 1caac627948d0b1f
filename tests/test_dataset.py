"""HDF5 episode files: writing (atomic, append), validation errors, loading, clips, normaliser."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import torch

from lewm_agent.data import (
    ActionNormalizer,
    ClipDataset,
    DatasetError,
    EpisodeWriter,
    load_episodes,
    split_episodes,
    validate_episode_file,
)

H = W = 8
A, S = 2, 3
ATTRS = {"env_id": "test/Dummy-v0", "image_size": H, "action_low": np.full(A, -1.0, np.float32),
         "action_high": np.full(A, 1.0, np.float32), "policy": "random", "seed": 0,
         "env_kwargs": {"image_size": H}, "note": None}


def fake_episode(T: int, k: int, with_state: bool = True):
    """Episode k: pixel/state/action values encode (episode, row) so slices are checkable."""
    t = np.arange(T)
    pixels = np.zeros((T, H, W, 3), np.uint8)
    pixels[:, 0, 0, 0] = k
    pixels[:, 0, 0, 1] = t
    action = np.stack([k + 0.01 * t, -t.astype(float)], axis=1).astype(np.float32)
    state = np.stack([np.full(T, k), t, t * 2], axis=1).astype(np.float32) if with_state else None
    return pixels, action, state


def write_file(path, lengths=(5, 7, 9), with_state=True, **kwargs):
    with EpisodeWriter(path, attrs=ATTRS, **kwargs) as w:
        for k, T in enumerate(lengths):
            w.add_episode(*fake_episode(T, k, with_state))
    return path


# --------------------------------------------------------------------------- writer / loader
def test_round_trip(tmp_path):
    path = write_file(tmp_path / "ep.h5")
    info = validate_episode_file(path)
    got = (info.num_episodes, info.num_frames, info.image_size, info.action_dim, info.state_dim)
    assert got == (3, 21, (H, W), A, S)
    assert info.attrs["env_id"] == "test/Dummy-v0" and info.attrs["format_version"] == 1
    assert info.attrs["image_size"] == H and info.attrs["seed"] == 0
    np.testing.assert_array_equal(info.attrs["action_low"], [-1, -1])
    assert info.attrs["env_kwargs"] == '{"image_size": 8}'  # dicts are stored as JSON

    ep = load_episodes(path)
    assert ep.pixels.dtype == np.uint8 and ep.action.dtype == np.float32 and ep.state.dtype == np.float32
    np.testing.assert_array_equal(ep.ep_len, [5, 7, 9])
    np.testing.assert_array_equal(ep.ep_offset, [0, 5, 12])
    for k, T in enumerate([5, 7, 9]):
        pixels, action, state = fake_episode(T, k)
        got = ep.episode(k)
        np.testing.assert_array_equal(got["pixels"], pixels)
        np.testing.assert_array_equal(got["action"][:-1], action[:-1])
        assert np.isnan(got["action"][-1]).all()  # the writer sets the last action to NaN
        np.testing.assert_array_equal(got["state"], state)
    with pytest.raises(IndexError):
        ep.episode(3)
    assert not any(p.name.startswith("ep.h5.tmp") for p in tmp_path.iterdir())


def test_without_state_column(tmp_path):
    path = write_file(tmp_path / "ep.h5", with_state=False)
    assert validate_episode_file(path).state_dim is None
    assert load_episodes(path).state is None


def test_exception_inside_writer_keeps_previous_file_and_leaves_no_temp(tmp_path):
    path = write_file(tmp_path / "ep.h5")
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with EpisodeWriter(path, attrs=ATTRS) as w:
            w.add_episode(*fake_episode(4, 0))
            raise RuntimeError("boom")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.h5"]
    # a new file that fails is never created
    with pytest.raises(RuntimeError):
        with EpisodeWriter(tmp_path / "new.h5", attrs=ATTRS) as w:
            w.add_episode(*fake_episode(4, 0))
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.h5"]


def test_append_keeps_existing_episodes(tmp_path):
    path = write_file(tmp_path / "ep.h5", lengths=(5, 6))
    with EpisodeWriter(path, attrs={**ATTRS, "seed": 1}, append=True) as w:
        assert w.num_episodes == 2 and w.num_frames == 11
        w.add_episode(*fake_episode(4, 2))
    ep = load_episodes(path)
    np.testing.assert_array_equal(ep.ep_len, [5, 6, 4])
    np.testing.assert_array_equal(ep.episode(2)["pixels"], fake_episode(4, 2)[0])
    np.testing.assert_array_equal(ep.episode(0)["state"], fake_episode(5, 0)[2])
    assert ep.attrs["seed"] == 1
    with pytest.raises(DatasetError, match="env_id"):
        EpisodeWriter(path, attrs={**ATTRS, "env_id": "other"}, append=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.h5"]


def test_writer_rejects_inconsistent_episodes(tmp_path):
    path = tmp_path / "ep.h5"
    with pytest.raises(DatasetError, match="per-row shapes"):
        with EpisodeWriter(path, attrs=ATTRS) as w:
            w.add_episode(*fake_episode(4, 0))
            w.add_episode(*fake_episode(4, 1, with_state=False))
    with pytest.raises(DatasetError, match="uint8"):
        with EpisodeWriter(path, attrs=ATTRS) as w:
            pixels, action, state = fake_episode(4, 0)
            w.add_episode(pixels.astype(np.float32), action, state)
    with pytest.raises(DatasetError, match="row 1 is not finite"):
        with EpisodeWriter(path, attrs=ATTRS) as w:
            pixels, action, state = fake_episode(4, 0)
            action[1, 0] = np.nan
            w.add_episode(pixels, action, state)
    with pytest.raises(DatasetError, match="no episodes"):
        with EpisodeWriter(path, attrs=ATTRS):
            pass
    assert not path.exists() and list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- validation errors
def edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


def replace(name, data):
    def fn(f):
        del f[name]
        f.create_dataset(name, data=data)
    return fn


@pytest.mark.parametrize(
    "mutate, problem",
    [
        (lambda f: f.__delitem__("action"), "missing required column 'action'"),
        (lambda f: f.__delitem__("ep_offset"), "missing required column 'ep_offset'"),
        (replace("pixels", np.zeros((21, H, W, 3), np.float32)), "'pixels' must be uint8"),
        (replace("action", np.zeros((20, A), np.float32)), "'action' has 20 rows but 'pixels' has 21"),
        (replace("ep_len", np.array([5, 7, 8])), "ep_len sums to 20 frames but the columns have N = 21"),
        (replace("ep_offset", np.array([0, 6, 12])), r"ep_offset\[1\] = 6"),
        (replace("ep_len", np.array([1, 11, 9])), "episode 0 has length 1"),
        (replace("pixels", np.zeros((21, H, W + 4, 3), np.uint8)),
         rf"frames are {H}x{W + 4} pixels; LeWM takes square"),
        (replace("pixels", np.zeros((21, 4, 4, 3), np.uint8)),
         "frames are 4x4 pixels; LeWM takes square frames of at least 8x8"),
    ],
)
def test_validation_errors_name_file_and_problem(tmp_path, mutate, problem):
    path = edit(write_file(tmp_path / "ep.h5"), mutate)
    with pytest.raises(DatasetError, match=problem) as err:
        validate_episode_file(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_state_is_located(tmp_path, bad):
    def fn(f):
        f["state"][13] = [0.0, bad, 0.0]  # episode 2 starts at row 12: its row 1
    path = edit(write_file(tmp_path / "ep.h5"), fn)
    with pytest.raises(DatasetError, match=r"non-finite state in episode 2 at row 1 \(file row 13\)") as err:
        load_episodes(path)
    assert str(path) in str(err.value)


def test_nan_action_inside_episode_is_located(tmp_path):
    def fn(f):
        f["action"][8] = [np.nan, 0.0]  # episode 1 starts at row 5: its row 3
    path = edit(write_file(tmp_path / "ep.h5"), fn)
    with pytest.raises(DatasetError, match=r"episode 1 at row 3 \(file row 8\)") as err:
        load_episodes(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "missing"])
def test_corrupt_truncated_or_missing_file(tmp_path, kind):
    path = tmp_path / "ep.h5"
    if kind == "garbage":
        path.write_bytes(os.urandom(4096))
    elif kind == "truncated":
        write_file(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    problem = "not found" if kind == "missing" else "corrupt or truncated"
    with pytest.raises(DatasetError, match=problem) as err:
        validate_episode_file(path)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------- split / normaliser
def test_split_episodes():
    train, val = split_episodes(10, 0.2, seed=0)
    assert len(val) == 2 and len(train) == 8
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(10))
    t2, v2 = split_episodes(10, 0.2, seed=0)
    np.testing.assert_array_equal(train, t2)
    np.testing.assert_array_equal(val, v2)
    assert not np.array_equal(split_episodes(10, 0.2, seed=1)[1], val)
    tr, va = split_episodes(2, 0.01, seed=0)
    assert len(tr) == 1 and len(va) == 1
    with pytest.raises(DatasetError, match="at least 2"):
        split_episodes(1, 0.5, seed=0)
    with pytest.raises(DatasetError, match="val_fraction"):
        split_episodes(5, 1.0, seed=0)


def test_normalizer_round_trip_numpy_and_torch():
    rng = np.random.default_rng(0)
    actions = rng.normal([1.0, -2.0, 5.0], [2.0, 0.5, 0.0], size=(500, 3)).astype(np.float32)
    actions[::50] = np.nan  # episode ends are ignored
    norm = ActionNormalizer.from_actions(actions)
    assert norm.std[2] == 1.0  # constant dimension: std floor
    np.testing.assert_allclose(norm.mean[:2], np.nanmean(actions[:, :2], axis=0), rtol=1e-5)
    x = actions[1:10]
    z = norm.normalize(x)
    np.testing.assert_allclose(norm.denormalize(z), x, rtol=1e-5, atol=1e-5)
    zt = norm.normalize(torch.from_numpy(x))
    assert isinstance(zt, torch.Tensor) and zt.dtype == torch.float32
    np.testing.assert_allclose(zt.numpy(), z, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(norm.denormalize(zt).numpy(), x, rtol=1e-5, atol=1e-5)
    blocks = x[:8].reshape(2, 4 * 3)  # 2 blocks of 4 actions
    zb = norm.normalize_blocks(blocks)
    np.testing.assert_allclose(zb.reshape(8, 3), z[:8], rtol=1e-6)
    np.testing.assert_allclose(norm.denormalize_blocks(torch.from_numpy(zb)).numpy(), blocks, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="normalize_blocks"):
        norm.normalize(blocks)
    again = ActionNormalizer.from_dict(norm.to_dict())
    np.testing.assert_array_equal(again.mean, norm.mean)
    np.testing.assert_array_equal(again.std, norm.std)


# --------------------------------------------------------------------------- clips
@pytest.fixture
def episodes(tmp_path):
    return load_episodes(write_file(tmp_path / "ep.h5", lengths=(5, 7, 9, 12)))


@pytest.mark.parametrize("num_frames, frameskip", [(4, 1), (3, 2), (2, 5), (1, 3)])
def test_clip_count_and_contents(episodes, num_frames, frameskip):
    ids = np.array([0, 2, 3])
    norm = ActionNormalizer.from_actions(episodes.action)
    clips = ClipDataset(episodes, ids, num_frames, frameskip, norm)
    span = (num_frames - 1) * frameskip
    assert len(clips) == sum(max(0, L - span) for L in episodes.ep_len[ids])
    item = clips[0]
    T = num_frames
    assert item["pixels"].shape == (T, H, W, 3) and item["pixels"].dtype == torch.uint8
    assert item["action"].shape == (T - 1, frameskip * A) and item["action"].dtype == torch.float32
    assert item["state"].shape == (T, S) and item["state"].dtype == torch.float32

    idx = np.arange(len(clips))
    batch = clips.get_batch(idx)
    for key in ("pixels", "action", "state"):
        torch.testing.assert_close(batch[key], torch.stack([clips[int(i)][key] for i in idx]))
    assert not torch.isnan(batch["action"]).any()

    # every clip: frames are fs apart inside one episode; blocks are the raw actions between them
    raw = norm.denormalize_blocks(batch["action"]).numpy()  # (B, T-1, fs*A)
    for b, i in enumerate(idx):
        e, s = clips.clip_episode[i], clips.clip_start[i] - episodes.ep_offset[clips.clip_episode[i]]
        rows = s + np.arange(T) * frameskip
        np.testing.assert_array_equal(batch["state"][b].numpy(), episodes.episode(e)["state"][rows])
        np.testing.assert_array_equal(batch["pixels"][b, :, 0, 0, 1].numpy(), rows)  # row is encoded in pixels
        assert (batch["pixels"][b, :, 0, 0, 0] == e).all()
        expected = episodes.episode(e)["action"][s:s + span].reshape(T - 1, frameskip * A)
        np.testing.assert_allclose(raw[b], expected, rtol=1e-5, atol=1e-5)


def test_clip_errors(episodes):
    norm = ActionNormalizer.from_actions(episodes.action)
    with pytest.raises(DatasetError, match="no clip fits"):
        ClipDataset(episodes, np.array([0, 1]), 4, 3, norm)  # span 10 frames > 7
    with pytest.raises(DatasetError, match="action_dim"):
        ClipDataset(episodes, np.array([0]), 2, 1, ActionNormalizer(np.zeros(3), np.ones(3)))
    with pytest.raises(DatasetError, match="episode_ids"):
        ClipDataset(episodes, np.array([7]), 2, 1, norm)
    clips = ClipDataset(episodes, np.array([0]), 2, 1, norm)
    with pytest.raises(IndexError):
        clips.get_batch(np.array([len(clips)]))
    with pytest.raises(IndexError):
        clips[len(clips)]
