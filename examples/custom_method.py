"""Add your own agent to the comparison: register a method that returns an SB3-protocol predictor.

    python experiments/compare.py --plugin examples.custom_method --methods random,lewm,sb3-a2c

Any object with ``predict(obs, state=None, episode_start=None, deterministic=False)`` works
(a Stable-Baselines3 model, a LeWMAgent, your own policy); ``PredictorActor`` batches it for the
evaluation, which runs it on the same start/goal pairs as every other method. The method below
trains SB3's A2C online; the budget keys come from ``--set sb3-a2c.timesteps=...``.
"""

import time

from experiments.baselines import PredictorActor, Trained, register


@register("sb3-a2c")
def sb3_a2c(task, ctx, budget):
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import configure

    env = make_vec_env(lambda: task.make_env(max_episode_steps=task.protocol.budget), n_envs=4, seed=task.seed)
    model = A2C("MultiInputPolicy", env, seed=task.seed, device=ctx.device)
    model.set_logger(configure(str(ctx.tb_dir), ["tensorboard"]))  # curves land in the run's TensorBoard dir
    tic = time.perf_counter()
    model.learn(total_timesteps=int(budget.get("timesteps", 2000)))
    return Trained(actor=PredictorActor(model), data_used=model.num_timesteps, data_kind="env interactions",
                   train_seconds=time.perf_counter() - tic, params=sum(p.numel() for p in model.policy.parameters()))
