import functools
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from bench.algos.ppo import PPO, PPOConfig, RunningMeanStd, gae, gaussian_log_prob
from bench.config import make_config
from bench.data.sampler import TaskSpec
from bench.evaluate import PolicyAgent, evaluate
from bench.run import RunRequest, execute, run_dir
from conftest import SimulatedKill, kill_after
from conftest import run_cli


def test_gaussian_log_prob_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean, log_std, x = (torch.randn(5, 3, generator=g) for _ in range(3))
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(gaussian_log_prob(x, mean, log_std), expected)


def test_gae_by_hand():
    # One env, 3 steps, episode ends after step 1; gamma 0.5, lambda 1 (plain discounted returns).
    rewards = np.array([[1.0], [2.0], [4.0]])
    values = np.zeros((3, 1))
    dones = np.array([[0.0], [1.0], [0.0]])
    adv, ret = gae(rewards, values, dones, last_value=np.array([8.0]), gamma=0.5, lam=1.0)
    np.testing.assert_allclose(ret[:, 0], [1 + 0.5 * 2, 2, 4 + 0.5 * 8])
    np.testing.assert_allclose(adv, ret)  # values are zero


def test_gae_by_hand_with_values_and_lambda():
    """The value baseline, its bootstrap from the next step's value and lambda's decay, by hand:
    gamma 0.5, lambda 0.5, episode ends after step 1.
    t=2: delta = 4 + 0.5*8 - 2 = 6,            A = 6
    t=1: delta = 2 - 1 = 1 (no bootstrap),      A = 1
    t=0: delta = 1 + 0.5*1 - 0.5 = 1,           A = 1 + 0.5*0.5*1 = 1.25"""
    rewards = np.array([[1.0], [2.0], [4.0]])
    values = np.array([[0.5], [1.0], [2.0]])
    dones = np.array([[0.0], [1.0], [0.0]])
    adv, ret = gae(rewards, values, dones, last_value=np.array([8.0]), gamma=0.5, lam=0.5)
    np.testing.assert_allclose(adv[:, 0], [1.25, 1.0, 6.0])
    np.testing.assert_allclose(ret[:, 0], [1.75, 2.0, 8.0])


def test_running_mean_std_matches_numpy():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3, 2, size=(n, 4)) for n in (1, 7, 50)]
    rms = RunningMeanStd((4,))
    for c in chunks:
        rms.update(c)
    data = np.concatenate(chunks)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-3)


def test_ppo_learns_inverted_pendulum():
    torch.manual_seed(0)
    make = functools.partial(gym.make, "InvertedPendulum-v5")
    env = make()
    spec = TaskSpec(4, 1, np.zeros(4, np.float32), np.ones(4, np.float32),
                       env.action_space.low, env.action_space.high, 1000)
    cfg = make_config(PPOConfig, "full", {"total_env_steps": "16384", "rollout_steps": "1024",
                                          "num_minibatches": "16"})
    algo = PPO(cfg, spec, torch.device("cpu"))
    algo.setup(make, 0)
    while algo.env_steps < cfg.total_env_steps:
        algo.train_iteration()
    trained = evaluate(algo, make, episodes=5, seed=123).mean_return
    rng = np.random.default_rng(0)
    random = evaluate(PolicyAgent(lambda o: rng.uniform(-3, 3, (len(o), 1))), make,
                      episodes=5, seed=123).mean_return
    assert trained > 20 * random and trained > 200


def _metrics(directory):
    rows = [json.loads(l) for l in (directory / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def test_online_resume_is_bit_identical(tmp_path):
    kw = dict(algo="ppo", dataset=None, env="Hopper-v5", seed=1, budget="smoke",
              overrides={"total_env_steps": "1536"}, eval_episodes=2)
    full = execute(RunRequest(out=tmp_path / "a", **kw), log=lambda m: None)
    with pytest.raises(SimulatedKill):
        execute(RunRequest(out=tmp_path / "b", **kw), log=lambda m: None,
                callbacks=kill_after(1280))
    # Killed between checkpoints (the last at 1024 env steps, envs mid-episode): the resumed run
    # redoes 1024..1280 from restored simulator states and must match step for step.
    resumed = execute(RunRequest(out=tmp_path / "b", resume=True, **kw), log=lambda m: None)
    assert _metrics(run_dir(RunRequest(out=tmp_path / "a", **kw))) == \
        _metrics(run_dir(RunRequest(out=tmp_path / "b", **kw)))
    assert resumed["episode_returns"] == full["episode_returns"]
    assert full["kind"] == "online" and full["env"] == "Hopper-v5"
    assert full["normalized_score"] is not None  # Hopper-v5 has (provisional) reference scores


def test_ppo_through_the_cli(tmp_path):
    proc = run_cli("run", "--algo", "ppo", "--env", "Hopper-v5", "--budget", "smoke",
                   "--out", str(tmp_path), "--eval-episodes", "2")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "Hopper-v5" / "ppo" / "smoke" / "seed_0" / "result.json").exists()


@pytest.mark.parametrize("args, needle", [
    (["--algo", "bc", "--env", "Hopper-v5"], "use --dataset"),
    (["--algo", "ppo", "--env", "Hoper-v5"], "Did you mean"),
    (["--algo", "ppo"], "exactly one of --dataset or --env"),
])
def test_env_usage_errors(args, needle, tmp_path):
    proc = run_cli("run", *args, "--out", str(tmp_path))
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr


def test_snapshots_act_like_the_trained_algorithm(tmp_path):
    from bench.policies import GaussianMLPPolicy

    kw = dict(algo="ppo", dataset=None, env="Hopper-v5", seed=0, budget="smoke",
              overrides={"snapshot_every": "512"}, eval_episodes=2, out=tmp_path)
    result = execute(RunRequest(**kw), log=lambda m: None)
    snaps = sorted((run_dir(RunRequest(**kw)) / "snapshots").glob("step_*.pt"))
    assert [p.name for p in snaps] == ["step_000000512.pt", "step_000001024.pt"]
    policy = GaussianMLPPolicy.load(snaps[-1])
    make = functools.partial(gym.make, "Hopper-v5")
    from bench.run import eval_seed

    # The run evaluated its actor under RowPaddedLinears (batch- and thread-invariant bits); the
    # same function from the snapshot file gives the same episodes, and the plain standalone
    # policy (which makes datasets) the same to rounding.
    from bench.nn.layers import RowPaddedLinears

    def padded(obs):
        with RowPaddedLinears():
            return policy(obs)

    replay = evaluate(PolicyAgent(padded), make, episodes=2, seed=eval_seed(0))
    assert replay.returns.tolist() == result["episode_returns"]
    plain = evaluate(PolicyAgent(policy), make, episodes=2, seed=eval_seed(0))
    np.testing.assert_allclose(plain.returns, result["episode_returns"], rtol=1e-4)
    noisy = GaussianMLPPolicy.load(snaps[-1], deterministic=False, seed=1)
    obs = np.zeros((4, 11))
    assert not np.allclose(noisy(obs), policy(obs))


class _ConstantEnv(gym.Env):
    """Reward 1 every step, never terminates (a TimeLimit truncates it)."""
    observation_space = gym.spaces.Box(-1, 1, (2,))
    action_space = gym.spaces.Box(-1, 1, (1,))

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 1.0, False, False, {}


def test_time_limit_bootstrap_is_added_after_reward_scaling(monkeypatch):
    """At a truncation the reward gets γ·V(final observation) in the critic's units: not clipped
    with the env reward (clip_reward 10 would cut a value of 30 to 10) and not counted in the
    running return that sets the reward scale."""
    import bench.algos.ppo as ppo_module

    make = lambda: gym.wrappers.TimeLimit(_ConstantEnv(), 4)  # noqa: E731
    config = PPOConfig(rollout_steps=4, num_envs=1, num_minibatches=1, update_epochs=1,
                       total_env_steps=4)
    algo = PPO(config, TaskSpec.from_env(make()), torch.device("cpu"))
    algo.setup(make, 0)
    algo.ret_rms.var, algo.ret_rms.count = np.array(1.0), 1e9  # reward scale ≈ 1, frozen
    with torch.no_grad():  # the critic says 30 everywhere
        algo.net.critic[-1].weight.zero_()
        algo.net.critic[-1].bias.fill_(30.0)
    seen = {}

    def spy(rewards, values, dones, last_value, gamma, lam):
        seen.update(rewards=rewards.copy(), dones=dones.copy())
        return gae(rewards, values, dones, last_value, gamma, lam)

    monkeypatch.setattr(ppo_module, "gae", spy)
    algo.train_iteration()
    assert seen["dones"][:, 0].tolist() == [0, 0, 0, 1]
    np.testing.assert_allclose(seen["rewards"][:3, 0], 1.0, rtol=1e-5)
    np.testing.assert_allclose(seen["rewards"][3, 0], 1.0 + config.gamma * 30.0, rtol=1e-5)
    np.testing.assert_allclose(algo._ret, [1.0])  # the new episode's return holds no bootstrap


def test_learning_rate_anneals_over_the_iterations_the_run_makes():
    """total_env_steps not a multiple of an iteration's: the run makes ceil(...)
    iterations, and the last still learns (its lr is above 0)."""
    make = lambda: gym.wrappers.TimeLimit(_ConstantEnv(), 50)  # noqa: E731
    config = PPOConfig(rollout_steps=8, num_envs=1, num_minibatches=1, update_epochs=1,
                       total_env_steps=20)  # 3 iterations of 8 steps
    algo = PPO(config, TaskSpec.from_env(make()), torch.device("cpu"))
    algo.setup(make, 0)
    lrs = []
    while algo.env_steps < config.total_env_steps:
        algo.train_iteration()
        lrs.append(algo.optimizer.param_groups[0]["lr"])
    assert len(lrs) == 3 and lrs[-1] > 0
    assert lrs[0] > lrs[1] > lrs[2], lrs  # a constant lr passed the old check
    np.testing.assert_allclose(lrs, [config.lr * (1 - i / 3) for i in range(3)])
