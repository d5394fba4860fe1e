import functools

import gymnasium as gym
import numpy as np
import pytest
import torch

from bench.algos.dt import TargetReturn
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
def test_vectorized_equals_sequential(mode, num_envs, monkeypatch):
    import bench.evaluate

    made = []

    class _SpiedWorkerEnvs(bench.evaluate._WorkerEnvs):
        def __init__(self, *args, **kwargs):
            made.append(args[1])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(bench.evaluate, "_WorkerEnvs", _SpiedWorkerEnvs)
    agent = PolicyAgent(_elementwise_policy)
    seq = evaluate_sequential(agent, _short_hopper, episodes=7, seed=5)
    vec = evaluate(agent, _short_hopper, episodes=7, seed=5, mode=mode, num_envs=num_envs)
    assert made == ([3] if mode == "async" else []), "async steps its envs in worker processes"
    np.testing.assert_array_equal(vec.returns, seq.returns)
    np.testing.assert_array_equal(vec.lengths, seq.lengths)
    assert len(set(seq.lengths.tolist())) > 1, "episodes of different lengths are covered"


def test_vectorized_equals_sequential_for_a_stateful_dt_policy():
    from bench.algos.dt import DecisionTransformer, DTConfig
    from bench.config import make_config
    from bench.data.sampler import TaskSpec

    torch.manual_seed(0)
    spec = TaskSpec(11, 3, np.zeros(11, np.float32), np.ones(11, np.float32),
                       -np.ones(3, np.float32), np.ones(3, np.float32), 60)
    algo = DecisionTransformer(make_config(DTConfig, "smoke"), spec, torch.device("cpu"))
    # 6 envs x 15 tokens: products of 90 rows, which acting leaves unpadded (UNPADDED_ROWS), while
    # one env's 15 rows are padded; batched = one env at a time, exactly.
    seq = evaluate_sequential(algo, _short_hopper, episodes=6, seed=1, condition=TargetReturn(3600.0))
    vec = evaluate(algo, _short_hopper, episodes=6, seed=1, condition=TargetReturn(3600.0), mode="sync")
    np.testing.assert_array_equal(vec.returns, seq.returns)
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
    from bench.data.sampler import TaskSpec

    torch.manual_seed(0)
    spec = TaskSpec(11, 3, np.zeros(11, np.float32), np.ones(11, np.float32),
                       -np.ones(3, np.float32), np.ones(3, np.float32), 60)
    algo = DecisionTransformer(make_config(DTConfig, "smoke"), spec, torch.device("cpu"))
    threads = torch.get_num_threads()
    one = evaluate(algo, _short_hopper, episodes=6, seed=1, condition=TargetReturn(3600.0), mode="sync")
    sharded = evaluate(algo, _short_hopper, episodes=6, seed=1, condition=TargetReturn(3600.0),
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
    from bench.algos.transformer_idm import TransformerInverseDynamics

    def declared(cls: type) -> bool:  # what Algorithm.batch_invariant_act reads
        return getattr(cls.act, "row_invariant", False)

    assert declared(DecisionTransformer)  # row_invariant_act
    assert declared(BehaviourCloning)
    assert not declared(TransformerInverseDynamics)  # its attention's bits depend on the batch


def _hopper_spec():
    from bench.data.sampler import TaskSpec

    rng = np.random.default_rng(3)
    return TaskSpec(11, 3, rng.normal(0, 0.5, 11).astype(np.float32),
                       rng.uniform(0.5, 2.0, 11).astype(np.float32),
                       -np.ones(3, np.float32), np.ones(3, np.float32), 60, env_id="Hopper-v5")


def _mlp_agents():
    """Every agent that declares batch_invariant_act through row_invariant_act, at its default
    (full) network sizes, randomly initialised."""
    from bench.algos.bc import BCConfig, BehaviourCloning
    from bench.algos.gcsl_idm import GCSLIDMConfig, GCSLInverseDynamics
    from bench.algos.gs_ppo import GoalSetterPPO, GoalSetterPPOConfig
    from bench.algos.ppo import PPO, PPOConfig

    cpu = torch.device("cpu")
    torch.manual_seed(0)
    yield "bc", BehaviourCloning(BCConfig(), _hopper_spec(), cpu)
    yield "gcsl_idm", GCSLInverseDynamics(GCSLIDMConfig(), _hopper_spec(), cpu)
    yield "gcsl_idm with an encoder", GCSLInverseDynamics(GCSLIDMConfig(state_encoder=(256,)),
                                                          _hopper_spec(), cpu)
    for cls, config in [(PPO, PPOConfig(num_envs=1)),
                        (GoalSetterPPO, GoalSetterPPOConfig(num_envs=1)),
                        (GoalSetterPPO, GoalSetterPPOConfig(num_envs=1, emit_actions=True))]:
        algo = cls(config, _hopper_spec(), cpu)
        algo.setup(_short_hopper, 0)
        yield cls.__name__, algo


def test_mlp_agents_act_the_same_whatever_the_batch_and_thread_count():
    """The property that lets evaluation shard them: an env's action has the same bits in a
    batch of 10, alone, and on one or two threads (plain MKL products differ in the last bits
    under 12 rows on two threads)."""
    obs = np.random.default_rng(0).normal(0, 1, (10, 11)).astype(np.float32)
    threads = torch.get_num_threads()
    try:
        for name, agent in _mlp_agents():
            assert agent.batch_invariant_act, name
            for condition in agent.eval_conditions():
                torch.set_num_threads(2)
                batch, _ = agent.act(obs, agent.initial_state(10, condition))
                torch.set_num_threads(1)
                alone = np.concatenate([agent.act(obs[i:i + 1], agent.initial_state(1, condition))[0]
                                        for i in range(10)])
                np.testing.assert_array_equal(batch, alone, err_msg=f"{name} {condition}")
    finally:
        torch.set_num_threads(threads)


def test_row_padded_linears_make_a_plain_network_row_invariant():
    from torch import nn

    from bench.nn.layers import RowPaddedLinears

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(11, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                        nn.Linear(256, 3))
    x = torch.randn(20, 11)
    with torch.no_grad(), RowPaddedLinears():
        batch = net(x)
        alone = torch.cat([net(x[i:i + 1]) for i in range(20)])
    torch.testing.assert_close(batch, alone, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(net(x), batch, rtol=1e-5, atol=1e-6)  # the same function


def test_sharded_bc_matches_the_sequential_loop_bit_for_bit():
    from bench.algos.bc import BCConfig, BehaviourCloning

    torch.manual_seed(0)
    agent = BehaviourCloning(BCConfig(), _hopper_spec(), torch.device("cpu"))
    seq = evaluate_sequential(agent, _short_hopper, episodes=5, seed=2)
    sharded = evaluate(agent, _short_hopper, episodes=5, seed=2, mode="sharded", shards=2)
    np.testing.assert_array_equal(sharded.returns, seq.returns)
    np.testing.assert_array_equal(sharded.lengths, seq.lengths)


class _DyingAgent(PolicyAgent):
    def act(self, observations, state):
        import os

        os._exit(3)


def test_a_dying_shard_is_reported_with_its_exit_code():
    agent = _DyingAgent(_elementwise_policy, batch_invariant=True)
    with pytest.raises(RuntimeError, match=r"died \(exit code 3\)"):
        evaluate(agent, _short_hopper, episodes=4, seed=0, mode="sharded", shards=2)


class _StuckAgent(PolicyAgent):
    def act(self, observations, state):
        import time

        time.sleep(60)  # as a deadlocked worker would (the workers are killed when it gives up)
        return super().act(observations, state)


def test_a_silent_shard_is_given_up_on_not_waited_for_forever(monkeypatch):
    import time

    import bench.evaluate

    monkeypatch.setattr(bench.evaluate, "SHARD_SILENCE_S", 1.0)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"sent nothing for 1 s.*--eval-mode sync"):
        evaluate(_StuckAgent(_elementwise_policy, batch_invariant=True), _short_hopper,
                 episodes=4, seed=0, mode="sharded", shards=2)
    assert time.monotonic() - start < 30


class _UsageErrorAgent(PolicyAgent):
    def act(self, observations, state):
        from bench.errors import UsageError

        raise UsageError("goal_offset is too large; lower it with --set goal_offset=5")


def test_a_shards_message_for_the_user_reaches_the_cli_as_it_is():
    """A BenchError raised in a worker is raised as itself (the CLI prints it and exits with its
    code), not wrapped in a RuntimeError (which the CLI shows as a traceback)."""
    from bench.errors import UsageError

    agent = _UsageErrorAgent(_elementwise_policy, batch_invariant=True)
    with pytest.raises(UsageError, match="lower it with --set goal_offset=5"):
        evaluate(agent, _short_hopper, episodes=4, seed=0, mode="sharded", shards=2)
