"""CQL (bench/algos/cql.py) and its tanh-Gaussian actor (bench/nn/actors.py) against hand
computations: the conservative penalty, the squashed log-density, which way the learned
temperatures move, the target networks' Polyak step, and that one backward pass gives each loss
only its own parameters' gradients. (Smoke training, kill → resume and the state_dict round trip
are tests/test_every_algorithm.py's; beating a random policy is tests/test_learning.py's.)"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import hand_q

from bench.algos.cql import CQL, CQLConfig, Draws
from bench.data.sampler import TaskSpec
from bench.nn.actors import TanhGaussianActor, tanh_gaussian_log_prob

OBS, ACT = 3, 2


def _spec() -> TaskSpec:
    return TaskSpec(OBS, ACT, np.zeros(OBS, np.float32), np.ones(OBS, np.float32),
                    -np.ones(ACT, np.float32), np.ones(ACT, np.float32), 1000)


def _algo(seed: int = 0, **fields) -> CQL:
    torch.manual_seed(seed)
    config = CQLConfig(**{"actor_hidden": (8,), "q_hidden": (8, 8), "cql_n_actions": 3,
                          "batch_size": 4, "compile_losses": False, **fields})
    return CQL(config, _spec(), torch.device("cpu"))


def _batch(rows: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"observations": rng.standard_normal((rows, OBS)).astype(np.float32),
            "actions": rng.uniform(-0.9, 0.9, (rows, ACT)).astype(np.float32),
            "rewards": rng.standard_normal(rows).astype(np.float32),
            "next_observations": rng.standard_normal((rows, OBS)).astype(np.float32),
            "terminals": np.array([0, 1, 0, 0][:rows], np.float32)}


def _tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v) for k, v in batch.items()}


# -- hand computations, one number at a time in float64 -----------------------------------------

def _log_one_minus_tanh_sq(u: float) -> float:
    """log(1 − tanh(u)²) = log(sech(u)²) = log 4 − 2·log(e^u + e^−u) (exact for |u| ≲ 700)."""
    return math.log(4.0) - 2.0 * math.log(math.exp(u) + math.exp(-u))


def _hand_log_prob(u: list[float], mean: list[float], log_std: list[float]) -> float:
    total = 0.0
    for u_d, m, ls in zip(u, mean, log_std):
        sigma = math.exp(ls)
        gaussian = -0.5 * ((u_d - m) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)
        total += gaussian - _log_one_minus_tanh_sq(u_d)
    return total


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


# -- the conservative penalty -------------------------------------------------------------------

@pytest.mark.parametrize("importance_sample", [True, False])
def test_penalty_is_the_hand_computed_logsumexp_over_sampled_actions_minus_data_q(
        importance_sample):
    """cql_alpha · Σ_i mean_s [log Σ_j exp(Q_i(s, a_j) − log μ(a_j)) − Q_i(s, a)] over N uniform
    actions (μ = 2^−A), N from π(·|s) and N from π(·|s') (μ = π), all scored at s. Without
    importance sampling: the plain logsumexp over those and the data action."""
    algo = _algo(cql_importance_sample=importance_sample, cql_temp=1.0)
    with torch.no_grad():  # away from the near-constant start: Q and π's mean depend on (s, a)
        for weight, bias in zip(algo.critics.weights, algo.critics.biases):
            weight.normal_(0.0, 0.7)
            bias.normal_(0.0, 0.1)
        algo.actor.net[-1].weight.normal_(0.0, 0.5)
    n, rows = algo.config.cql_n_actions, 3
    batch = _tensors(_batch(rows))
    gen = torch.Generator().manual_seed(5)
    draws = Draws(uniform=torch.rand(rows, n, ACT, generator=gen) * 2 - 1,
                  eps=torch.randn(rows, 1 + n, ACT, generator=gen),
                  eps_next=torch.randn(rows, 1 + n, ACT, generator=gen))
    got = algo.losses(batch, draws, step=0)["cql"].item()

    expected = 0.0
    with torch.no_grad():
        for b in range(rows):
            s, s_next = batch["observations"][b], batch["next_observations"][b]
            a = batch["actions"][b].tolist()
            mean, log_std = (t.double().tolist() for t in algo.actor(s))
            mean_n, log_std_n = (t.double().tolist() for t in algo.actor(s_next))
            sampled = [(draws.uniform[b, j].tolist(), -ACT * math.log(2.0)) for j in range(n)]
            for means, log_stds, eps in ((mean, log_std, draws.eps[b, 1:]),
                                         (mean_n, log_std_n, draws.eps_next[b, 1:])):
                for j in range(n):
                    u = [m + math.exp(ls) * e for m, ls, e in zip(means, log_stds, eps[j].tolist())]
                    sampled.append(([math.tanh(x) for x in u], _hand_log_prob(u, means, log_stds)))
            for member in range(2):
                q_data = hand_q(algo.critics, member, s.tolist(), a)
                if importance_sample:
                    logits = [hand_q(algo.critics, member, s.tolist(), act) - density
                              for act, density in sampled]
                else:
                    logits = [q_data] + [hand_q(algo.critics, member, s.tolist(), act)
                                         for act, _ in sampled]
                expected += (_logsumexp(logits) - q_data) / rows
    expected *= algo.config.cql_alpha
    assert got == pytest.approx(expected, rel=2e-5, abs=1e-5)


def test_td_target_is_reward_plus_discounted_min_of_the_target_twins_at_a_policy_action():
    """y = r + γ (1 − terminal) min_i Q'_i(s', a'), a' = tanh(μ(s') + σ(s') ε'_0): the TD loss is
    Σ_i mean_s (Q_i(s, a) − y)², and the mean y is reported."""
    algo = _algo(gamma=0.9)
    with torch.no_grad():
        for weight in [*algo.critics.weights, *algo.critics_target.weights]:
            weight.normal_(0.0, 0.7)
    rows, n = 4, algo.config.cql_n_actions
    batch = _tensors(_batch(rows))
    gen = torch.Generator().manual_seed(2)
    draws = Draws(uniform=torch.rand(rows, n, ACT, generator=gen) * 2 - 1,
                  eps=torch.randn(rows, 1 + n, ACT, generator=gen),
                  eps_next=torch.randn(rows, 1 + n, ACT, generator=gen))
    out = algo.losses(batch, draws, step=0)
    td, targets = 0.0, []
    with torch.no_grad():
        for b in range(rows):
            s, s_next = batch["observations"][b].tolist(), batch["next_observations"][b]
            mean, log_std = algo.actor(s_next)
            a_next = torch.tanh(mean + log_std.exp() * draws.eps_next[b, 0]).tolist()
            q_next = min(hand_q(algo.critics_target, i, s_next.tolist(), a_next) for i in range(2))
            y = (batch["rewards"][b].item()
                 + 0.9 * (1 - batch["terminals"][b].item()) * q_next)
            targets.append(y)
            for i in range(2):
                td += (hand_q(algo.critics, i, s, batch["actions"][b].tolist()) - y) ** 2 / rows
    assert out["q_target"].item() == pytest.approx(sum(targets) / rows, rel=1e-5, abs=1e-5)
    assert out["td"].item() == pytest.approx(td, rel=1e-5, abs=1e-5)


# -- the tanh-Gaussian actor --------------------------------------------------------------------

def test_tanh_gaussian_log_prob_is_the_gaussian_density_minus_the_tanh_jacobian():
    """log π(tanh u) = Σ_d [log N(u_d; μ_d, σ_d²) − log(1 − tanh(u_d)²)], finite where tanh(u)
    rounds to ±1 in float32 (|u| ≥ 9), against float64 arithmetic one number at a time."""
    mean = torch.tensor([[0.3, -1.0, 2.0], [0.0, 4.0, -3.0], [1.0, 1.0, -1.0]])
    log_std = torch.tensor([[-0.5, 0.2, 0.0], [1.0, 1.5, -2.0], [0.0, -1.0, 0.5]])
    eps = torch.tensor([[[0.1, -0.7, 1.3]], [[-1.1, 6.0, 2.5]], [[12.0, -15.0, 8.0]]])
    actions, log_prob = TanhGaussianActor.sample(mean[:, None], log_std[:, None], eps)
    assert actions.shape == (3, 1, 3) and log_prob.shape == (3, 1)
    u = mean[:, None] + log_std[:, None].exp() * eps
    assert torch.equal(actions, torch.tanh(u))
    assert torch.isfinite(log_prob).all(), log_prob
    for row in range(3):
        expected = _hand_log_prob(u[row, 0].double().tolist(), mean[row].double().tolist(),
                                  log_std[row].double().tolist())
        assert log_prob[row, 0].item() == pytest.approx(expected, rel=1e-5, abs=1e-4), row
    # the same function of u, given directly
    assert torch.allclose(tanh_gaussian_log_prob(u[:, 0], mean, log_std), log_prob[:, 0])


def test_actor_log_prob_of_given_actions_and_its_deterministic_action():
    torch.manual_seed(0)
    actor = TanhGaussianActor(OBS, ACT, hidden=(8, 8))
    with torch.no_grad():
        actor.net[-1].weight.normal_()  # away from the near-zero start
    obs = torch.randn(5, OBS)
    mean, log_std = actor(obs)
    assert mean.shape == log_std.shape == (5, ACT)
    assert ((log_std >= -20) & (log_std <= 2)).all()
    eps = torch.randn(5, 1, ACT)
    actions, log_prob = actor.sample(mean[:, None], log_std[:, None], eps)
    # log π of a sampled action, read back through atanh, is the sample's log-probability
    assert torch.allclose(actor.log_prob(obs, actions[:, 0]), log_prob[:, 0], atol=1e-3)
    assert torch.equal(actor.deterministic(obs), torch.tanh(mean))


# -- the temperatures -------------------------------------------------------------------------

@pytest.mark.parametrize("log_std_shift, direction", [(-5.0, +1), (0.0, -1)])
def test_entropy_below_its_target_raises_alpha_and_above_it_lowers_alpha(log_std_shift, direction):
    """Target entropy −act_dim: σ ≈ e^−5 gives an entropy near −3.6 per dimension (below the
    target: α must rise), σ ≈ 1 one near +0.5 (above: α must fall)."""
    algo = _algo()
    with torch.no_grad():
        algo.actor.log_std_shift.fill_(log_std_shift)
    before = algo.log_alpha["entropy"].item()
    metrics = algo.update(_batch(), step=0)
    entropy = -metrics["log_pi"]
    assert (entropy < algo.target_entropy) == (direction > 0), entropy
    moved = algo.log_alpha["entropy"].item() - before
    assert moved * direction > 0, (before, moved)
    assert algo.alpha().item() * direction > 1.0 * direction  # α = e^{log α} started at 1


@pytest.mark.parametrize("gap, direction", [(-100.0, +1), (100.0, -1)])
def test_lagrange_multiplier_rises_while_the_penalty_exceeds_the_target_gap(gap, direction):
    algo = _algo(cql_lagrange=True, cql_target_action_gap=gap)
    before = algo.log_alpha["cql"].item()
    algo.update(_batch(), step=0)
    assert (algo.log_alpha["cql"].item() - before) * direction > 0


def test_the_lagrange_multiplier_is_fixed_when_the_variant_is_off():
    algo = _algo()
    algo.update(_batch(), step=0)
    assert algo.log_alpha["cql"].item() == 1.0


# -- target networks ----------------------------------------------------------------------------

@pytest.mark.parametrize("period", [1, 2])
def test_target_critics_move_exactly_tau_of_the_way_after_the_critics_step(period):
    algo = _algo(tau=0.05, target_update_period=period)
    for step in range(2):
        target = [p.detach().clone() for p in algo.critics_target.parameters()]
        algo.update(_batch(seed=step), step=step)
        moves = (step + 1) % period == 0
        for old, new, critic in zip(target, algo.critics_target.parameters(),
                                    algo.critics.parameters()):
            expected = old + 0.05 * (critic.detach() - old) if moves else old
            torch.testing.assert_close(new, expected, rtol=1e-6, atol=1e-7)
        assert any(not torch.equal(o, n) for o, n in
                   zip(target, algo.critics_target.parameters())) == moves


# -- one backward pass, disjoint gradients ----------------------------------------------------

def test_each_loss_reaches_only_its_own_parameters():
    """The sum's gradient is each part's own: critics from TD + penalty, actor from its loss (the
    critics held fixed), log α from the temperature loss."""
    algo = _algo()
    batch = _tensors(_batch())
    draws = algo.draw(4)

    def grads(names, params):
        out = algo.losses(batch, draws, step=0)
        total = sum(out[n] for n in names)
        return torch.autograd.grad(total, params, allow_unused=True)

    s, a = batch["observations"], batch["actions"]
    assert torch.equal(algo.critics.frozen(s, a), algo.critics(s, a))  # the same Q-values
    critics, actor = list(algo.critics.parameters()), list(algo.actor.parameters())
    alpha = [algo.log_alpha["entropy"]]
    everything = CQL.LOSSES
    for own, params in ((("td", "cql"), critics), (("actor",), actor), (("alpha_loss",), alpha)):
        for a, b in zip(grads(everything, params), grads(own, params)):
            torch.testing.assert_close(a, b)


def test_one_seed_gives_identical_updates():
    runs = []
    for _ in range(2):
        algo = _algo(seed=3)
        torch.manual_seed(11)
        metrics = [algo.update(_batch(seed=i), step=i) for i in range(3)]
        runs.append((metrics, [p.detach().clone() for p in algo.actor.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


# -- the other switches -----------------------------------------------------------------------

def _fixed_draws(algo: CQL, rows: int, k: int = 1, seed: int = 4) -> Draws:
    gen, n = torch.Generator().manual_seed(seed), algo.config.cql_n_actions
    return Draws(uniform=torch.rand(rows, n, ACT, generator=gen) * 2 - 1,
                 eps=torch.randn(rows, 1 + n, ACT, generator=gen),
                 eps_next=torch.randn(rows, k + n, ACT, generator=gen))


@pytest.mark.parametrize("fields", [
    {"cql_max_target_backup": True}, {"backup_entropy": True}, {"bc_steps": 1},
    {"cql_lagrange": True}, {"cql_clip_diff_min": -1.0, "cql_clip_diff_max": 1.0},
    {"orthogonal_init": False}, {"automatic_entropy_tuning": False},
    {"cql_importance_sample": False}, {"cql_temp": 0.5}], ids=lambda f: ",".join(f))
def test_every_switch_trains(fields):
    algo = _algo(**fields)
    before = [p.detach().clone() for p in [*algo.actor.parameters(), *algo.critics.parameters()]]
    for step in range(2):
        metrics = algo.update(_batch(seed=step), step=step)
        assert all(math.isfinite(v) for v in metrics.values()), metrics
    after = [*algo.actor.parameters(), *algo.critics.parameters()]
    assert all(not torch.equal(a, b) for a, b in zip(before, after))


def test_max_target_backup_takes_the_best_of_n_policy_actions():
    """With the same N next-state samples, the max backup's target is at least the one-sample
    target on every row (the one sample is among the N)."""
    rows = 4
    plain, best = _algo(gamma=0.9), _algo(gamma=0.9, cql_max_target_backup=True)
    with torch.no_grad():
        for weight in [*plain.critics_target.weights]:
            weight.normal_(0.0, 0.7)
    best.load_state_dict(plain.state_dict())
    n = plain.config.cql_n_actions
    draws = _fixed_draws(best, rows, k=n)
    one = Draws(draws.uniform, draws.eps, draws.eps_next[:, [0, *range(n, 2 * n)]])
    batch = _tensors(_batch(rows))
    batch["terminals"] = torch.zeros(rows)
    y_one = plain.losses(batch, one, step=0)["q_target"].item()
    y_best = best.losses(batch, draws, step=0)["q_target"].item()
    assert y_best > y_one + 1e-4, (y_best, y_one)


def test_clip_bounds_clamp_each_states_penalty():
    """At the start every state's penalty is about 3 (Q ≈ 0, so the logsumexp of the 3N
    negative log-densities): an upper bound of 0.5 leaves cql_alpha · 2 critics · 0.5, a lower
    bound of 100 gives cql_alpha · 2 · 100."""
    batch, rows = _tensors(_batch()), 4
    for bounds, expected in (({"cql_clip_diff_max": 0.5}, 10.0),
                             ({"cql_clip_diff_min": 100.0}, 2000.0)):
        algo = _algo(**bounds)
        got = algo.losses(batch, _fixed_draws(algo, rows), step=0)["cql"].item()
        assert got == pytest.approx(expected, rel=1e-6), bounds


def test_bc_steps_train_the_actor_on_the_data_actions_log_likelihood():
    algo = _algo(bc_steps=1)
    batch, rows = _tensors(_batch()), 4
    draws = _fixed_draws(algo, rows)
    with torch.no_grad():
        s, a = batch["observations"], batch["actions"]
        mean, log_std = algo.actor(s)
        _, log_pi = algo.actor.sample(mean[:, None], log_std[:, None], draws.eps[:, :1])
        expected = (algo.alpha() * log_pi[:, 0] - algo.actor.log_prob(s, a)).mean().item()
        bc = algo.losses(batch, draws, step=0)["actor"].item()
        after = algo.losses(batch, draws, step=1)["actor"].item()  # past bc_steps: Q again
    assert bc == pytest.approx(expected, rel=1e-6)
    assert after != pytest.approx(bc)


def test_normalize_reward_scales_rewards_by_episode_length_over_the_return_span():
    """Two episodes returning 3 and 10 (tests/conftest.make_flat): rewards × 1000 / 7."""
    from conftest import make_flat

    from bench.data import Sampler

    plain, scaled = _algo(), _algo(normalize_reward=True)
    scaled.attach_dataset(Sampler(make_flat([3, 5], obs_dim=OBS, act_dim=ACT)))
    assert scaled.reward_factor == pytest.approx(1000 / 7)
    batch = _tensors(_batch())
    draws = _fixed_draws(plain, 4)
    shift = (scaled.losses(batch, draws, step=0)["q_target"]
             - plain.losses(batch, draws, step=0)["q_target"]).item()
    assert shift == pytest.approx(batch["rewards"].mean().item() * (1000 / 7 - 1), rel=1e-5)
