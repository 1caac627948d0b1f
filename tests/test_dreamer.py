"""DreamerV3 baseline (sheeprl): trains with the smoke budget, acts in our evaluation loop, reuses its checkpoint."""

import time
from pathlib import Path

import numpy as np
import pytest

from experiments.baselines import CellContext, Task, get_method
from experiments.baselines.dreamer import BUDGETS
from lewm_agent.evaluation import EvalProtocol, StartGoalPair, evaluate


def _task(tmp_path, image_size=64, horizon=20):
    return Task(name="TwoRoom", env_id="lewm/TwoRoom-v0", env_kwargs={"image_size": image_size},
                data_path=tmp_path / "unused.h5", train_episodes=[], held_out_episodes=[],
                pairs_path=tmp_path / "unused.npz", protocol=EvalProtocol(num_episodes=3, budget=horizon))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The smoke budget (64 env steps, 6 gradient steps of XS on 32x32 screens resized from 64x64 images)."""
    root = tmp_path_factory.mktemp("dreamer")
    task = _task(root)
    ctx = CellContext(work_dir=root / "work", tb_dir=root / "tb", device="cpu", progress=False)
    tic = time.perf_counter()
    result = get_method("dreamerv3")(task, ctx, dict(BUDGETS["smoke"]))
    return task, ctx, result, time.perf_counter() - tic


def _batch(task, n=3):
    envs = [task.make_env() for _ in range(n)]
    obs, infos = zip(*(env.reset(seed=i) for i, env in enumerate(envs)))
    for env in envs:
        env.close()
    return {k: np.stack([o[k] for o in obs]) for k in ("pixels", "goal")}, infos


def test_trains_and_reports(trained):
    task, ctx, result, _ = trained
    assert result.data_kind == "env interactions"
    assert result.data_used == BUDGETS["smoke"]["env_steps"]
    assert result.extra["gradient_steps"] >= 1
    assert result.train_seconds > 0
    assert 1_000_000 < result.params < 20_000_000  # XS world model + actor
    assert result.extra["reused_checkpoint"] is False
    # everything sheeprl wrote is under the work dir; its scalars are in the TensorBoard dir
    assert list(ctx.tb_dir.glob("events.out.tfevents.*"))
    assert result.extra["checkpoint"].startswith(str(ctx.work_dir))
    assert not list(ctx.tb_dir.rglob("*.ckpt"))


def test_actor_batched_in_bounds_and_deterministic(trained):
    task, _, result, _ = trained
    actor = result.actor
    batch, _ = _batch(task, n=3)
    actor.reset(3)
    first = [actor.act(batch) for _ in range(3)]
    for a in first:
        assert a.shape == (3, 2) and a.dtype == np.float32
        assert np.all(a >= -1.0) and np.all(a <= 1.0)
    assert not np.allclose(first[0][0], first[0][1])  # different observations, different actions
    actor.reset(3)
    again = [actor.act(batch) for _ in range(3)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_actor_checks_observations(trained):
    _, _, result, _ = trained
    with pytest.raises(KeyError, match="goal"):
        result.actor.act({"pixels": np.zeros((1, 64, 64, 3), np.uint8)})
    with pytest.raises(ValueError, match="uint8"):
        result.actor.act({"pixels": np.zeros((1, 64, 64, 3)), "goal": np.zeros((1, 64, 64, 3))})


def test_runs_in_our_evaluation_loop(trained):
    task, _, result, _ = trained
    _, infos = _batch(task, n=2)
    pairs = [StartGoalPair(0, i, info["state"], info["goal_state"]) for i, info in enumerate(infos)]
    r = evaluate(result.actor, task.make_env, pairs, task.protocol, progress=False)
    assert r.num_episodes == 2 and r.success_rate == sum(e["success"] for e in r.episodes) / 2
    # the actor's actions moved each dot: the goal distance changed from the start (success would end it early)
    assert all(e["final_distance"] != e["start_distance"] for e in r.episodes), r.episodes


def test_second_call_reuses_checkpoint(trained):
    task, ctx, first, first_seconds = trained
    tic = time.perf_counter()
    again = get_method("dreamerv3")(task, ctx, dict(BUDGETS["smoke"]))
    assert again.extra["reused_checkpoint"] is True
    assert again.extra["checkpoint"] == first.extra["checkpoint"]
    assert again.train_seconds == pytest.approx(first.train_seconds)
    assert time.perf_counter() - tic < first_seconds
    batch, _ = _batch(task, n=3)
    first.actor.reset(3)
    again.actor.reset(3)
    np.testing.assert_array_equal(first.actor.act(batch), again.actor.act(batch))


@pytest.mark.parametrize("change, field", [
    ({"model_size": "XXL"}, "model_size"),
    ({"env_steps": 8}, "env_steps"),
    ({"screen_size": 48}, "screen_size"),
    ({"replay_ratio": 0}, "replay_ratio"),
    ({"batch_size": "8"}, "batch_size"),
    ({"bogus": 1}, "bogus"),
])
def test_bad_budget_names_the_field(tmp_path, change, field):
    ctx = CellContext(work_dir=tmp_path / "work", tb_dir=tmp_path / "tb", device="cpu", progress=False)
    with pytest.raises(ValueError, match=field):
        get_method("dreamerv3")(_task(tmp_path), ctx, {**BUDGETS["smoke"], **change})
    assert not (tmp_path / "work").exists()


def test_a_replaced_checkpoint_is_not_loaded(trained, tmp_path):
    """sheeprl checkpoints are pickles: one this machine's run did not write (here: the run's, changed) is refused."""
    import shutil

    from experiments.baselines import UntrustedCheckpoint

    task, ctx, first, _ = trained
    work = tmp_path / "work"
    shutil.copytree(ctx.work_dir, work)
    ckpt = work / Path(first.extra["checkpoint"]).relative_to(ctx.work_dir)
    ckpt.write_bytes(ckpt.read_bytes() + b"\0")
    with pytest.raises(UntrustedCheckpoint, match="not written by a run on this machine"):
        get_method("dreamerv3")(task, CellContext(work_dir=work, tb_dir=tmp_path / "tb", device="cpu", progress=False),
                                dict(BUDGETS["smoke"]))
