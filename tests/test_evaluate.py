import functools

import gymnasium as gym
import numpy as np
import pytest
import torch

from bench.data.catalog import RefScores
from bench.evaluate import PolicyAgent, evaluate, evaluate_sequential, normalized_score


def _short_hopper() -> gym.Env:
    return gym.make("Hopper-v5", max_episode_steps=60)


def _elementwise_policy(obs: np.ndarray) -> np.ndarray:
    # Per-row elementwise maths only: bit-identical whatever the batch size.
    return np.tanh(obs[:, 2:5] * np.array([1.5, -0.7, 0.9]) + 0.1).astype(np.float32)


def test_normalized_score():
    ref = RefScores(10.0, 110.0, "t")
    assert normalized_score(10.0, ref) == 0.0
    assert normalized_score(110.0, ref) == 100.0
    np.testing.assert_allclose(normalized_score(np.array([60.0, 160.0]), ref), [50.0, 150.0])


@pytest.mark.parametrize("mode, num_envs", [("sync", None), ("async", 3)])
def test_vectorized_equals_sequential(mode, num_envs):
    agent = PolicyAgent(_elementwise_policy)
    seq = evaluate_sequential(agent, _short_hopper, episodes=7, seed=5)
    vec = evaluate(agent, _short_hopper, episodes=7, seed=5, mode=mode, num_envs=num_envs)
    np.testing.assert_array_equal(vec.returns, seq.returns)
    np.testing.assert_array_equal(vec.lengths, seq.lengths)
    assert len(set(seq.lengths.tolist())) > 1, "episodes of different lengths are covered"


def test_vectorized_equals_sequential_for_a_stateful_dt_policy():
    from bench.algos.dt import DecisionTransformer, DTConfig
    from bench.config import make_config
    from bench.data.sampler import DatasetSpec

    torch.manual_seed(0)
    spec = DatasetSpec(11, 3, np.zeros(11, np.float32), np.ones(11, np.float32),
                       -np.ones(3, np.float32), np.ones(3, np.float32), 60)
    algo = DecisionTransformer(make_config(DTConfig, "smoke"), spec, torch.device("cpu"))
    seq = evaluate_sequential(algo, _short_hopper, episodes=4, seed=1, condition="target=3600")
    vec = evaluate(algo, _short_hopper, episodes=4, seed=1, condition="target=3600", mode="sync")
    # Batched matmuls may round differently from batch-1 ones; returns agree closely.
    np.testing.assert_allclose(vec.returns, seq.returns, rtol=1e-3, atol=1e-2)
    np.testing.assert_array_equal(vec.lengths, seq.lengths)


def test_partial_last_round_and_seeds():
    agent = PolicyAgent(_elementwise_policy)
    a = evaluate(agent, _short_hopper, episodes=5, seed=0, mode="sync", num_envs=2)
    b = evaluate(agent, _short_hopper, episodes=5, seed=0, mode="sync", num_envs=5)
    np.testing.assert_array_equal(a.returns, b.returns)
    c = evaluate(agent, _short_hopper, episodes=5, seed=1, mode="sync")
    assert not np.array_equal(a.returns, c.returns)


class _CountingWrapper(gym.Wrapper):
    steps = 0

    def step(self, action):
        _CountingWrapper.steps += 1
        return self.env.step(action)


def test_finished_episodes_are_not_simulated_further():
    _CountingWrapper.steps = 0
    res = evaluate(PolicyAgent(_elementwise_policy), lambda: _CountingWrapper(_short_hopper()),
                   episodes=6, seed=5, mode="sync")
    assert len(set(res.lengths.tolist())) > 1
    assert _CountingWrapper.steps == res.lengths.sum()


# -- sharded evaluation: episodes split over forked processes, one torch thread each -----------

def test_sharded_equals_sequential_and_keeps_episode_order():
    agent = PolicyAgent(_elementwise_policy, batch_invariant=True)
    seq = evaluate_sequential(agent, _short_hopper, episodes=7, seed=5)
    for shards, num_envs in [(2, None), (3, 2)]:  # uneven blocks; several rounds per shard
        res = evaluate(agent, _short_hopper, episodes=7, seed=5, mode="sharded", shards=shards,
                       num_envs=num_envs)
        np.testing.assert_array_equal(res.returns, seq.returns)
        np.testing.assert_array_equal(res.lengths, seq.lengths)


def test_sharded_dt_matches_one_process_bit_for_bit():
    from bench.algos.dt import DecisionTransformer, DTConfig
    from bench.config import make_config
    from bench.data.sampler import DatasetSpec

    torch.manual_seed(0)
    spec = DatasetSpec(11, 3, np.zeros(11, np.float32), np.ones(11, np.float32),
                       -np.ones(3, np.float32), np.ones(3, np.float32), 60)
    algo = DecisionTransformer(make_config(DTConfig, "smoke"), spec, torch.device("cpu"))
    threads = torch.get_num_threads()
    one = evaluate(algo, _short_hopper, episodes=4, seed=1, condition="target=3600", mode="sync")
    sharded = evaluate(algo, _short_hopper, episodes=4, seed=1, condition="target=3600",
                       mode="sharded", shards=2)
    np.testing.assert_array_equal(sharded.returns, one.returns)
    assert torch.get_num_threads() == threads  # only the workers run on one thread


def test_only_batch_invariant_agents_are_sharded(monkeypatch):
    from bench.evaluate import shard_count

    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert shard_count(PolicyAgent(_elementwise_policy, batch_invariant=True), 10) == 4
    assert shard_count(PolicyAgent(_elementwise_policy, batch_invariant=True), 3) == 3
    assert shard_count(PolicyAgent(_elementwise_policy), 10) == 1  # not declared batch-invariant
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert shard_count(PolicyAgent(_elementwise_policy, batch_invariant=True), 10) == 1

    # A random policy asked to shard runs in one process: its draws stay as they were.
    def random_policy(obs, rng=np.random.default_rng(0)):
        return rng.uniform(-1, 1, (len(obs), 3)).astype(np.float32)

    def fresh():
        return PolicyAgent(functools.partial(random_policy, rng=np.random.default_rng(0)))

    a = evaluate(fresh(), _short_hopper, episodes=4, seed=0, mode="sync")
    b = evaluate(fresh(), _short_hopper, episodes=4, seed=0, mode="sharded", shards=2)
    np.testing.assert_array_equal(a.returns, b.returns)


class _FailingAgent(PolicyAgent):
    def act(self, observations, state):
        raise ValueError("policy exploded in the worker")


def test_a_failing_shard_raises_with_the_workers_traceback():
    agent = _FailingAgent(_elementwise_policy, batch_invariant=True)
    with pytest.raises(RuntimeError, match="policy exploded in the worker"):
        evaluate(agent, _short_hopper, episodes=4, seed=0, mode="sharded", shards=2)


def test_algorithms_shard_only_when_declared_batch_invariant():
    from bench.algos.bc import BehaviourCloning
    from bench.algos.dt import DecisionTransformer

    assert DecisionTransformer.batch_invariant_act
    assert not BehaviourCloning.batch_invariant_act  # an MLP's last bits depend on the batch's row count
