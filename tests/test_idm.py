"""The inverse-dynamics family: masks, causality, goal sources, recovery of actions on a toy
system, and every algorithm × goal source through the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench.goals import GoalCondition
from bench.algos.gcsl_idm import GCSLIDMConfig, GCSLInverseDynamics
from bench.algos.transformer_idm import (TransformerIDMConfig, TransformerIDMNet,
                                         TransformerInverseDynamics, hidden_steps,
                                         masked_token_layout)
from bench.config import make_config
from bench.data.sampler import Sampler
from bench.data.storage import FlatEpisodes
from bench.goals import GoalConfig, GoalSetter
from conftest import make_flat, run_cli

CPU = torch.device("cpu")


# -- masks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mask_pos, expected", [
    # K = 4; tokens s0 a0 s1 a1 s2 a2 s3 a3 s4(final, never masked)
    (0, [1, 1, 1, 1, 1, 1, 1, 1, 0]),
    (1, [0, 0, 1, 1, 1, 1, 1, 1, 0]),
    (2, [0, 0, 0, 0, 1, 1, 1, 1, 0]),
    (3, [0, 0, 0, 0, 0, 0, 1, 1, 0]),  # the last position: only s3, a3 masked
])
def test_masked_tokens_exactly(mask_pos, expected):
    hidden = hidden_steps(torch.tensor([mask_pos]), 4)
    np.testing.assert_array_equal(hidden[0].numpy(), [j >= mask_pos for j in range(4)])
    layout = masked_token_layout(hidden)
    np.testing.assert_array_equal(layout[0].numpy().astype(int), expected)


@pytest.mark.parametrize("mask_pos, expected", [
    # mask_current_state=False: masking starts at a_{mask_pos}; s_{mask_pos} stays visible
    (0, [0, 1, 1, 1, 1, 1, 1, 1, 0]),
    (2, [0, 0, 0, 0, 0, 1, 1, 1, 0]),
    (3, [0, 0, 0, 0, 0, 0, 0, 1, 0]),  # the last position: only a3 masked
])
def test_masked_tokens_with_the_current_state_visible(mask_pos, expected):
    hidden = hidden_steps(torch.tensor([mask_pos]), 4)
    layout = masked_token_layout(hidden, mask_current_state=False)
    np.testing.assert_array_equal(layout[0].numpy().astype(int), expected)


def _net(masked: bool, K: int = 4, mask_current_state: bool = True) -> TransformerIDMNet:
    config = TransformerIDMConfig(context_len=K, embed_dim=32, n_layers=2, dropout=0.0, goal_offset=1,
                                  masked=masked, mask_current_state=mask_current_state)
    torch.manual_seed(0)
    return TransformerIDMNet(3, 2, config).eval()


def _window(B: int = 2, K: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, K, 3, generator=g), torch.randn(B, K, 2, generator=g),
            torch.randn(B, 3, generator=g), torch.ones(B, K, dtype=torch.bool))


def test_causal_predictions_cannot_see_the_future():
    net = _net(masked=False)
    states, actions, goals, real = _window()
    base = net(states, actions, goals, real)
    for j in range(1, 4):
        s2, a2 = states.clone(), actions.clone()
        s2[:, j] += 5.0  # a later state ...
        a2[:, j - 1] += 5.0  # ... and the action just before it
        out = net(s2, a2, goals, real)
        # a_i for i < j sees neither; a_{j-1} is predicted at s_{j-1}, before a_{j-1}'s token.
        torch.testing.assert_close(out[:, :j], base[:, :j], rtol=0, atol=0)
        assert not torch.allclose(out[:, j:], base[:, j:])
    g2 = goals + 5.0  # the goal token is in front: every prediction depends on it
    assert not torch.allclose(net(states, actions, g2, real)[:, 0], base[:, 0])


@pytest.mark.parametrize("mask_current_state", [True, False])
def test_masked_predictions_ignore_masked_inputs_and_use_the_final_state(mask_current_state):
    net = _net(masked=True, mask_current_state=mask_current_state)
    states, actions, goals, real = _window()
    hidden = hidden_steps(torch.tensor([2, 2]), 4)
    base = net(states, actions, goals, real, hidden)
    first_hidden_state = 2 if mask_current_state else 3  # else s_{mask_pos} stays visible
    s2, a2 = states.clone(), actions.clone()
    s2[:, first_hidden_state:] += 5.0
    a2[:, 2:] += 5.0  # what lies under the mask tokens is never read
    torch.testing.assert_close(net(s2, a2, goals, real, hidden), base, rtol=0, atol=0)
    # Bidirectional: the final state changes the prediction of a masked action before it.
    assert not torch.allclose(net(states, actions, goals + 5.0, real, hidden)[:, 2], base[:, 2])
    if not mask_current_state:  # and s_{mask_pos} itself is read
        s3 = states.clone()
        s3[:, 2] += 5.0
        assert not torch.allclose(net(s3, actions, goals, real, hidden)[:, 2], base[:, 2])


def test_padded_steps_are_invisible():
    net = _net(masked=False)
    states, actions, goals, _ = _window()
    real = torch.tensor([[False, True, True, True]] * 2)
    base = net(states, actions, goals, real)
    s2 = states.clone()
    s2[:, 0] += 5.0
    torch.testing.assert_close(net(s2, actions, goals, real)[:, 1:], base[:, 1:], rtol=0, atol=0)


# -- relabelling ----------------------------------------------------------------------------
def test_fixed_offset_goal_pairs_stop_at_the_episode_end():
    lengths = [3, 8]
    batch = Sampler(make_flat(lengths), seed=0).goal_pairs(2000, 5, fixed_offset=True)
    steps, ep = batch["observations"][:, 1], batch["observations"][:, 0].astype(int)
    np.testing.assert_array_equal(batch["goals"][:, 0], ep)  # same episode
    np.testing.assert_array_equal(batch["goals"][:, 1], np.minimum(steps + 5, np.array(lengths)[ep]))
    # Return-to-go rides along for the learned goal model (rewards are e + 1 per step).
    np.testing.assert_allclose(batch["returns_to_go"], (np.array(lengths)[ep] - steps) * (ep + 1))


# -- goal sources ---------------------------------------------------------------------------
def _spec(flat: FlatEpisodes):
    return Sampler(flat).spec(-np.ones(flat.actions.shape[1]), np.ones(flat.actions.shape[1]), 100)


def test_dataset_goals_follow_the_nearest_best_episode():
    flat = make_flat([6, 6, 6, 6])  # rewards e + 1: episode 3 is the best
    config = GoalConfig(goal_source="dataset", goal_offset=2, goal_top_fraction=0.25)
    setter = GoalSetter(config, _spec(flat), CPU)
    setter.attach_dataset(Sampler(flat))
    assert setter.indexed_episodes == 1 and setter.indexed_states == 6
    obs = np.array([[3.0, 1.0], [0.2, 4.1], [3.0, 5.0]], np.float32)
    goals = setter.goals(obs, setter.initial_state(3, GoalCondition("dataset")))
    # Nearest states of episode 3 are steps 1, 4, 5; two steps later (capped at the final obs 6).
    np.testing.assert_array_equal(goals, [[3, 3], [3, 6], [3, 6]])
    assert [c.label for c in setter.conditions()] == ["goal=dataset"]


def test_self_goals_are_the_current_state_and_bad_sources_are_refused():
    flat = make_flat([5])
    setter = GoalSetter(GoalConfig(goal_source="self"), _spec(flat), CPU)
    obs = np.array([[0.0, 2.0]], np.float32)
    np.testing.assert_array_equal(setter.goals(obs, setter.initial_state(1, GoalCondition("self"))), obs)
    from bench.errors import UsageError

    with pytest.raises(UsageError, match="goal_source"):
        GoalSetter(GoalConfig(goal_source="oracle"), _spec(flat), CPU)


def test_learned_goal_model_fits_and_tracks_the_target_return():
    torch.manual_seed(0)
    flat = make_flat([20] * 10)
    sampler = Sampler(flat, seed=0)
    config = GoalConfig(goal_source="learned", goal_offset=3, goal_batch_size=128,
                        target_returns=(50.0, 10.0))
    setter = GoalSetter(config, _spec(flat), CPU)
    first = setter.update(setter.sample(sampler))["goal_mse"]
    for _ in range(300):
        last = setter.update(setter.sample(sampler))["goal_mse"]
    assert last < 0.1 * first
    # Acting asks the model: goals are the states 3 steps ahead (obs = (episode, step)), and the
    # target return is one of its inputs.
    obs = np.array([[2.0, 5.0], [7.0, 10.0], [4.0, 1.0]], np.float32)
    ahead = obs + np.array([0.0, 3.0], np.float32)
    goals = {t: setter.goals(obs, setter.initial_state(3, GoalCondition("learned", float(t))))
             for t in (50, 10)}
    for t in (50, 10):
        np.testing.assert_allclose(goals[t], ahead, atol=0.3)
    assert not np.array_equal(goals[50], goals[10])
    state = setter.initial_state(2, GoalCondition("learned", 10.0))
    np.testing.assert_array_equal(state.returns_to_go, [10.0, 10.0])
    setter.observe(state, np.array([1.0, 2.5]))
    np.testing.assert_array_equal(state.returns_to_go, [9.0, 7.5])
    assert [c.label for c in setter.conditions()] == ["goal=learned,target=50", "goal=learned,target=10"]


# -- recovering actions on a toy deterministic system ---------------------------------------
def _toy_flat(episodes: int = 100, length: int = 20, seed: int = 0) -> FlatEpisodes:
    """s_{t+1} = 0.8 s_t + 0.5 a_t in 3-d, random actions in [-1, 1]: a_t = 2 (s_{t+1} - 0.8 s_t)."""
    rng = np.random.default_rng(seed)
    obs, act = [], []
    for _ in range(episodes):
        a = rng.uniform(-1, 1, (length, 3)).astype(np.float32)
        s = np.zeros((length + 1, 3), np.float32)
        s[0] = rng.normal(scale=0.5, size=3)
        for t in range(length):
            s[t + 1] = 0.8 * s[t] + 0.5 * a[t]
        obs.append(s)
        act.append(a)
    n = episodes * length
    return FlatEpisodes(np.concatenate(obs), np.concatenate(act), np.ones(n, np.float32),
                        np.zeros(n, bool), np.tile(np.arange(length) == length - 1, episodes),
                        np.full(episodes, length))


def test_gcsl_idm_recovers_actions_on_a_toy_system():
    torch.manual_seed(0)
    flat = _toy_flat()
    sampler = Sampler(flat, seed=0)
    config = GCSLIDMConfig(max_offset=1, goal_offset=1, goal_source="self", hidden=(64, 64), lr=3e-3)
    algo = GCSLInverseDynamics(config, _spec(flat), CPU)
    for _ in range(1500):
        algo.update(algo.sample(sampler), 0)
    test = _toy_flat(episodes=5, seed=1)
    with torch.no_grad():
        pred = algo.predict(torch.as_tensor(test.observations[test.obs_index]),
                            torch.as_tensor(test.observations[test.obs_index + 1]))
    err = ((pred.numpy() - test.actions) ** 2).mean()
    assert err < 0.01 * test.actions.var(), err


def test_gcsl_idm_reads_raw_states_only_when_normalization_is_off():
    flat = _toy_flat(episodes=4)
    flat.observations[:] = flat.observations * 7.0 + 30.0  # a scale normalization would remove
    spec = _spec(flat)
    states = torch.as_tensor(flat.observations[:5])
    goals = torch.as_tensor(flat.observations[1:6])
    seen = {}
    for normalize in (True, False):
        torch.manual_seed(0)
        algo = GCSLInverseDynamics(GCSLIDMConfig(normalize_states=normalize, goal_source="self",
                                                 hidden=(8,)), spec, CPU)
        inputs = []
        algo.policy.register_forward_pre_hook(lambda module, args: inputs.append(args))
        algo.predict(states, goals)
        algo.update(algo.sample(Sampler(flat, seed=0)), 0)
        seen[normalize] = inputs
    mean, std = torch.as_tensor(spec.obs_mean), torch.as_tensor(spec.obs_std)
    torch.testing.assert_close(seen[True][0][0], (states - mean) / std)
    torch.testing.assert_close(seen[True][0][1], (goals - mean) / std)
    torch.testing.assert_close(seen[False][0][0], states)
    torch.testing.assert_close(seen[False][0][1], goals)
    # Training reads states the same way: raw ones sit near 30, normalized ones near 0.
    for i in (0, 1):  # the states and the goals of the training pairs
        assert seen[False][1][i].mean() > 20 and seen[True][1][i].abs().mean() < 3


@pytest.mark.parametrize("masked, mask_current_state", [(False, True), (True, True), (True, False)],
                         ids=["causal", "masked", "masked-current-state-visible"])
def test_transformer_idm_recovers_the_action_that_reaches_the_goal(masked, mask_current_state):
    torch.manual_seed(0)
    flat = _toy_flat()
    sampler = Sampler(flat, seed=0)
    K = 3
    # The masked variant must first infer the masked s_{K-1} from s_{K-2}, a_{K-2}: two hops.
    config = TransformerIDMConfig(context_len=K, embed_dim=64, n_layers=2 if masked else 1,
                                  dropout=0.0, lr=1e-3 if masked else 3e-3, warmup_steps=50,
                                  batch_size=64, masked=masked, goal_source="self", goal_offset=1,
                                  grad_clip=1.0, mask_current_state=mask_current_state)
    algo = TransformerInverseDynamics(config, _spec(flat), CPU)
    for _ in range(800):
        algo.update(algo.sample(sampler), 0)
    # Held-out windows. The last action is determined: a_{K-1} = 2 (s_K - 0.8 s_{K-1}); the
    # earlier ones are not (random actions), so they are not scored.
    batch = Sampler(_toy_flat(episodes=20, seed=1), seed=1).windows(256, K)
    keep = batch["mask"].all(1)
    states = algo.normalize(torch.as_tensor(batch["states"][keep]))
    goals = algo.normalize(torch.as_tensor(batch["next_state"][keep]))
    actions = torch.as_tensor(batch["actions"][keep])
    real = torch.ones(len(states), K, dtype=torch.bool)
    hidden = hidden_steps(torch.full((len(states),), K - 1), K) if masked else None
    algo.net.eval()
    with torch.no_grad():
        pred = algo.net(states, actions, goals, real, hidden)[:, K - 1]
    relative_mse = ((pred - actions[:, K - 1]) ** 2).mean().item() / actions.var().item()
    # Ignoring the goal gives ~1.0 (the actions are i.i.d.); measured here: 0.03 causal, 0.06 masked.
    assert relative_mse < 0.1, relative_mse


# -- acting and the CLI -----------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["gcsl_idm", "transformer_idm", "transformer_idm_masked"])
@pytest.mark.parametrize("goal_source", ["self", "dataset", "learned"])
def test_every_idm_and_goal_source_runs_through_the_cli(tmp_path, tiny_dataset, algo, goal_source):
    proc = run_cli("run", "--algo", algo, "--dataset", tiny_dataset, "--budget", "smoke",
                   "--set", f"goal_source={goal_source}", "--eval-episodes", "2",
                   "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(next(tmp_path.rglob("result.json")).read_text())
    assert result["condition"].startswith(f"goal={goal_source}")
    # learned is the default source: setting it is the default run, no override recorded
    assert result["overrides"] == ({} if goal_source == "learned" else {"goal_source": goal_source})
    assert np.isfinite(result["normalized_score"])
    if goal_source == "learned":
        assert set(result["conditions"]) == {"goal=learned,target=3600", "goal=learned,target=1800"}


def test_masked_idm_with_the_current_state_visible_runs_through_the_cli(tmp_path, tiny_dataset):
    proc = run_cli("run", "--algo", "transformer_idm_masked", "--dataset", tiny_dataset,
                   "--budget", "smoke", "--set", "mask_current_state=false", "--set",
                   "goal_source=dataset", "--eval-episodes", "2", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(next(tmp_path.rglob("result.json")).read_text())
    assert result["overrides"] == {"mask_current_state": "false", "goal_source": "dataset"}
    assert np.isfinite(result["normalized_score"])


def test_idm_runs_resume_to_the_same_numbers(tmp_path, tiny_dataset):
    from bench.run import RunRequest, execute
    from conftest import SimulatedKill, kill_after

    def request(out):
        return RunRequest(algo="transformer_idm", dataset=tiny_dataset, seed=0, budget="smoke",
                          overrides={"goal_source": "learned"}, out=out, eval_episodes=2,
                          resume=True)

    straight = execute(request(tmp_path / "a"), log=lambda m: None)
    with pytest.raises(SimulatedKill):
        execute(request(tmp_path / "b"), log=lambda m: None, callbacks=kill_after(5))
    resumed = execute(request(tmp_path / "b"), log=lambda m: None)
    assert resumed["episode_returns"] == straight["episode_returns"]


@pytest.mark.parametrize("algo", ["gcsl_idm", "transformer_idm_masked"])
def test_extra_goal_sources_score_exactly_what_separate_runs_score(tmp_path, tiny_dataset, algo):
    """The goal model has its own random streams, so training it beside the IDM changes nothing
    the IDM draws (weights, masks, dropout, batches): one run evaluated with several goal sources
    gives each source the numbers of a run of its own."""
    from bench.results import load_results, score_table
    from bench.run import RunRequest, execute

    def run(out, **overrides):
        return execute(RunRequest(algo=algo, dataset=tiny_dataset, seed=3, budget="smoke",
                                  overrides=overrides, out=out, eval_episodes=2),
                       log=lambda m: None)

    alone = run(tmp_path / "alone", goal_source="self")
    together = run(tmp_path / "together", goal_source="learned",
                   extra_goal_sources="dataset,self")
    assert list(together["conditions"]) == ["goal=learned,target=3600", "goal=learned,target=1800",
                                            "goal=dataset", "goal=self"]
    assert together["condition"] == "goal=learned,target=3600"  # the headline is goal_source's
    assert (together["conditions"]["goal=self"]["episode_returns"]
            == alone["conditions"]["goal=self"]["episode_returns"])
    # Different goals do act differently (the comparison above is not vacuous).
    assert (together["conditions"]["goal=dataset"]["episode_returns"]
            != together["conditions"]["goal=self"]["episode_returns"])

    rows = load_results(tmp_path / "together", conditions=True)
    assert sorted(rows["condition"]) == sorted(together["conditions"])
    table = score_table(rows)
    self_row = table[table["condition"] == "goal=self"].iloc[0]
    assert self_row["mean"] == pytest.approx(alone["normalized_score"])
    assert "condition" not in load_results(tmp_path / "together").columns


def test_a_goal_source_must_be_known_and_conditions_name_evaluated_sources():
    from bench.errors import UsageError

    flat = make_flat([5])
    with pytest.raises(UsageError, match="extra_goal_sources"):
        GoalSetter(GoalConfig(goal_source="self", extra_goal_sources=("nearest",)), _spec(flat), CPU)
    setter = GoalSetter(GoalConfig(goal_source="self", extra_goal_sources=("self",)), _spec(flat), CPU)
    assert [c.label for c in setter.conditions()] == ["goal=self"]  # a repeated source is evaluated once
    with pytest.raises(ValueError, match="dataset"):
        setter.initial_state(1, GoalCondition("dataset"))


def test_mask_current_state_is_refused_for_the_causal_model():
    from bench.errors import UsageError

    with pytest.raises(UsageError, match="transformer_idm_masked"):
        make_config(TransformerIDMConfig, "smoke", {"mask_current_state": "false"})
    masked = make_config(TransformerIDMConfig, "smoke", {"masked": "true", "mask_current_state": "false"})
    TransformerInverseDynamics(masked, _spec(make_flat([5])), CPU)


def test_transformer_idm_rejects_a_goal_beyond_its_window():
    from bench.errors import UsageError

    with pytest.raises(UsageError, match="goal_offset"):
        make_config(TransformerIDMConfig, "smoke", {"goal_offset": "50"})
