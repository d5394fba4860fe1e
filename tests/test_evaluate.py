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
