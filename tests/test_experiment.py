"""lewm_agent.experiment: a task prepared once (reused, refused when its settings change), one record type,
evaluate_on_task, and the settings written into TensorBoard as hparams."""

import hashlib
import json

import pytest

from lewm_agent.evaluation import EvalProtocol, RandomActor
from lewm_agent.experiment import (RunRecord, Task, TaskMismatch, evaluate_on_task, load_pairs, prepare_task,
                                   record_path, run_key, task_name)
from lewm_agent.hparams import flatten_hparams, read_hparams, write_hparams

PROTOCOL = EvalProtocol(num_episodes=3, goal_offset=10, budget=8)


def _prepare(tmp_path, **over):
    kwargs = dict(task_dir=tmp_path / "tasks" / "TwoRoom", name="TwoRoom", env_id="lewm/TwoRoom-v1",
                  env_kwargs={"image_size": 32}, episodes=10, policy="expert", seed=0, protocol=PROTOCOL,
                  progress=False, data_path=tmp_path / "data" / "TwoRoom.h5")
    return prepare_task(**{**kwargs, **over})


def test_prepare_task_splits_once_reuses_and_refuses_other_settings(tmp_path):
    from lewm_agent.data import split_episodes

    task = _prepare(tmp_path)
    train_ids, val_ids = split_episodes(10, 0.1, 0)  # LeWM's default split, made once here
    assert task.split == (train_ids.tolist(), val_ids.tolist()) and task.train_frames() > 0
    pairs = task.pairs()
    assert len(pairs) == 3 and {p.episode for p in pairs} <= set(task.held_out_episodes)
    saved = json.loads((tmp_path / "tasks" / "TwoRoom" / "task.json").read_text())
    assert Task.from_dict(saved["task"]) == task
    assert saved["settings"]["split"] == {"val_fraction": 0.1, "split_seed": 0}

    data_stamp = task.data_path.stat().st_mtime_ns
    assert _prepare(tmp_path) == task  # the same settings: reused as it is
    for change, words in (({"episodes": 12}, "episodes was 10, now 12"), ({"seed": 1}, "seed was 0, now 1"),
                          ({"val_fraction": 0.3}, "split was"),
                          ({"protocol": EvalProtocol(num_episodes=4)}, "protocol")):
        with pytest.raises(TaskMismatch, match=words) as info:
            _prepare(tmp_path, **change)
        message = str(info.value)
        assert "\n" not in message and "use another run directory, or delete" in message and "TwoRoom.h5" in message
    assert task.data_path.stat().st_mtime_ns == data_stamp

    # a task.json written before the split was recorded was made with the defaults: still valid
    saved["settings"].pop("split")
    (tmp_path / "tasks" / "TwoRoom" / "task.json").write_text(json.dumps(saved))
    assert _prepare(tmp_path) == task

    # prepared again from scratch: the valid episode file is reused, the pairs are the same
    other = _prepare(tmp_path, task_dir=tmp_path / "again")
    assert task.data_path.stat().st_mtime_ns == data_stamp and other.split == task.split
    assert [(p.episode, p.row) for p in other.pairs()] == [(p.episode, p.row) for p in pairs]
    # ...unless it was collected with other settings: then it is collected again
    _prepare(tmp_path, task_dir=tmp_path / "seed1", seed=1)
    assert task.data_path.stat().st_mtime_ns != data_stamp


def test_a_corrupt_task_record_is_a_clear_error(tmp_path):
    task_dir = tmp_path / "tasks" / "TwoRoom"
    task_dir.mkdir(parents=True)
    (task_dir / "task.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not a task record.*delete"):
        _prepare(tmp_path)


def test_run_key_hashes_the_task_with_its_pairs_method_and_budget():
    """The key's inputs must not change: a changed key makes a comparison redo every finished cell."""
    task = Task(name="T", env_id="lewm/TwoRoom-v1", env_kwargs={"image_size": 64}, data_path="/r/data/T.h5",
                train_episodes=[0, 2], held_out_episodes=[1], pairs_path="/r/tasks/T/pairs.npz",
                protocol=EvalProtocol(), seed=0)
    blob = json.dumps({"task": {**task.to_dict(), "pairs": "/r/tasks/T/pairs.npz"}, "method": "lewm",
                       "budget": {"preset": "tiny"}}, sort_keys=True, default=str)
    assert run_key(task, "lewm", {"preset": "tiny"}) == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert set(task.to_dict()) == {"name", "env_id", "env_kwargs", "data_path", "train_episodes", "held_out_episodes",
                                   "pairs_path", "protocol", "seed"}


def test_record_fields_by_status():
    base = dict(task="T", env_id="e", method="m", key="k", budget={"steps": 3})
    ok = RunRecord(**base, success_rate=0.5, ci95=[0.1, 0.9], params=None, started="s", pid=1, status="ok")
    ok.finish(2.0)
    d = ok.to_dict()
    assert d["params"] is None and "peak_rss_mb" in d and d["seconds"] == 2.0 and "traceback" not in d
    assert list(d)[:9] == ["task", "env_id", "method", "key", "budget", "started", "pid", "status", "message"]
    assert RunRecord.from_dict(d) == ok
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError as e:
        failed = RunRecord(**base, started="s", pid=1).fail(e).finish(1.0)
    f = failed.to_dict()
    assert f["status"] == "error" and f["message"] == "RuntimeError: boom" and "Traceback" in f["traceback"]
    assert "success_rate" not in f and "peak_rss_mb" in f
    dead = RunRecord(**base, status="error", message="killed").to_dict()  # a process that never wrote its record
    assert list(dead) == ["task", "env_id", "method", "key", "budget", "status", "message"]
    with pytest.raises(ValueError, match="Unknown RunRecord fields"):
        RunRecord.from_dict({**dead, "sucess_rate": 1})


def test_hparams_are_flattened_written_and_read_back(tmp_path):
    flat = flatten_hparams({"a": {"b": 1, "c": None}, "d": True, "e": [1, 2], "f": "x"})
    assert flat == {"a.b": 1, "a.c": "None", "d": True, "e": "[1, 2]", "f": "x"}
    write_hparams(tmp_path, {"a": {"b": 1}, "d": True}, {"success_rate": 0.5, "train_seconds": None})
    assert read_hparams(tmp_path) == {"a.b": 1.0, "d": True}
    assert read_hparams(tmp_path / "nothing") == {}


def test_evaluate_on_task_fills_the_record_and_writes_the_settings_as_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    task = _prepare(tmp_path)
    env = task.make_env()
    actor = RandomActor(env.action_space.low, env.action_space.high, seed=0)
    env.close()
    record = RunRecord.begin(task.name, task.env_id, "random", run_key(task, "random", {}), {})
    tb = tmp_path / "tb" / "TwoRoom" / "random"
    for _ in range(2):  # evaluated again: the record's session is replaced, not added to
        evaluate_on_task(task, record, actor, data_used=0, data_kind="none", train_seconds=0.0,
                         video_dir=tmp_path / "videos" / "TwoRoom", video_episodes=1, video_root=tmp_path, tb_dir=tb,
                         hparams={"note": "test"}, progress=False)
    d = record.finish(1.0).to_dict()
    assert d["status"] == "ok" and d["num_episodes"] == 3 and d["videos"] == ["videos/TwoRoom/random_000.mp4"]
    pairs = load_pairs(task.pairs_path)
    assert [(e["episode"], e["row"]) for e in d["episodes"]] == [(p.episode, p.row) for p in pairs]
    assert d["protocol"]["goal_offset"] == 10 and d["key"] == run_key(task, "random", {})
    hp = read_hparams(tb / "record")
    assert hp["method"] == "random" and hp["task"] == "TwoRoom" and hp["env_id"] == "lewm/TwoRoom-v1"
    assert hp["env_kwargs.image_size"] == 32 and hp["episodes"] == 10 and hp["policy"] == "expert"
    assert hp["protocol.goal_offset"] == 10 and hp["note"] == "test"
    assert len(list((tb / "record").glob("events.out.tfevents*"))) == 1
    acc = EventAccumulator(str(tb / "record"))
    acc.Reload()
    assert acc.Scalars("success_rate")[-1].value == pytest.approx(d["success_rate"])
    assert acc.Scalars("train_seconds")[-1].value == 0.0
    assert record_path(tmp_path, "TwoRoom", "random") == tmp_path / "cells" / "TwoRoom" / "random.json"


def test_task_names_from_env_ids():
    assert task_name("lewm/TwoRoom-v1") == "TwoRoom" and task_name("lewm/MetaWorld-push-v3") == "MetaWorld-push"
    assert task_name("foreign_goal_env:foreign/Dot-v0") == "Dot" and task_name("CartPole-v1") == "CartPole"
