"""Goal-task evaluation speed (issue 28), pytest-benchmark. Target: OGBench's 5 task goals x 10
episodes of ``pointmaze-medium-navigate`` in one vectorized pass (``evaluate``, as ``bench run``
does: 50 envs, the episodes sharded over one process per torch thread) at >= 3x the sequential
loop (``evaluate_sequential``: one env, one episode at a time), with the same successes, task by
task. The agent is ``hiql`` at its `full` size (the costliest of the goal-conditioned
policies to act with: two 512-512-512 networks per action), untrained: its episodes mostly run
the full 1,000 steps, the evaluation's worst case. The loops alternate and each keeps its fastest
round (this VM's speed drifts within a minute). BENCH_GOAL_EVAL_ROUNDS sets the rounds (default 2).
"""
from __future__ import annotations

import functools
import os

import gymnasium as gym
import numpy as np
import torch

import bench  # noqa: F401  (registers bench/pointmaze-*-navigate-v0)
from bench.algos.hiql import HIQL, HIQLConfig
from bench.data.sampler import TaskSpec
from bench.envs.goal_tasks import success_summary
from bench.evaluate import evaluate, evaluate_sequential

ROUNDS = int(os.environ.get("BENCH_GOAL_EVAL_ROUNDS", "2"))
ENV_ID = "bench/pointmaze-medium-navigate-v0"
EPISODES = 50  # 5 tasks x 10


def test_goal_eval_vectorized_vs_sequential(benchmark):
    torch.manual_seed(0)
    make_env = functools.partial(gym.make, ENV_ID)
    spec = TaskSpec.from_env(make_env())
    agent = HIQL(HIQLConfig(), spec, torch.device("cpu"))
    vec_s, seq_s = [], []

    def one_round():
        vec = evaluate(agent, make_env, episodes=EPISODES, seed=0, mode="auto", num_envs=EPISODES)
        seq = evaluate_sequential(agent, make_env, episodes=EPISODES, seed=0)
        np.testing.assert_array_equal(vec.returns, seq.returns)
        np.testing.assert_array_equal(vec.lengths, seq.lengths)
        vec_s.append(vec.seconds)
        seq_s.append(seq.seconds)
        return vec

    vec = benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    speedup = min(seq_s) / min(vec_s)
    success = success_summary(vec.returns, 0, 5)
    benchmark.extra_info.update(vectorized_s=vec_s, sequential_s=seq_s, speedup=speedup,
                                success=success, torch_threads=torch.get_num_threads())
    print(f"\n5 tasks x 10 episodes of {ENV_ID}, hiql full size, best of {ROUNDS}: vectorized "
          f"{min(vec_s):.2f}s, sequential {min(seq_s):.2f}s: {speedup:.2f}x (success "
          f"{success['rate']:.2f}, steps {int(vec.lengths.sum())})")
    assert speedup >= 3.0, f"vectorized goal evaluation is {speedup:.2f}x the sequential loop"
