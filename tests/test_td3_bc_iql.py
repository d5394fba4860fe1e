"""TD3+BC and IQL (``bench/algos/td3_bc.py``, ``bench/algos/iql.py``): their losses against hand
computations on tiny batches with fixed weights, when the TD3+BC actor and targets move, Polyak
averaging, IQL's expectile asymmetry, its clipped advantage weights and its reward scale from the
dataset's episode returns. (Every registered algorithm's smoke, resume and round-trip checks are
in test_every_algorithm.py; learning on expert data in test_learning.py.)"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.algos.iql import IQL, IQLConfig, expectile_loss
from bench.algos.td3_bc import TD3BC, TD3BCConfig
from bench.data import Sampler
from bench.data.sampler import TaskSpec
from bench.errors import BenchError
from bench.nn.layers import QEnsemble
from conftest import make_flat

OBS, ACT, B = 3, 2, 6
CPU = torch.device("cpu")


def _spec() -> TaskSpec:
    """Normalization and an action box that are not the identity, so that a loss computed on raw
    observations or env actions would not match the hand computation."""
    return TaskSpec(OBS, ACT, np.array([0.5, -1.0, 2.0], np.float32),
                    np.array([2.0, 0.5, 4.0], np.float32), np.array([-2.0, 0.0], np.float32),
                    np.array([2.0, 1.0], np.float32), 100)


def _batch(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    spec = _spec()
    return {
        "observations": rng.normal(size=(B, OBS)).astype(np.float32) * 3,
        "actions": rng.uniform(spec.action_low, spec.action_high, (B, ACT)).astype(np.float32),
        "rewards": rng.normal(size=B).astype(np.float32),
        "next_observations": rng.normal(size=(B, OBS)).astype(np.float32) * 3,
        "terminals": np.array([0, 1, 0, 0, 1, 0], np.float32),
    }


def _inputs(batch: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    """Normalized s, s' and actions in [-1, 1], by hand from ``_spec``."""
    spec = _spec()
    norm = lambda o: torch.as_tensor((o - spec.obs_mean) / spec.obs_std)  # noqa: E731
    half = (spec.action_high - spec.action_low) / 2
    unit = (batch["actions"] - (spec.action_high + spec.action_low) / 2) / half
    return norm(batch["observations"]), norm(batch["next_observations"]), torch.as_tensor(unit)


def _q(params: dict[str, torch.Tensor], member: int, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Member ``member`` of a QEnsemble, by hand from its weights: a ReLU MLP over [s, a] → (B,)."""
    h = torch.cat([s, a], -1)
    n = len([k for k in params if k.startswith("weights.")])
    for i in range(n):
        h = h @ params[f"weights.{i}"][member] + params[f"biases.{i}"][member]
        if i < n - 1:
            h = torch.relu(h)
    return h[:, 0]


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _mlp(params: dict[str, torch.Tensor], x: torch.Tensor, prefix: str = "") -> torch.Tensor:
    """A bench MLP (Linear, ReLU, …, Linear[, out act]) by hand: ReLU between the linears."""
    ids = sorted({int(k[len(prefix):].split(".")[0]) for k in params if k.startswith(prefix)
                  and k.endswith("weight")})
    for j, i in enumerate(ids):
        x = x @ params[f"{prefix}{i}.weight"].T + params[f"{prefix}{i}.bias"]
        if j < len(ids) - 1:
            x = torch.relu(x)
    return x


def _td3(**overrides) -> TD3BC:
    torch.manual_seed(0)
    return TD3BC(TD3BCConfig(hidden=(8, 8), batch_size=B, **overrides), _spec(), CPU)


# -- TD3+BC -----------------------------------------------------------------------------------

def test_td3bc_actor_loss_and_gradient_match_a_hand_computation():
    """−λ·mean Q1(s, π(s)) + MSE(π(s), a), λ = α / mean|Q1| with no gradient through λ, on the
    critics as they are after this update's critic step and the actor as it was before it."""
    algo = _td3(alpha=2.5, policy_every=2)
    batch = _batch()
    algo.update(batch, 0)  # a critic-only step first: the actor's comes at step 1
    before = _params(algo.actor)
    losses = algo.update(batch, 1)
    assert "actor" in losses
    s, _, a = _inputs(batch)
    theta = {k: v.clone().requires_grad_(True) for k, v in before.items()}
    pi = torch.tanh(_mlp(theta, s))
    q1 = _q(_params(algo.critics), 0, s, pi)
    lam = 2.5 / q1.abs().mean().item()
    loss = -lam * q1.mean() + ((pi - a) ** 2).mean()
    assert losses["actor"] == pytest.approx(loss.item(), rel=1e-5, abs=1e-6)
    assert losses["lambda"] == pytest.approx(lam, rel=1e-5)
    grads = torch.autograd.grad(loss, list(theta.values()))
    for (name, param), grad in zip(algo.actor.named_parameters(), grads):
        torch.testing.assert_close(param.grad, grad, rtol=1e-4, atol=1e-6, msg=name)


def test_td3bc_critic_loss_is_the_sum_of_two_mses_to_the_clipped_double_q_target():
    """With no target noise: y = r + γ(1 − d)·min(Q1', Q2')(s', π'(s')), loss MSE(Q1) + MSE(Q2)."""
    algo = _td3(policy_noise=0.0, gamma=0.9)
    batch = _batch(1)
    critics, targets = _params(algo.critics), _params(algo.critics_target)
    actor_target = _params(algo.actor_target)
    losses = algo.update(batch, 0)
    s, s2, a = _inputs(batch)
    a2 = torch.tanh(_mlp(actor_target, s2))
    q_next = torch.minimum(_q(targets, 0, s2, a2), _q(targets, 1, s2, a2))
    y = torch.as_tensor(batch["rewards"]) + 0.9 * (1 - torch.as_tensor(batch["terminals"])) * q_next
    expected = sum(((_q(critics, i, s, a) - y) ** 2).mean() for i in (0, 1))
    assert losses["critic"] == pytest.approx(expected.item(), rel=1e-5)


def test_td3bc_actor_and_targets_move_only_every_policy_every_steps():
    algo = _td3(policy_every=3)
    batch = _batch()
    for step in range(7):
        actor, critics = _params(algo.actor), _params(algo.critics)
        actor_t, critics_t = _params(algo.actor_target), _params(algo.critics_target)
        losses = algo.update(batch, step)
        moved = lambda old, module: any(  # noqa: E731
            not torch.equal(old[k], v) for k, v in module.named_parameters())
        actor_step = (step + 1) % 3 == 0  # steps 2 and 5: after 3 and 6 critic updates
        assert ("actor" in losses) == actor_step, step
        assert moved(actor, algo.actor) == actor_step, step
        assert moved(actor_t, algo.actor_target) == actor_step, step
        assert moved(critics_t, algo.critics_target) == actor_step, step
        assert moved(critics, algo.critics), step  # the critics every step


def test_td3bc_targets_move_by_tau_per_actor_step():
    """target' = (1 − τ)·target + τ·online, online as it is after this step's updates."""
    tau = 0.2
    algo = _td3(tau=tau, policy_every=1)
    algo.update(_batch(0), 0)  # targets and online networks now differ
    for module, target in ((algo.actor, algo.actor_target), (algo.critics, algo.critics_target)):
        assert any(not torch.equal(p, q) for p, q in zip(module.parameters(), target.parameters()))
    old = {"actor": _params(algo.actor_target), "critics": _params(algo.critics_target)}
    algo.update(_batch(1), 1)
    for name in ("actor", "critics"):
        online, target = _params(getattr(algo, name)), _params(getattr(algo, f"{name}_target"))
        for k in online:
            torch.testing.assert_close(target[k], (1 - tau) * old[name][k] + tau * online[k],
                                       rtol=1e-6, atol=1e-7, msg=f"{name}.{k}")


# -- IQL --------------------------------------------------------------------------------------

def test_iql_expectile_loss_is_half_the_mse_at_one_half_and_asymmetric_above():
    u = torch.tensor([1.5, -0.5, 2.0, -3.0, 0.25])
    assert expectile_loss(u, 0.5).item() == pytest.approx(0.5 * (u ** 2).mean().item())
    # u = Q − V: a positive residual (Q above V) weighs τ, a negative one 1 − τ.
    assert expectile_loss(torch.tensor([2.0]), 0.7).item() == pytest.approx(0.7 * 4)
    assert expectile_loss(torch.tensor([-2.0]), 0.7).item() == pytest.approx(0.3 * 4)
    assert expectile_loss(u, 0.7).item() == pytest.approx(
        (0.7 * (1.5 ** 2 + 2.0 ** 2 + 0.25 ** 2) + 0.3 * (0.5 ** 2 + 3.0 ** 2)) / 5)


def _iql(flat_lengths=(3, 5, 2), **overrides) -> IQL:
    torch.manual_seed(0)
    algo = IQL(IQLConfig(hidden=(8, 8), batch_size=B, compile_losses=False, **overrides), _spec(),
               CPU)
    flat = make_flat(list(flat_lengths), obs_dim=OBS, act_dim=ACT)
    algo.attach_dataset(Sampler(flat))
    return algo


def test_iql_reward_scale_is_1000_over_the_datasets_episode_return_range():
    """make_flat's episode e earns e + 1 per step: lengths 3, 5, 2 return 3, 10, 6 → 1000 / 7.
    The critic's target uses the scaled reward: y = 1000/7 · r + γ(1 − d)·V(s')."""
    algo = _iql((3, 5, 2), gamma=0.9)
    assert algo.reward_scale == pytest.approx(1000 / 7, rel=1e-12)
    batch = _batch(2)
    critics, value = _params(algo.critics), _params(algo.value)
    losses = algo.update(batch, 0)
    s, s2, a = _inputs(batch)
    y = (1000 / 7 * torch.as_tensor(batch["rewards"])
         + 0.9 * (1 - torch.as_tensor(batch["terminals"])) * _mlp(value, s2)[:, 0])
    expected = sum(((_q(critics, i, s, a) - y) ** 2).mean() for i in (0, 1)) / 2
    assert losses["critic"] == pytest.approx(expected.item(), rel=1e-5)
    assert _iql((3, 5, 2), normalize_reward=False).reward_scale == 1.0


def test_iql_refuses_to_scale_rewards_by_an_empty_return_range():
    with pytest.raises(BenchError, match="normalize_reward=false"):
        _iql((4,))  # one episode: max − min = 0
    with pytest.raises(RuntimeError, match="attach_dataset"):
        IQL(IQLConfig(hidden=(8,), batch_size=B, compile_losses=False), _spec(), CPU).update(
            _batch(), 0)


def test_iql_value_loss_is_the_expectile_of_the_smaller_target_q():
    algo = _iql(expectile=0.8)
    algo.update(_batch(0), 0)  # the target Q-networks now differ from the online ones
    batch = _batch(3)
    targets, value = _params(algo.critics_target), _params(algo.value)
    losses = algo.update(batch, 1)
    s, _, a = _inputs(batch)
    u = torch.minimum(_q(targets, 0, s, a), _q(targets, 1, s, a)) - _mlp(value, s)[:, 0]
    expected = (torch.where(u > 0, 0.8, 0.2) * u ** 2).mean()
    assert losses["value"] == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("deterministic", [False, True])
def test_iql_actor_loss_matches_a_hand_computation_where_the_clip_at_100_binds(deterministic):
    """mean min(exp(β·A), 100) · −log N(a; tanh(MLP(s)), σ²) summed over action dimensions (the
    deterministic actor: ‖tanh(MLP(s)) − a‖²), with A = min(Q1', Q2')(s, a) − V(s) from before
    this update. V's output bias is shifted so that β·A straddles log 100: some rows' weights
    are clipped, others not."""
    beta = 20.0
    algo = _iql(beta=beta, deterministic_actor=deterministic)
    batch = _batch(4)
    s, _, a = _inputs(batch)
    with torch.no_grad():
        targets = _params(algo.critics_target)
        q = torch.minimum(_q(targets, 0, s, a), _q(targets, 1, s, a))
        adv = q - _mlp(_params(algo.value), s)[:, 0]
        # Shift so that the median row sits exactly at the clip: half above, half below.
        algo.value[-1].bias -= math.log(100) / beta - adv.median()
        algo.actor.log_std.copy_(torch.tensor([-0.5, 0.3]))
    value, actor = _params(algo.value), _params(algo.actor)
    losses = algo.update(batch, 0)
    adv = q - _mlp(value, s)[:, 0]
    raw = torch.exp(beta * adv)
    assert (raw > 100).any() and (raw < 100).any(), raw  # the clip binds on some rows only
    weights = raw.clamp(max=100)
    mean, log_std = torch.tanh(_mlp(actor, s, "mean.")), actor["log_std"]
    if deterministic:
        fit = ((mean - a) ** 2).sum(-1)
    else:
        fit = (0.5 * ((a - mean) / log_std.exp()) ** 2 + log_std
               + 0.5 * math.log(2 * math.pi)).sum(-1)
    expected = (weights * fit).mean()
    assert losses["actor"] == pytest.approx(expected.item(), rel=1e-5)


def test_iql_targets_move_by_tau_every_update_and_the_actor_rate_follows_a_cosine():
    tau, n = 0.1, 8
    algo = _iql(tau=tau, num_updates=n)
    algo.update(_batch(0), 0)
    for step in range(1, 4):
        old = _params(algo.critics_target)
        algo.update(_batch(step), step)
        online, target = _params(algo.critics), _params(algo.critics_target)
        for k in online:
            torch.testing.assert_close(target[k], (1 - tau) * old[k] + tau * online[k],
                                       rtol=1e-6, atol=1e-7, msg=k)
        lr = algo.actor_optimizer.param_groups[0]["lr"]
        assert lr == pytest.approx(3e-4 * (1 + math.cos(math.pi * (step + 1) / n)) / 2, rel=1e-6)
    for group in (algo.critic_optimizer, algo.value_optimizer):
        assert group.param_groups[0]["lr"] == 3e-4  # only the actor's decays


@pytest.mark.parametrize("name", ["td3_bc", "iql"])
def test_acting_is_the_deterministic_actor_on_normalized_observations_in_the_env_box(name):
    """TD3+BC's π(s), IQL's Gaussian mean (no sample): tanh(MLP((o − mean) / std)) mapped from
    [-1, 1] to the env's action box."""
    algo, prefix = (_td3(), "") if name == "td3_bc" else (_iql(), "mean.")
    obs = _batch(5)["observations"]
    s, _, _ = _inputs(_batch(5))
    spec = _spec()
    with torch.no_grad():
        unit = torch.tanh(_mlp(_params(algo.actor), s, prefix)).numpy()
    actions, _ = algo.act(obs, None)
    expected = unit * (spec.action_high - spec.action_low) / 2 + (spec.action_high + spec.action_low) / 2
    np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-6)
    again, _ = algo.act(obs, None)
    assert np.array_equal(actions, again)  # deterministic: no sampling


@pytest.mark.parametrize("member", [None, 0, 1])
def test_frozen_critics_give_the_same_q_with_gradients_only_to_the_inputs(member):
    """QEnsemble.frozen: the forward's Q-values (all members, or one), the forward's gradient
    with respect to the action, and no gradient into any critic parameter (an actor's step
    must not touch the critics)."""
    torch.manual_seed(0)
    critics = QEnsemble(OBS + ACT, (8, 8), n=2)
    s, a = torch.randn(B, OBS), torch.randn(B, ACT, requires_grad=True)
    full = critics(s, a)  # (B, 2)
    expected = full if member is None else full[:, member]
    frozen = critics.frozen(s, a, member=member)
    torch.testing.assert_close(frozen, expected)
    (want,) = torch.autograd.grad(expected.sum(), a)
    (got,) = torch.autograd.grad(frozen.sum(), a, retain_graph=True)
    torch.testing.assert_close(got, want)
    frozen.sum().backward()
    assert all(p.grad is None for p in critics.parameters())
