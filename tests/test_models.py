import numpy as np
import pytest
import torch

from bench.algos.dt import TargetReturn
from bench.algos.dt import DecisionTransformer, DecisionTransformerNet, DTConfig
from bench.config import make_config
from bench.data.sampler import TaskSpec, Sampler
from bench.nn import fast_dropout
from conftest import make_flat

SPEC = TaskSpec(11, 3, np.zeros(11, np.float32), np.ones(11, np.float32),
                   -np.ones(3, np.float32), np.ones(3, np.float32), 1000, "Hopper-v5")


def _inputs(B=4, K=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, K, 11, generator=g), torch.rand(B, K, 3, generator=g) * 2 - 1,
            torch.rand(B, K, generator=g), torch.arange(K).expand(B, K).clone())


@pytest.mark.parametrize("use_returns", [True, False])
def test_dt_is_causal(use_returns):
    cfg = make_config(DTConfig, "smoke", {"context_len": "6"}, {"use_returns": use_returns})
    net = DecisionTransformerNet(11, 3, cfg, 1000).eval()
    s, a, r, t = _inputs()
    base = net(s, a, r, t)
    for j in range(1, 6):
        s2, a2, r2 = s.clone(), a.clone(), r.clone()
        s2[:, j:] += 5.0
        a2[:, j - 1:] += 1.0  # a_{j-1} comes after s_{j-1}: it must not change that prediction
        r2[:, j:] += 3.0
        out = net(s2, a2, r2, t)
        torch.testing.assert_close(out[:, :j], base[:, :j])
        assert not torch.allclose(out[:, j:], base[:, j:])


def test_dt_noreturn_removes_return_tokens():
    with_r = DecisionTransformerNet(11, 3, make_config(DTConfig, "smoke"), 1000)
    without = DecisionTransformerNet(11, 3, make_config(DTConfig, "smoke", fixed={"use_returns": False}), 1000)
    assert with_r.tokens_per_step == 3 and without.tokens_per_step == 2
    assert without.embed_return is None
    s, a, r, t = _inputs()
    without.eval()
    # Returns cannot influence the no-return model at all.
    torch.testing.assert_close(without(s, a, r, t), without(s, a, r * 100, t))


def test_left_padded_masked_window_equals_the_short_sequence():
    """Training sees padded windows with masks; acting sees the short sequence. Same numbers."""
    net = DecisionTransformerNet(11, 3, make_config(DTConfig, "smoke", {"context_len": "6"}), 1000).eval()
    s, a, r, t = _inputs(B=1)
    n_pad = 2
    mask = torch.ones(1, 6, dtype=torch.bool)
    mask[:, :n_pad] = False
    padded = net(s, a, r, t, mask)
    short = net(s[:, n_pad:], a[:, n_pad:], r[:, n_pad:], t[:, n_pad:])
    torch.testing.assert_close(padded[:, n_pad:], short, rtol=1e-5, atol=1e-5)


def test_fast_dropout_rate_scale_and_reproducibility():
    x = torch.ones(1000, 1000)
    torch.manual_seed(0)
    y = fast_dropout(x, 0.1, True)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.9) < 0.002
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.9))
    torch.manual_seed(0)
    assert torch.equal(fast_dropout(x, 0.1, True), y)
    assert fast_dropout(x, 0.1, False) is x
    # Gradients flow through kept elements only, scaled.
    x.requires_grad_(True)
    fast_dropout(x, 0.5, True).sum().backward()
    assert set(torch.unique(x.grad).tolist()) <= {0.0, 2.0}


@pytest.mark.parametrize("algo_name", ["dt", "dt_noreturn", "bc"])
def test_training_reduces_loss_on_a_learnable_dataset(algo_name):
    from bench import registry

    # Actions are a deterministic function of the state: any working learner fits them.
    flat = make_flat([40] * 10, obs_dim=11, act_dim=3)
    flat.observations[:, 2:] = np.random.default_rng(0).normal(size=flat.observations[:, 2:].shape)
    flat.actions[:] = np.tanh(flat.observations[flat.obs_index][:, 2:5])
    entry = registry.get(algo_name)
    cfg = make_config(entry.config_cls, "smoke", {"num_updates": "300", "lr": "1e-3"}, entry.defaults)
    torch.manual_seed(0)
    sampler = Sampler(flat, seed=0)
    spec = sampler.spec(-np.ones(3), np.ones(3), 1000)
    algo = entry.cls(cfg, spec, torch.device("cpu"))
    losses = [algo.update(algo.sample(sampler), step)["loss"] for step in range(300)]
    assert np.mean(losses[-20:]) < 0.3 * np.mean(losses[:20])


def test_dt_act_keeps_a_return_to_go_per_env():
    torch.manual_seed(0)
    algo = DecisionTransformer(make_config(DTConfig, "smoke"), SPEC, torch.device("cpu"))
    state = algo.initial_state(3, TargetReturn(1800.0))
    assert torch.allclose(state.returns[:, state.slot()], torch.tensor(1.8))
    obs = np.zeros((3, 11), np.float32)
    actions, state = algo.act(obs, state)
    assert actions.shape == (3, 3) and np.all(np.abs(actions) <= 1)
    state = algo.observe(state, actions, np.array([100.0, 0.0, -50.0]))
    torch.testing.assert_close(state.returns[:, state.slot()], torch.tensor([1.7, 1.8, 1.85]))
    assert [c.label for c in algo.eval_conditions()] == ["target=3600", "target=1800"]


@pytest.mark.parametrize("budget, fixed, steps", [
    ("smoke", {}, 300), ("smoke", {"use_returns": False}, 300), ("smoke", {"n_layers": 2}, 40),
    ("full", {}, 30)])
def test_act_equals_the_forward_pass_on_the_window(budget, fixed, steps):
    """``act`` computes one query in the last block, with its linear layers row-padded; its
    actions must be the network's on the left-padded, masked window of the last K steps, over
    episodes longer than the history's padding."""
    torch.manual_seed(0)
    algo = DecisionTransformer(make_config(DTConfig, budget, fixed=fixed), SPEC, torch.device("cpu"))
    algo.net.eval()
    K, n, target = algo.config.context_len, 3, 1.8
    rng = np.random.default_rng(1)
    state = algo.initial_state(n, TargetReturn(1800.0))
    states = torch.zeros(n, K - 1 + steps, 11)  # left-padded histories, as training windows
    actions = torch.zeros(n, K - 1 + steps, 3)
    returns = torch.zeros(n, K - 1 + steps)
    returns[:, K - 1] = target
    for t in range(steps):
        obs = rng.normal(size=(n, 11)).astype(np.float32)
        got, state = algo.act(obs, state)
        i = t + K - 1
        states[:, i] = torch.from_numpy(obs)  # SPEC normalizes with mean 0, std 1
        window = slice(i - K + 1, i + 1)
        mask = torch.arange(t - K + 1, t + 1) >= 0
        with torch.no_grad():
            expected = algo.net(states[:, window], actions[:, window], returns[:, window],
                                torch.arange(t - K + 1, t + 1).clamp(min=0).expand(n, K),
                                mask.expand(n, K))[:, -1]
        torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-5, atol=1e-5)
        actions[:, i] = torch.from_numpy(got)  # SPEC's action range is [-1, 1]: no rescaling
        reward = rng.uniform(0, 3, n)
        state = algo.observe(state, got, reward)
        if i + 1 < returns.shape[1]:
            returns[:, i + 1] = returns[:, i] - torch.from_numpy(reward).float() * algo.config.reward_scale


def test_dt_actions_do_not_depend_on_the_batch_size():
    torch.manual_seed(0)
    algo = DecisionTransformer(DTConfig(), SPEC, torch.device("cpu"))  # full size, K = 20
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(30, 10, 11)).astype(np.float32)
    batch_state = algo.initial_state(10, TargetReturn(3600.0))
    single = [algo.initial_state(1, TargetReturn(3600.0)) for _ in range(10)]
    for t in range(30):
        batch_actions, batch_state = algo.act(obs[t], batch_state)
        batch_state = algo.observe(batch_state, batch_actions, obs[t, :, 0])
        for i in range(10):
            a, single[i] = algo.act(obs[t, i:i + 1], single[i])
            single[i] = algo.observe(single[i], a, obs[t, i:i + 1, 0])
            np.testing.assert_array_equal(a[0], batch_actions[i])


def test_target_returns_default_to_the_paper_on_hopper_and_to_the_data_elsewhere():
    import dataclasses

    from bench.data.sampler import default_target_returns

    assert default_target_returns(SPEC) == (3600.0, 1800.0)
    car = dataclasses.replace(SPEC, env_id="bench/CarRacingLatent-v0", best_return=931.4)
    assert default_target_returns(car) == (931.0, 466.0)
    algo = DecisionTransformer(make_config(DTConfig, "smoke"), car, torch.device("cpu"))
    assert [c.label for c in algo.eval_conditions()] == ["target=931", "target=466"]
    with pytest.raises(ValueError, match="target_returns"):
        default_target_returns(dataclasses.replace(car, best_return=None))


def test_a_target_return_is_evaluated_at_exactly_the_configured_value():
    """The condition carries the target to acting as a number; its label is short where it can
    be (target=3600) and never rounded (`:g` made 12345.67 into 12345.7)."""
    config = make_config(DTConfig, "smoke", {"target_returns": "3600,12345.67,0.1"})
    algo = DecisionTransformer(config, SPEC, torch.device("cpu"))
    conditions = algo.eval_conditions()
    assert [c.label for c in conditions] == ["target=3600", "target=12345.67", "target=0.1"]
    for condition, target in zip(conditions, (3600.0, 12345.67, 0.1)):
        history = algo.initial_state(2, condition)
        assert history.returns[0, history.pad].item() == pytest.approx(target * config.reward_scale,
                                                                      rel=1e-7)


def test_a_condition_given_as_text_is_refused_not_read_as_the_default():
    algo = DecisionTransformer(make_config(DTConfig, "smoke"), SPEC, torch.device("cpu"))
    with pytest.raises(TypeError, match="neither the default nor one of TargetReturn"):
        algo.initial_state(3, "target=3600")
