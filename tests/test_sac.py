"""SAC (bench/algos/sac.py) against hand computations and in its env: the squashed-Gaussian
log-probability inside the actor's loss, which way the temperature α moves and its loss, the soft
TD target (termination stops the bootstrap, a time limit does not), the targets' τ-step, one
backward pass giving each loss only its own parameters' gradients, the replay buffer's
checkpoint, seed → identical runs, kill → bit-identical resume with a wrapped buffer, and
beating a random policy on Pendulum-v1. (Every registered algorithm's generic checks are in
tests/test_every_algorithm.py.)"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import SimulatedKill, hand_q, kill_after

from bench.algos.sac import SAC, SACConfig
from bench.data.sampler import TaskSpec
from bench.evaluate import PolicyAgent, evaluate
from bench.making.generate import UniformRandomPolicy
from bench.nn.actors import TanhGaussianActor
from bench.perf import torch_threads
from bench.run import RunRequest, eval_seed, execute, run_dir

OBS, ACT = 3, 2
QUIET = lambda m: None


def _spec(obs_dim: int = OBS, act_dim: int = ACT) -> TaskSpec:
    return TaskSpec(obs_dim, act_dim, np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32),
                    -np.ones(act_dim, np.float32), np.ones(act_dim, np.float32), 1000)


def _algo(seed: int = 0, spec: TaskSpec | None = None, **fields) -> SAC:
    torch.manual_seed(seed)
    config = SACConfig(**{"hidden": (8, 8), "batch_size": 4, "buffer_size": 100, **fields})
    algo = SAC(config, spec or _spec(), torch.device("cpu"))
    with torch.no_grad():  # away from the near-constant start: π's mean and σ depend on s
        algo.actor.net[-1].weight.normal_(0.0, 0.5)
        for weight in [*algo.critics.weights, *algo.critics_target.weights]:
            weight.normal_(0.0, 0.7)
    return algo


def _batch(rows: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    batch = {"observations": rng.standard_normal((rows, OBS)),
             "actions": rng.uniform(-0.9, 0.9, (rows, ACT)),
             "rewards": rng.standard_normal(rows),
             "next_observations": rng.standard_normal((rows, OBS)),
             "terminated": np.array([0, 1, 0, 1][:rows])}
    return {k: torch.as_tensor(v, dtype=torch.float32) for k, v in batch.items()}


def _eps(rows: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, rows, ACT, generator=torch.Generator().manual_seed(seed))


# -- hand computations, one number at a time in float64 -----------------------------------------

def _hand_log_prob(u: list[float], mean: list[float], log_std: list[float]) -> float:
    """log π(tanh u) = Σ_d [log N(u_d; μ_d, σ_d²) − log(1 − tanh(u_d)²)], the textbook form."""
    total = 0.0
    for u_d, m, ls in zip(u, mean, log_std):
        sigma = math.exp(ls)
        gaussian = -0.5 * ((u_d - m) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)
        total += gaussian - math.log(1.0 - math.tanh(u_d) ** 2)
    return total


def _hand_policy_sample(algo: SAC, s: torch.Tensor, eps: torch.Tensor) -> tuple[list[float], float]:
    """The squashed action tanh(μ(s) + σ(s) eps) and its log π, by hand from μ(s) and log σ(s)."""
    with torch.no_grad():
        mean, log_std = (t.double().tolist() for t in algo.actor(s))
    u = [m + math.exp(ls) * e for m, ls, e in zip(mean, log_std, eps.double().tolist())]
    return [math.tanh(x) for x in u], _hand_log_prob(u, mean, log_std)


# -- the actor's loss and its squashed-Gaussian log-probability ---------------------------------

def test_actor_loss_is_alpha_log_pi_minus_min_q_with_the_tanh_corrected_density():
    """actor loss = mean_s [α log π(ã|s) − min_i Q_i(s, ã)], ã = tanh(μ + σ ε), log π = log N(u)
    − Σ log(1 − tanh(u)²); the entropy metric is −mean log π."""
    algo = _algo(init_alpha=0.3)
    batch, eps = _batch(), _eps()
    out = algo.losses(batch, eps)
    actor, log_pis = 0.0, []
    for b in range(4):
        s = batch["observations"][b]
        action, log_pi = _hand_policy_sample(algo, s, eps[0, b])
        q = min(hand_q(algo.critics, i, s.tolist(), action) for i in range(2))
        actor += (0.3 * log_pi - q) / 4
        log_pis.append(log_pi)
    assert out["actor_loss"].item() == pytest.approx(actor, rel=1e-5, abs=1e-5)
    assert out["entropy"].item() == pytest.approx(-sum(log_pis) / 4, rel=1e-5, abs=1e-5)
    assert out["alpha"].item() == pytest.approx(0.3, rel=1e-6)


def test_the_log_probability_stays_finite_where_tanh_saturates():
    """|u| = 20 rounds tanh(u)² to 1 even in float64; the actor's stable form gives the exact
    log(1 − tanh(u)²) = log 4 − 2 log(e^u + e^−u) there."""
    mean, log_std = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    eps = torch.tensor([[20.0, -20.0]])
    _, log_pi = TanhGaussianActor.sample(mean, log_std, eps)
    gaussian = 2 * (-0.5 * 20.0**2 - 0.5 * math.log(2 * math.pi))
    jacobian = 2 * (math.log(4.0) - 2.0 * math.log(math.exp(20.0) + math.exp(-20.0)))
    assert torch.isfinite(log_pi).all()
    assert log_pi.item() == pytest.approx(gaussian - jacobian, rel=1e-6)


# -- the temperature ----------------------------------------------------------------------------

@pytest.mark.parametrize("log_std_shift, direction", [(-5.0, +1), (0.0, -1)])
def test_alpha_rises_below_the_target_entropy_and_falls_above_it(log_std_shift, direction):
    """α loss = −log α · mean(log π + target entropy), target −act_dim = −2, by hand; σ ≈ e^−5
    puts the entropy far below the target (α must rise), σ ≈ 1 around a zero mean above it (α
    must fall). Adam's first step moves log α by lr against the sign of its gradient."""
    algo = _algo(init_alpha=math.exp(0.25), lr=1e-3)
    with torch.no_grad():
        algo.actor.log_std_shift.fill_(log_std_shift)
        algo.actor.net[-1].weight.zero_()  # log σ = the shift exactly, whatever s
    assert algo.target_entropy == -2.0
    batch, eps = _batch(), _eps()
    log_pis = [_hand_policy_sample(algo, batch["observations"][b], eps[0, b])[1] for b in range(4)]
    entropy = -sum(log_pis) / 4
    assert (entropy < -2.0) == (direction > 0), entropy
    out = algo.train_on(batch, eps)
    assert out["alpha_loss"].item() == pytest.approx(-0.25 * (sum(log_pis) / 4 - 2.0), rel=1e-5)
    moved = algo.temperature.log_alpha.item() - 0.25
    assert moved * direction > 0, moved
    assert abs(moved) == pytest.approx(1e-3, rel=1e-3)


def test_a_fixed_alpha_stays_put():
    algo = _algo(auto_alpha=False, init_alpha=0.2)
    out = algo.train_on(_batch(), _eps())
    assert out["alpha_loss"].item() == 0.0
    assert algo.alpha().item() == pytest.approx(0.2, rel=1e-6)


# -- the critics' target --------------------------------------------------------------------------

def test_td_target_is_the_soft_bellman_backup_and_termination_stops_it():
    """y = r + γ (1 − terminated)(min_i Q'_i(s', a') − α log π(a'|s')), a' = tanh(μ(s') +
    σ(s') ε'), by hand on four rows (two terminated); the critics' loss ½ Σ_i mean (Q_i(s, a) −
    y)²; the q metric mean Q(s, a)."""
    algo = _algo(gamma=0.9, init_alpha=0.5)
    batch, eps = _batch(), _eps()
    y = algo.td_target(batch["rewards"], batch["next_observations"], batch["terminated"], eps[1])
    out = algo.losses(batch, eps)
    critic, q_mean = 0.0, 0.0
    for b in range(4):
        s_next = batch["next_observations"][b]
        a_next, log_pi_next = _hand_policy_sample(algo, s_next, eps[1, b])
        q_next = min(hand_q(algo.critics_target, i, s_next.tolist(), a_next) for i in range(2))
        bootstrap = 0.0 if batch["terminated"][b] else 0.9 * (q_next - 0.5 * log_pi_next)
        expected = batch["rewards"][b].item() + bootstrap
        assert y[b].item() == pytest.approx(expected, rel=1e-5, abs=1e-5), b
        for i in range(2):
            q = hand_q(algo.critics, i, batch["observations"][b].tolist(),
                        batch["actions"][b].tolist())
            critic += 0.5 * (q - expected) ** 2 / 4
            q_mean += q / 8
    assert [y[b].item() for b in (1, 3)] == [batch["rewards"][b].item() for b in (1, 3)]
    assert out["critic_loss"].item() == pytest.approx(critic, rel=1e-5, abs=1e-5)
    assert out["q"].item() == pytest.approx(q_mean, rel=1e-5, abs=1e-5)


class Corridor(gym.Env):
    """Observations [t, episode]; reward 1 a step; episode 1 terminates at t = 2, the others run
    into the time limit around them."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self) -> None:
        self.t, self.episode = 0, -1

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.episode], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.episode = 0, self.episode + 1
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, self.episode == 1 and self.t == 2, False, {}


def test_a_time_limit_is_stored_as_not_terminal_with_the_true_final_observation():
    """Episode 0 is cut by a 3-step time limit, episode 1 terminates at step 2: the buffer holds
    terminated 0 and s' = [3, 0] (the final observation, not the reset one) for the first,
    terminated 1 for the second; the target bootstraps the first and not the second."""
    make = lambda: gym.wrappers.TimeLimit(Corridor(), max_episode_steps=3)
    algo = _algo(spec=_spec(2, 1), learning_starts=100, gamma=0.5)
    algo.setup(make, seed=0)
    metrics = [algo.train_iteration() for _ in range(6)]
    rows = algo.buffer.sample(1)  # the layout, then the rows in order
    assert set(rows) == {"observations", "actions", "rewards", "next_observations", "terminated"}
    s, _, r, s_next, terminated = algo.buffer.rows[:6].split(algo.buffer.widths, dim=1)
    assert s.tolist() == [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [0, 2]]
    assert s_next.tolist() == [[1, 0], [2, 0], [3, 0], [1, 1], [2, 1], [1, 2]]
    assert terminated[:, 0].tolist() == [0, 0, 0, 0, 1, 0]
    assert r[:, 0].tolist() == [1.0] * 6
    assert algo._obs.tolist() == [1, 2]  # after the reset following episode 1
    y = algo.td_target(r[:, 0], s_next, terminated[:, 0], torch.zeros(6, 1))
    assert y[2].item() != 1.0 and y[4].item() == 1.0
    assert metrics[-1] == {} and algo.env_steps == 6
    assert [e for e, _ in algo._finished] == [3.0, 2.0]  # returns of the two finished episodes


# -- target networks, gradients -----------------------------------------------------------------

def test_target_critics_move_tau_of_the_way_to_the_updated_critics_at_every_step():
    algo = _algo(tau=0.05)
    for step in range(2):
        target = [p.detach().clone() for p in algo.critics_target.parameters()]
        critics = [p.detach().clone() for p in algo.critics.parameters()]
        algo.train_on(_batch(seed=step), _eps(seed=step))
        for old, new, critic, before in zip(target, algo.critics_target.parameters(),
                                            algo.critics.parameters(), critics):
            assert not torch.equal(critic, before)  # the critics stepped first
            torch.testing.assert_close(new, old + 0.05 * (critic.detach() - old),
                                       rtol=1e-6, atol=1e-7)


def test_each_loss_reaches_only_its_own_parameters():
    """The sum's gradient is each part's own: critics from their TD loss, the actor from its
    loss (the critics held constant), log α from the temperature loss."""
    algo = _algo()
    batch, eps = _batch(), _eps()

    def grads(names, params):
        out = algo.losses(batch, eps)
        return torch.autograd.grad(sum(out[n] for n in names), params, allow_unused=True)

    everything = ("critic_loss", "actor_loss", "alpha_loss")
    for own, params in ((("critic_loss",), list(algo.critics.parameters())),
                        (("actor_loss",), list(algo.actor.parameters())),
                        (("alpha_loss",), [algo.temperature.log_alpha])):
        for a, b in zip(grads(everything, params), grads(own, params)):
            torch.testing.assert_close(a, b)


# -- the replay buffer --------------------------------------------------------------------------

def test_the_buffer_wraps_oldest_first_and_checkpoints_only_its_filled_rows():
    algo = _algo(spec=_spec(2, 1), buffer_size=4)
    for t in range(6):
        algo.buffer.add(np.array([t, 0.0]), np.array([0.5]), float(t), np.array([t + 1, 0.0]), t == 5)
    assert algo.buffer.size == 4 and algo.buffer.cursor == 2
    assert algo.buffer.rows[:, 0].tolist() == [4, 5, 2, 3]  # rows 0, 1 overwritten
    big = _algo(spec=_spec(2, 1), buffer_size=100_000)
    big.buffer.add(np.zeros(2), np.zeros(1), 0.0, np.zeros(2), False)
    saved = io.BytesIO()
    torch.save(big.buffer.state_dict(), saved)
    assert saved.tell() < 10_000  # one row, not the 100,000 × 7 preallocated floats (2.8 MB)
    fresh = _algo(spec=_spec(2, 1), buffer_size=4)
    fresh.buffer.load_state_dict(algo.buffer.state_dict())
    assert torch.equal(fresh.buffer.rows, algo.buffer.rows)
    assert (fresh.buffer.size, fresh.buffer.cursor) == (4, 2)


# -- runs: seeds, resume, learning ---------------------------------------------------------------

def _metrics(directory: Path) -> list[dict]:
    rows = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


RUN = {"algo": "sac", "dataset": None, "env": "Hopper-v5", "budget": "smoke",
       "eval_episodes": 2, "eval_mode": "sync"}


def test_one_seed_gives_identical_runs_and_another_seed_does_not(tmp_path):
    overrides = {"total_env_steps": "40", "learning_starts": "10", "log_every": "10"}
    runs = [execute(RunRequest(seed=seed, out=tmp_path / name, overrides=overrides, **RUN),
                    log=QUIET) for seed, name in ((3, "a"), (3, "b"), (4, "c"))]
    dirs = [run_dir(RunRequest(seed=seed, out=tmp_path / name, overrides=overrides, **RUN))
            for seed, name in ((3, "a"), (3, "b"), (4, "c"))]
    assert runs[0]["episode_returns"] == runs[1]["episode_returns"]
    assert _metrics(dirs[0]) == _metrics(dirs[1])
    assert "critic_loss" in _metrics(dirs[0])[-1]
    assert _metrics(dirs[0]) != _metrics(dirs[2])


def test_a_killed_run_resumes_bit_identically_with_its_wrapped_replay_buffer(tmp_path):
    """A 16-row buffer over 40 steps (it wraps), updates from step 9, checkpoints at 16 and 32,
    metrics lines every 12 steps (so the checkpoint at 16 holds a part-summed window), killed at
    28: the resumed run redoes 16..28 from the checkpoint and matches the uninterrupted one line
    for line and in its evaluation."""
    overrides = {"total_env_steps": "40", "buffer_size": "16", "learning_starts": "8",
                 "checkpoint_every": "16", "log_every": "12", "batch_size": "8"}
    full = execute(RunRequest(seed=1, out=tmp_path / "a", overrides=overrides, **RUN), log=QUIET)
    with pytest.raises(SimulatedKill):
        execute(RunRequest(seed=1, out=tmp_path / "b", overrides=overrides, **RUN), log=QUIET,
                callbacks=kill_after(28))
    resumed = execute(RunRequest(seed=1, out=tmp_path / "b", resume=True, overrides=overrides,
                                 **RUN), log=QUIET)
    assert resumed["timings"]["steps_this_session"] == 40 - 16
    a = _metrics(run_dir(RunRequest(seed=1, out=tmp_path / "a", overrides=overrides, **RUN)))
    b = _metrics(run_dir(RunRequest(seed=1, out=tmp_path / "b", overrides=overrides, **RUN)))
    assert [r["step"] for r in a] == [12, 24, 36, 40]
    assert a == b
    assert resumed["episode_returns"] == full["episode_returns"]


def test_sac_beats_a_random_policy_on_pendulum(tmp_path):
    """4,000 env steps (500 random) with 64-unit networks (the smoke size), batch 64 and Adam
    1e-3 (rl-baselines3-zoo's Pendulum learning rate): about 10 s of training on one core,
    where a uniformly random policy loses about 1,200 per 200-step episode and SAC about 200.
    One torch thread: beside another busy process, two threads wait on each other (bench.perf)."""
    overrides = {"total_env_steps": "4000", "learning_starts": "500", "batch_size": "64",
                 "lr": "1e-3", "log_every": "500", "checkpoint_every": "4000"}
    with torch_threads(1):
        result = execute(RunRequest(algo="sac", dataset=None, env="Pendulum-v1", seed=0,
                                    budget="smoke", overrides=overrides, out=tmp_path,
                                    eval_episodes=5), log=QUIET)
    make = lambda: gym.make("Pendulum-v1")
    random = evaluate(PolicyAgent(UniformRandomPolicy(np.array([-2.0]), np.array([2.0]), seed=0)),
                      make, episodes=5, seed=eval_seed(0), mode="sync").mean_return
    learned = result["mean_return"]
    assert random < -900, random
    assert learned > -500 and learned > random + 600, (learned, random)


def test_exported_policy_acts_as_sac_does_and_samples_tanh_gaussians():
    """The policy file of a SAC actor (what snapshots hold, what the reference-policy tools read):
    deterministic actions equal SAC's own ``act`` in an asymmetric box; stochastic ones are
    tanh(μ + σ·ε) mapped to the box with the file's seeded generator (same seed, same actions)."""
    from bench.policies import TanhGaussianMLPPolicy, load_policy

    spec = TaskSpec(OBS, ACT, np.zeros(OBS, np.float32), np.ones(OBS, np.float32),
                    np.array([-1.0, 0.0], np.float32), np.array([3.0, 0.5], np.float32), 1000)
    algo = _algo(spec=spec)
    with torch.no_grad():  # a policy that is not all zeros, and a wide σ
        for p in algo.actor.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    buf = io.BytesIO()
    torch.save(algo.export_policy(), buf)
    path = Path(pytest.importorskip("tempfile").mkdtemp()) / "policy.pt"
    path.write_bytes(buf.getvalue())
    obs = np.random.default_rng(0).standard_normal((5, OBS)).astype(np.float32)

    policy = load_policy(path)
    assert isinstance(policy, TanhGaussianMLPPolicy)
    np.testing.assert_allclose(policy(obs), algo.act(obs, None)[0], rtol=1e-5, atol=1e-6)

    noisy, again = (load_policy(path, deterministic=False, seed=3) for _ in range(2))
    first = noisy(obs)
    np.testing.assert_array_equal(first, again(obs))
    with torch.no_grad():
        mean, log_std = algo.actor(torch.as_tensor(obs))
    eps = np.random.default_rng(3).standard_normal((5, ACT))
    unit = np.tanh(mean.double().numpy() + np.exp(log_std.double().numpy()) * eps)
    np.testing.assert_allclose(first, unit * np.array([2.0, 0.25]) + np.array([1.0, 0.25]),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(first, policy(obs))


def test_a_dataset_given_to_sac_is_said_to_name_only_its_env(tiny_dataset, tmp_path):
    """sac reads no transitions: given --dataset it trains in the dataset's env with its
    reference scores, and says so (a review found it silently filed beside the offline rows)."""
    notes: list[str] = []
    execute(RunRequest(algo="sac", dataset=tiny_dataset, seed=0, budget="smoke", eval_episodes=1,
                       eval_mode="sync", out=tmp_path), log=notes.append)
    said = " | ".join(map(str, notes))
    assert f"sac learns online and reads none of {tiny_dataset}'s data" in said
    assert "(Hopper-v5)" in said
