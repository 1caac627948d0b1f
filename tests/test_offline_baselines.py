"""The same-data offline baselines: hindsight relabelling, GCBC learning, exact resume of GCBC/GCIQL."""

import numpy as np
import pytest
import torch

from experiments.baselines import CellContext, Task
from experiments.baselines.gcbc import GCBC, GCBCBudget, gcbc
from experiments.baselines.gciql import GCIQL, GCIQLBudget
from experiments.baselines.hindsight import GoalMix, HindsightSampler
from experiments.baselines.offline_loop import fit_offline
from experiments.baselines.pixel_nets import to_input
from lewm_agent.data import Episodes, load_episodes
from lewm_agent.evaluation import EvalProtocol


def _episodes(lengths, size=36, action_dim=2, seed=0):
    """In-memory episodes: random frames, actions in [0, 4] (bounds 0..4), NaN on each last row."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    action = rng.uniform(0, 4, size=(n, action_dim)).astype(np.float32)
    offsets = np.cumsum([0] + list(lengths[:-1]))
    action[offsets + np.asarray(lengths) - 1] = np.nan
    return Episodes(pixels=rng.integers(0, 255, size=(n, size, size, 3), dtype=np.uint8), action=action, state=None,
                    ep_len=np.asarray(lengths, np.int64), ep_offset=offsets.astype(np.int64))


def test_hindsight_goals_stay_in_the_training_episodes_and_the_reward_marks_only_the_current_frame():
    ep = _episodes([5, 6, 4])
    sampler = HindsightSampler(ep, np.array([0, 2]), np.zeros(2), np.full(2, 4.0))
    held_out = set(range(5, 11))
    rng = np.random.default_rng(0)
    for mix in (GoalMix(1, 0, 0), GoalMix(0, 1, 0), GoalMix(0, 0, 1), GoalMix(0.2, 0.5, 0.3, geometric=True)):
        b = sampler.sample(rng, 400, mix)
        assert not held_out & set(b.obs) and not held_out & set(b.goal) and not held_out & set(b.next_obs)
        assert not set(b.obs) & {4, 14}, "an episode's last frame has no action, so it starts no transition"
        np.testing.assert_array_equal(b.next_obs, b.obs + 1)
        np.testing.assert_array_equal(b.reward, np.where(b.goal == b.obs, 0.0, -1.0))
        np.testing.assert_array_equal(b.mask, -b.reward)
        assert b.action.min() >= -1 and b.action.max() <= 1
        if mix.future == 1:
            assert (b.goal > b.obs).all() and (b.goal <= b.end).all(), "future goals: later frames of the same episode"
            assert set(b.goal[b.obs == 0]) == {1, 2, 3, 4}, "uniform over the whole rest of the episode"
        if mix.current == 1:
            assert (b.reward == 0).all()
        if mix.random == 1:
            assert set(b.goal) == set(range(0, 5)) | set(range(11, 15))
    np.testing.assert_allclose(sampler.to_env_action(np.array([[-1.0, 1.0]])), [[0.0, 4.0]])


def test_gcbc_learns_to_act_toward_the_goal_it_is_shown():
    """Data where the action is +1 when the goal frame is bright, -1 when dark: GCBC must read the goal."""
    size, rng = 36, np.random.default_rng(0)
    lengths = [6] * 20
    n = sum(lengths)
    pixels = np.zeros((n, size, size, 3), np.uint8)
    action = np.zeros((n, 1), np.float32)
    for e, o in enumerate(np.arange(0, n, 6)):
        bright = e % 2 == 0
        pixels[o:o + 6] = rng.integers(0, 60, size=(6, size, size, 3))
        pixels[o + 5] = 230 if bright else 10  # the last frame (where every future goal ends) says which way
        pixels[o + 1:o + 5] = 230 if bright else 10
        action[o:o + 5] = 1.0 if bright else -1.0
        action[o + 5] = np.nan
    ep = Episodes(pixels=pixels, action=action, state=None, ep_len=np.asarray(lengths), ep_offset=np.arange(0, n, 6))
    sampler = HindsightSampler(ep, np.arange(20), np.array([-1.0]), np.array([1.0]))
    torch.manual_seed(0)
    learner = GCBC(size, 1, GCBCBudget(lr=1e-3))
    for step in range(60):
        rng_s = np.random.default_rng([0, step])
        learner.update(sampler, lambda o, g: to_input(pixels[o], pixels[g], torch.device("cpu")), rng_s, 32)
    start = pixels[[0, 6]]  # dark-ish starts of a bright and a dark episode
    with torch.no_grad():
        out = learner.policy(to_input(start, pixels[[5, 11]], torch.device("cpu"))).numpy()
    assert out[0, 0] > 0.5 and out[1, 0] < -0.5, out


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """A TwoRoom task at 36 px with 8 expert episodes (6 to train on)."""
    from lewm_agent.data import collect

    root = tmp_path_factory.mktemp("offline")
    path = root / "data.h5"
    collect("lewm/TwoRoom-v1", path, num_episodes=8, policy="expert", seed=0, env_kwargs={"image_size": 36},
            progress=False, max_steps=30)
    return Task(name="TwoRoom", env_id="lewm/TwoRoom-v1", env_kwargs={"image_size": 36}, data_path=path,
                train_episodes=list(range(6)), held_out_episodes=[6, 7], pairs_path=root / "pairs.npz",
                protocol=EvalProtocol(num_episodes=2, goal_offset=5, budget=5))


class _Interrupted(RuntimeError):
    pass


@pytest.mark.parametrize("learner_cls, budget_cls", [(GCBC, GCBCBudget), (GCIQL, GCIQLBudget)])
def test_an_interrupted_training_resumes_to_the_same_weights(task, tmp_path, learner_cls, budget_cls):
    budget = budget_cls(steps=9, batch_size=8, save_every=4)

    def build(size, adim, b):
        return learner_cls(size, adim, b)

    def build_failing(size, adim, b):
        learner = learner_cls(size, adim, b)
        update, calls = learner.update, []

        def failing(*args):
            calls.append(1)
            if len(calls) == 6:  # after the checkpoint at step 4, before the end
                raise _Interrupted()
            return update(*args)

        learner.update = failing
        return learner

    straight = CellContext(work_dir=tmp_path / "a", tb_dir=tmp_path / "tb_a", device="cpu", progress=False)
    fit_offline("x", task, straight, budget, build)
    resumed = CellContext(work_dir=tmp_path / "b", tb_dir=tmp_path / "tb_b", device="cpu", progress=False)
    with pytest.raises(_Interrupted):
        fit_offline("x", task, resumed, budget, build_failing)
    assert (tmp_path / "b" / "checkpoint.pt").exists() and not (tmp_path / "b" / "final.pt").exists()
    trained = fit_offline("x", task, resumed, budget, build)
    a = torch.load(tmp_path / "a" / "final.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "final.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert not (tmp_path / "b" / "checkpoint.pt").exists()
    obs = {"pixels": np.zeros((3, 36, 36, 3), np.uint8), "goal": np.zeros((3, 36, 36, 3), np.uint8)}
    actions = trained.actor.act(obs)
    env = task.make_env()
    assert actions.shape == (3, 2) and env.action_space.contains(actions[0])
    assert trained.data_used == int(load_episodes(task.data_path).ep_len[:6].sum())


def test_bad_budget_is_named():
    with pytest.raises(ValueError, match="steps"):
        gcbc(None, None, {"steps": 0})
    with pytest.raises(ValueError, match="has no field 'epochs'"):
        gcbc(None, None, {"epochs": 3})
    with pytest.raises(ValueError, match="expectile"):
        GCIQLBudget(expectile=1.5)
