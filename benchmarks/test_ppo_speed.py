"""PPO iteration speed against Stable-Baselines3 (benchmark-only dependency: the `benchmarks`
extra). Target (Hopper reference-datasets issue): env steps/s of a full iteration (rollout + update,
2048 steps, 10 epochs, 32 minibatches, Hopper-v5) at least SB3's with the same settings, measured
in the same run."""
from __future__ import annotations

import functools
import time

import gymnasium as gym
import pytest
import torch

from bench.algos.ppo import PPO, PPOConfig
from bench.config import make_config
from bench.data.sampler import TaskSpec
from bench.perf import tune_allocator

ITERATIONS = 3  # timed; one more untimed warm-up iteration before


def _bench_ppo_steps_per_s() -> float:
    tune_allocator()  # as `bench run` does
    torch.manual_seed(0)
    make = functools.partial(gym.make, "Hopper-v5")
    spec = TaskSpec.from_env(make())
    algo = PPO(make_config(PPOConfig, "full"), spec, torch.device("cpu"))
    algo.setup(make, 0)
    algo.train_iteration()
    start = time.perf_counter()
    for _ in range(ITERATIONS):
        algo.train_iteration()
    return ITERATIONS * 2048 / (time.perf_counter() - start)


def _sb3_steps_per_s() -> float:
    sb3 = pytest.importorskip("stable_baselines3", reason="pip install -e '.[benchmarks]'")
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.manual_seed(0)
    venv = VecNormalize(make_vec_env("Hopper-v5", n_envs=1, seed=0), norm_obs=True, norm_reward=True)
    model = sb3.PPO("MlpPolicy", venv, n_steps=2048, batch_size=64, n_epochs=10, learning_rate=3e-4,
                    gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, vf_coef=0.5,
                    max_grad_norm=0.5, device="cpu", seed=0, verbose=0)
    model.learn(total_timesteps=2048)  # warm-up iteration
    start = time.perf_counter()
    model.learn(total_timesteps=ITERATIONS * 2048, reset_num_timesteps=False)
    return ITERATIONS * 2048 / (time.perf_counter() - start)


def test_ppo_iteration_vs_sb3(benchmark):
    ours = benchmark.pedantic(_bench_ppo_steps_per_s, rounds=1, iterations=1)
    theirs = _sb3_steps_per_s()
    benchmark.extra_info.update(env_steps_per_s=ours, sb3_env_steps_per_s=theirs, ratio=ours / theirs)
    print(f"\nPPO iteration (Hopper-v5, 2048 steps, 10 epochs, 32 minibatches): bench {ours:.0f} "
          f"env steps/s, SB3 {theirs:.0f}/s, ratio {ours / theirs:.2f}x")
    assert ours >= theirs
