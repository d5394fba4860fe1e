"""Speed of the Car Racer family (pytest-benchmark): making latent data and evaluating in the
latent env. Needs the committed encoder (``assets/carracing/encoder.pt``).

Run: ``python -m pytest benchmarks/test_carracing_speed.py --benchmark-only -s`` (about 5 minutes).

- generation: env steps/s of ``make_carracing_dataset`` (expert driver, 4 CarRacing-v3 worker
  processes, frames encoded in batches here, Minari file written) against raw CarRacing-v3 stepped
  in one process with the same driver: what encoding and writing cost on top of the simulator,
  and what the worker processes win on 2 cores;
- evaluation: 10 episodes of a policy acting on latents, vectorized (the evaluator's default for
  this env: worker processes run CarRacing, one batched encoder call per step) against the
  sequential reference loop (one latent env, one episode after another).

``BENCH_CAR_EPISODES`` (default 8 for generation) and ``BENCH_CAR_STEPS`` (episode length,
default 1,000) scale them down for a quick look.
"""
from __future__ import annotations

import functools
import os
import time

import gymnasium as gym
import numpy as np
import pytest
from conftest import fresh_data_roots

EPISODES = int(os.environ.get("BENCH_CAR_EPISODES", "8"))
STEPS = int(os.environ.get("BENCH_CAR_STEPS", "1000"))


@pytest.fixture(scope="module")
def car_root(tmp_path_factory):
    with fresh_data_roots(tmp_path_factory.mktemp("car")) as root:
        yield root


def _raw_driver_steps(episodes: int) -> tuple[int, float]:
    from bench.carracing.data import driver_env

    env = driver_env("expert", STEPS)
    steps, start = 0, time.perf_counter()
    for i in range(episodes):
        _, info = env.reset(seed=i)
        done = False
        while not done:
            _, _, term, trunc, info = env.step(info["driver_action"])
            steps += 1
            done = term or trunc
    return steps, time.perf_counter() - start


def test_generation_vs_raw_stepping(benchmark, car_root):
    from bench.carracing.data import make_carracing_dataset

    raw_steps, raw_s = _raw_driver_steps(max(1, EPISODES // 4))

    def make():
        start = time.perf_counter()
        meta = make_carracing_dataset("bench-benchmark/carracing/expert-v0", "expert",
                                      num_episodes=EPISODES, seed=0, max_episode_steps=STEPS)
        return meta["total_steps"], time.perf_counter() - start

    steps, seconds = benchmark.pedantic(make, rounds=1, iterations=1)
    raw_rate, rate = raw_steps / raw_s, steps / seconds
    benchmark.extra_info.update(raw_steps_per_s=raw_rate, generation_steps_per_s=rate,
                                steps=steps, seconds=seconds)
    print(f"\nraw CarRacing-v3 + driver, 1 process: {raw_rate:.0f} steps/s; "
          f"make_carracing_dataset ({EPISODES} episodes, {steps:,} steps, 4 workers, encoding, "
          f"writing): {rate:.0f} steps/s = {rate / raw_rate:.2f}x raw; "
          f"300k steps would take {3e5 / rate / 60:.1f} min")
    assert rate > raw_rate  # the workers must more than pay for encoding and writing


def test_evaluation_vectorized_vs_sequential(benchmark, car_root):
    from bench.evaluate import PolicyAgent, evaluate, evaluate_sequential

    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.1, (64, 3)).astype(np.float32)

    def policy(obs):  # a fixed linear policy on the latents (what matters is the env cost)
        a = np.tanh(obs @ w)
        a[:, 1:] = np.clip(a[:, 1:] + 0.3, 0, 1)
        return a

    make_env = functools.partial(gym.make, "bench/CarRacingLatent-v0", max_episode_steps=STEPS)
    agent = PolicyAgent(policy)
    vec = benchmark.pedantic(lambda: evaluate(agent, make_env, episodes=10, seed=0), rounds=1,
                             iterations=1)
    seq = evaluate_sequential(agent, make_env, episodes=10, seed=0)
    np.testing.assert_allclose(vec.returns, seq.returns, rtol=1e-3, atol=1e-2)
    benchmark.extra_info.update(vectorized_s=vec.seconds, sequential_s=seq.seconds)
    print(f"\n10 latent Car Racer episodes ({int(vec.lengths.sum()):,} steps): vectorized "
          f"{vec.seconds:.1f} s, sequential {seq.seconds:.1f} s "
          f"({seq.seconds / vec.seconds:.2f}x)")
    assert vec.seconds < seq.seconds
