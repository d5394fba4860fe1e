"""Speed of the inverse-dynamics family (pytest-benchmark).

Run: ``python -m pytest benchmarks/test_idm_speed.py --benchmark-only -s``.

Targets (from the inverse-dynamics issue):
- one update of ``transformer_idm`` and of ``transformer_idm_masked`` at DT's size (batch 64, K=20,
  embed 128, 3 layers, 1 head, dropout 0.1, Hopper dims): the same class as ``dt_update``, i.e.
  >= 10.3 updates/s (1.5x d3rlpy's DT here); our own DT update is timed in the same run for
  comparison;
- goal lookup in evaluation: the ``dataset`` goal source (nearest of ~126k states of the best
  10% of hopper-medium's episodes, a k-d tree) must not dominate evaluation time. Measured inside
  a real evaluation of ``gcsl_idm`` (the cheapest policy, so the worst case for the share),
  briefly trained first (``LOOKUP_POLICY_UPDATES``): lookup < 50% of the evaluation's wall time.
  An untrained IDM is timed too and reported, not asserted: its random-looking actions throw the
  hopper far from every dataset state, the k-d tree's worst case in 11 dimensions (exact search
  then visits most leaves), and no one evaluates an untrained policy. ``hopper-medium`` is made
  on first use if missing (about 2.5 minutes).
"""
from __future__ import annotations

import functools
import time

import gymnasium as gym
import numpy as np
import pytest
import torch

from bench.algos.dt import DecisionTransformer, DTConfig
from bench.algos.gcsl_idm import GCSLIDMConfig, GCSLInverseDynamics
from bench.algos.transformer_idm import TransformerIDMConfig, TransformerInverseDynamics
from bench.data import Sampler, load_flat, resolve
from bench.evaluate import evaluate
from bench.perf import tune_allocator

UPDATES_PER_S_TARGET = 10.3
LOOKUP_POLICY_UPDATES = 5_000  # about 10 s: enough for the IDM to keep the hopper near its data


def _hopper_sampler() -> Sampler:
    from test_speed import _hopper_shaped_flat  # the same synthetic Hopper-shaped episodes

    return Sampler(_hopper_shaped_flat(), seed=0)


def _updates_per_s(algo, sampler, n: int = 30) -> float:
    for _ in range(3):
        algo.update(algo.sample(sampler), 0)
    start = time.perf_counter()
    for _ in range(n):
        algo.update(algo.sample(sampler), 0)
    return n / (time.perf_counter() - start)


@pytest.mark.parametrize("masked", [False, True], ids=["causal", "masked"])
def test_transformer_idm_update(benchmark, masked):
    tune_allocator()
    torch.manual_seed(0)
    sampler = _hopper_sampler()
    spec = sampler.spec(-np.ones(3), np.ones(3), 1000)
    config = TransformerIDMConfig(masked=masked, goal_source="self")  # full = DT's size
    algo = TransformerInverseDynamics(config, spec, torch.device("cpu"))
    batches = [algo.sample(sampler) for _ in range(4)]
    it = iter(range(10**9))
    benchmark.pedantic(lambda: algo.update(batches[next(it) % 4], 0), rounds=30, warmup_rounds=3)
    ours = 1.0 / benchmark.stats.stats.mean
    dt = DecisionTransformer(DTConfig(), spec, torch.device("cpu"))
    dt_rate = _updates_per_s(dt, sampler)
    benchmark.extra_info.update(updates_per_s=ours, dt_updates_per_s=dt_rate)
    print(f"\ntransformer_idm{'_masked' if masked else ''}: {ours:.2f} updates/s "
          f"(fastest {1.0 / benchmark.stats.stats.min:.2f}); bench's DT in the same run: {dt_rate:.2f}")
    assert 1.0 / benchmark.stats.stats.min >= UPDATES_PER_S_TARGET


def _lookup_share(algo, make_env) -> dict[str, float]:
    """Evaluate ``algo`` (10 envs) timing its goal lookups: share of the wall time and ms per call."""
    lookup = {"s": 0.0, "calls": 0}
    goals = algo.goal_setter.goals

    def timed_goals(observations, state):
        t = time.perf_counter()
        out = goals(observations, state)
        lookup["s"] += time.perf_counter() - t
        lookup["calls"] += 1
        return out

    algo.goal_setter.goals = timed_goals
    try:
        res = evaluate(algo, make_env, episodes=10, seed=0, mode="sync")
    finally:
        algo.goal_setter.goals = goals
    return {"share": lookup["s"] / res.seconds, "ms_per_step": 1e3 * lookup["s"] / lookup["calls"],
            "seconds": res.seconds, "mean_return": float(np.mean(res.returns))}


def test_dataset_goal_lookup_share_of_evaluation(benchmark):
    tune_allocator()
    torch.manual_seed(0)
    ds = resolve("hopper-medium")
    sampler = Sampler(load_flat(ds.dataset_id, ds.sha256), seed=0)
    env = gym.make("Hopper-v5")
    spec = sampler.spec(env.action_space.low, env.action_space.high, 1000)
    env.close()
    algo = GCSLInverseDynamics(GCSLIDMConfig(goal_source="dataset"), spec, torch.device("cpu"))
    start = time.perf_counter()
    algo.attach_dataset(sampler)
    index_s = time.perf_counter() - start
    # Fixed-length episodes (no early termination) so that every round times the same work.
    make_env = functools.partial(gym.make, "Hopper-v5", terminate_when_unhealthy=False,
                                 max_episode_steps=300)
    untrained = _lookup_share(algo, make_env)
    for _ in range(LOOKUP_POLICY_UPDATES):
        algo.update(algo.sample(sampler), 0)
    trained = benchmark.pedantic(lambda: _lookup_share(algo, make_env), rounds=1, iterations=1)
    benchmark.extra_info.update(index_seconds=index_s, indexed_states=algo.goal_setter.indexed_states,
                                trained=trained, untrained=untrained)
    print(f"\ndataset goals: index of {algo.goal_setter.indexed_states:,} states built in "
          f"{index_s:.2f} s; gcsl_idm after {LOOKUP_POLICY_UPDATES:,} updates: lookup "
          f"{trained['ms_per_step']:.2f} ms per step of 10 envs = {100 * trained['share']:.0f}% of "
          f"the evaluation ({trained['seconds']:.2f} s for 10 x 300 steps, mean return "
          f"{trained['mean_return']:.0f}); untrained (worst case, not asserted): "
          f"{untrained['ms_per_step']:.2f} ms = {100 * untrained['share']:.0f}%")
    assert trained["share"] < 0.5
