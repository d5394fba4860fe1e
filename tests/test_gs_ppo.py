"""Goal-setter PPO: goal action space, frozen / joint / V0 IDM training, the replay buffer's
relabelling, and every variant through the CLI."""
from __future__ import annotations

import functools
import json
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch

from bench.algos.gs_ppo import Actor
from bench.goals import GoalCondition
from bench.algos.gs_ppo import GoalSetterPPO, GoalSetterPPOConfig, ReplayBuffer
from bench.config import make_config
from bench.data import Sampler
from bench.data.sampler import TaskSpec
from bench.errors import UsageError
from conftest import run_cli

make_hopper = functools.partial(gym.make, "Hopper-v5", max_episode_steps=60)


def _spec(dataset: Sampler | None = None) -> TaskSpec:
    env = make_hopper()
    spec = TaskSpec.from_env(env)
    if dataset is not None:
        spec = dataset.spec(spec.action_low, spec.action_high, spec.max_episode_steps, spec.env_id)
    return spec


def _algo(variant_fields: dict, overrides: dict | None = None, dataset: Sampler | None = None):
    torch.manual_seed(0)
    cfg = make_config(GoalSetterPPOConfig, "smoke", {k: str(v) for k, v in (overrides or {}).items()},
                      variant_fields)
    algo = GoalSetterPPO(cfg, _spec(dataset), torch.device("cpu"))
    if dataset is not None:
        algo.attach_dataset(dataset)
    algo.setup(make_hopper, 0)
    return algo


@pytest.fixture(scope="module")
def hopper_sampler(tiny_dataset):
    from bench.data import load_flat, resolve

    ds = resolve(tiny_dataset, download=False)
    return Sampler(load_flat(ds.dataset_id, ds.sha256), seed=0)


def test_goal_action_space_has_the_state_dimension_and_log_probs_are_gaussian():
    plain = _algo({})
    v0 = _algo({"emit_actions": True, "idm_training": "joint"})
    assert plain.policy_output_dim() == 11 and v0.policy_output_dim() == 11 + 3
    mean, log_std = torch.randn(5, 14), torch.randn(5, 14) * 0.3
    x = mean + log_std.exp() * torch.randn(5, 14)
    normal = torch.distributions.Normal(mean, log_std.exp())
    torch.testing.assert_close(plain._log_prob(x[:, :11], mean[:, :11], log_std[:, :11]),
                               normal.log_prob(x)[:, :11].sum(-1))
    # V0: the goal never reaches the env, so the PPO ratio covers the action dimensions only.
    torch.testing.assert_close(v0._log_prob(x, mean, log_std), normal.log_prob(x)[:, 11:].sum(-1))


def test_frozen_idm_is_pretrained_then_never_changes(hopper_sampler):
    algo = _algo({}, dataset=hopper_sampler)
    initial = [p.detach().clone() for p in algo.idm.parameters()]
    metrics = algo.train_iteration()  # pretrains first
    assert metrics["idm/pretrain_loss_last"] < metrics["idm/pretrain_loss_first"]
    after_pretraining = [p.detach().clone() for p in algo.idm.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(initial, after_pretraining))
    actor_before = [p.detach().clone() for p in algo.net.parameters()]
    algo.train_iteration()
    algo.train_iteration()
    for a, b in zip(after_pretraining, algo.idm.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, algo.net.parameters()))


def test_frozen_variant_needs_a_dataset(tmp_path):
    proc = run_cli("run", "--algo", "gs_ppo", "--env", "Hopper-v5", "--budget", "smoke",
                   "--out", str(tmp_path))
    assert proc.returncode == 2 and "--dataset" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_joint_idm_loss_decreases_on_its_buffer():
    algo = _algo({"idm_training": "joint"}, {"idm_updates_per_iteration": 0})
    algo.train_iteration()
    algo.train_iteration()  # 512 transitions of the goal setter's own rollouts
    assert len(algo.buffer) == 512
    probe = algo.buffer.goal_pairs(512, algo.config.max_offset, np.random.default_rng(1))

    def loss() -> float:
        with torch.no_grad():
            target = (algo.tensor(probe["actions"]) - algo.act_shift) / algo.act_scale
            pred = algo.idm(algo.normalize(algo.tensor(probe["observations"])),
                            algo.normalize(algo.tensor(probe["goals"])))
            return torch.nn.functional.mse_loss(pred, target).item()

    before = loss()
    for _ in range(200):
        algo._gcsl_step(algo.buffer.goal_pairs(64, algo.config.max_offset, algo.idm_rng))
    assert loss() < 0.7 * before


def test_replay_relabelling_stays_inside_episodes():
    buf = ReplayBuffer(num_envs=2, capacity=16, obs_dim=2, act_dim=1)
    # env 0: episodes of 5, 3 and 30 steps (wraps the ring); env 1: one running episode of 7.
    for env, lengths in ((0, [5, 3, 30]), (1, [7])):
        for e, n in enumerate(lengths):
            for t in range(n):
                obs = np.array([e, t], np.float32)
                buf.add(env, obs, np.array([10 * e + t], np.float32),
                        obs + np.array([0, 1], np.float32), done=t == n - 1 and env == 0)
    pairs = buf.goal_pairs(4000, 4, np.random.default_rng(0))
    obs, goals, k = pairs["observations"], pairs["goals"], pairs["offsets"]
    assert ((1 <= k) & (k <= 4)).all()
    np.testing.assert_array_equal(goals[:, 0], obs[:, 0])  # same episode
    np.testing.assert_array_equal(goals[:, 1], obs[:, 1] + k)  # exactly k steps later
    np.testing.assert_array_equal(pairs["actions"][:, 0], 10 * obs[:, 0] + obs[:, 1])
    # the oldest kept transition of env 0 is step 14 of its 30-step episode (38 written, 16 kept)
    env0 = obs[:, 0] == 2
    assert obs[env0, 1].min() == 14 and obs[env0, 1].max() == 29
    assert k.max() == 4 and (k[obs[:, 1] == 29] == 1).all()


def test_v0_closeness_reaches_the_goal_head_and_the_idm_only():
    algo = _algo({"emit_actions": True, "idm_training": "joint"})
    d = algo.spec.obs_dim
    raw = torch.randn(32, d)
    batch = {"obs": torch.randn(32, d), "raw_obs": raw, "outputs": torch.randn(32, d + 3)}
    idm_before = [p.detach().clone() for p in algo.idm.parameters()]
    algo.net.zero_grad(set_to_none=True)
    aux, stats = algo.extra_losses(batch)
    # the IDM took its own closeness step toward PPO's actions ...
    assert any(not torch.equal(a, b) for a, b in zip(idm_before, algo.idm.parameters()))
    assert {"closeness/idm", "closeness/goal"} <= set(stats)
    aux.backward()
    # ... the goal loss reaches the goal rows of the actor's output layer, not the action rows,
    # not the critic, and leaves no gradient on the IDM.
    last = algo.net.actor_mean[-1]
    assert last.weight.grad[:d].abs().sum() > 0
    assert last.weight.grad[d:].abs().sum() == 0 and last.bias.grad[d:].abs().sum() == 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in algo.net.critic.parameters())
    assert algo.net.actor_logstd.grad is None or algo.net.actor_logstd.grad.abs().sum() == 0
    assert all(p.grad is None for p in algo.idm.parameters())
    assert all(p.requires_grad for p in algo.idm.parameters())


# -- the research notes' conditions (issue 29) ----------------------------------------------

def _params(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a: list[torch.Tensor], b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("normalized", [True, False])
def test_the_idm_reads_normalized_or_raw_states(hopper_sampler, normalized):
    """The notes' "perhaps normalizing is needed": idm_normalize_states=false hands the IDM raw
    (s, g) in pretraining and in decoding; the policy's goals stay in standard deviations."""
    algo = _algo({}, {"idm_normalize_states": normalized, "idm_pretrain_updates": 1},
                 dataset=hopper_sampler)
    seen = []
    algo.idm.register_forward_hook(lambda module, inputs, output: seen.append(inputs))
    pairs = hopper_sampler.goal_pairs(8, algo.config.max_offset)
    algo.idm.requires_grad_(True)  # (frozen outside pretraining)
    algo._gcsl_step(pairs)
    scale = (lambda x: (x - algo.obs_mean) / algo.obs_std) if normalized else (lambda x: x)
    torch.testing.assert_close(seen[0][0], scale(algo.tensor(pairs["observations"])))
    torch.testing.assert_close(seen[0][1], scale(algo.tensor(pairs["goals"])))
    obs, z = algo.tensor(pairs["observations"]), torch.randn(8, algo.spec.obs_dim)
    algo.decode(obs, z)
    z = z.clamp(-algo.config.goal_clip, algo.config.goal_clip)
    torch.testing.assert_close(seen[1][0], scale(obs))
    torch.testing.assert_close(seen[1][1], z if normalized else z * algo.obs_std + algo.obs_mean)
    assert not torch.allclose(algo.obs_std, torch.ones_like(algo.obs_std))  # the two differ


def test_a_random_fixed_idm_stays_at_its_initial_weights(hopper_sampler):
    """The notes' "train with random fixed gcsl_idm": no pretraining updates, frozen."""
    algo = _algo({}, {"idm_pretrain_updates": 0}, dataset=hopper_sampler)
    initial = _params(algo.idm)
    torch.manual_seed(0)
    fresh = _params(GoalSetterPPO(algo.config, algo.spec, torch.device("cpu")).idm)
    assert _same(initial, fresh)  # the seed's random init, nothing learned
    metrics = algo.train_iteration()
    algo.train_iteration()
    assert "idm/pretrain_loss_last" not in metrics and _same(initial, algo.idm.parameters())


def test_idm_parameters_in_ppos_optimizer_change_nothing(hopper_sampler):
    """The notes' "give gcsl_idm parameters to the optimizer": PPO's loss never reaches the
    IDM (it decodes under inference mode), so the run is the same number for number."""
    runs = []
    for in_optimizer in (False, True):
        algo = _algo({}, {"idm_pretrain_updates": 0, "idm_in_optimizer": in_optimizer},
                     dataset=hopper_sampler)
        assert len(algo.optimizer.param_groups) == 1 + in_optimizer
        idm = _params(algo.idm)
        metrics = [algo.train_iteration(), algo.train_iteration()]
        assert _same(idm, algo.idm.parameters())
        runs.append((metrics, _params(algo.net)))
    assert runs[0][0] == runs[1][0] and _same(runs[0][1], runs[1][1])


@pytest.mark.parametrize("idm_closeness", [True, False])
def test_v0_without_idm_closeness_leaves_the_idm_to_gcsl(idm_closeness):
    algo = _algo({"emit_actions": True, "idm_training": "joint"},
                 {"idm_closeness": idm_closeness, "closeness_coef": 0})
    d = algo.spec.obs_dim
    batch = {"obs": torch.randn(32, d), "raw_obs": torch.randn(32, d),
             "outputs": torch.randn(32, d + 3)}
    before = _params(algo.idm)
    aux, stats = algo.extra_losses(batch)
    assert _same(before, algo.idm.parameters()) == (not idm_closeness)
    assert ("closeness/idm" in stats) == idm_closeness and aux.item() == 0.0


def test_an_idm_trained_in_one_run_is_loaded_frozen_into_another(tmp_path):
    """The notes' "train idm with ppo data, then save it and fix it, then train ppo goal setter
    with fixed good idm": V0's IDM (trained on PPO's rollouts) goes into gs_ppo, which needs
    no dataset then, reads states in V0's units and never changes it."""
    first = tmp_path / "v0"
    assert run_cli("run", "--algo", "gs_ppo_v0", "--env", "Hopper-v5", "--budget", "smoke",
                   "--eval-episodes", "1", "--out", str(first)).returncode == 0
    run = next(first.rglob("checkpoint.pt")).parent
    trained = torch.load(run / "checkpoint.pt", weights_only=False)["algo"]["idm"]
    algo = _algo({}, {"idm_from_run": str(run)})
    assert algo.pretrained and not any(p.requires_grad for p in algo.idm.parameters())
    assert all(torch.equal(trained[k], v) for k, v in algo.idm.state_dict().items())
    algo.train_iteration()
    assert all(torch.equal(trained[k], v) for k, v in algo.idm.state_dict().items())
    pattern = str(run).replace("seed_0", "seed_{seed}")  # this run's seed: 0
    proc = run_cli("run", "--algo", "gs_ppo", "--env", "Hopper-v5", "--budget", "smoke",
                   "--eval-episodes", "1", "--set", f"idm_from_run={pattern}",
                   "--out", str(tmp_path / "fixed"))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("run", "--algo", "gs_ppo", "--env", "Hopper-v5", "--budget", "smoke",
                   "--seed", "1", "--set", f"idm_from_run={pattern}", "--out", str(tmp_path / "no"))
    assert proc.returncode == 2 and "seed_1" in proc.stderr  # seed 1's first run is missing
    proc = run_cli("run", "--algo", "gs_ppo_joint", "--env", "Hopper-v5", "--budget", "smoke",
                   "--set", f"idm_from_run={run}", "--out", str(tmp_path / "bad"))
    assert proc.returncode == 2 and "idm_training=frozen" in proc.stderr
    proc = run_cli("run", "--algo", "gs_ppo", "--env", "Hopper-v5", "--budget", "smoke",
                   "--set", f"idm_from_run={run}", "--set", "idm_normalize_states=false",
                   "--out", str(tmp_path / "raw"))
    assert proc.returncode == 2 and "idm_normalize_states=true" in proc.stderr
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished)
    (unfinished / "result.json").unlink()  # a run stopped (or still training) at a checkpoint
    proc = run_cli("run", "--algo", "gs_ppo", "--env", "Hopper-v5", "--budget", "smoke",
                   "--set", f"idm_from_run={unfinished}", "--out", str(tmp_path / "early"))
    assert proc.returncode == 2 and "has not finished" in proc.stderr


def test_the_idm_kept_with_records_loads_as_the_whole_checkpoint_does(tmp_path):
    """scripts/save_records.sh keeps only idm_only(checkpoint) of a run that idm_from_run names
    (a joint IDM's replay buffer is ≈ 20 MB): a run loading it is the run loading the whole."""
    from bench.algos.gs_ppo import idm_only, load_goal_setter

    assert run_cli("run", "--algo", "gs_ppo_v0", "--env", "Hopper-v5", "--budget", "smoke",
                   "--eval-episodes", "1", "--out", str(tmp_path / "v0")).returncode == 0
    run = next((tmp_path / "v0").rglob("checkpoint.pt")).parent
    kept = tmp_path / "records" / "seed_0"
    kept.mkdir(parents=True)
    shutil.copy(run / "result.json", kept)
    torch.save(idm_only(torch.load(run / "checkpoint.pt", weights_only=False)), kept / "checkpoint.pt")
    assert (kept / "checkpoint.pt").stat().st_size < (run / "checkpoint.pt").stat().st_size / 2
    scores = []
    for source in (run, kept):
        out = tmp_path / f"fixed-{source.parent.name}"
        proc = run_cli("run", "--algo", "gs_ppo", "--env", "Hopper-v5", "--budget", "smoke",
                       "--eval-episodes", "1", "--set", f"idm_from_run={source}", "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        scores.append(json.loads(next(out.rglob("result.json")).read_text())["episode_returns"])
    assert scores[0] == scores[1]
    with pytest.raises(UsageError, match="holds only"):
        load_goal_setter(kept)


def test_v0_evaluates_its_action_head_and_the_idm_decoding():
    algo = _algo({"emit_actions": True, "idm_training": "joint"})
    assert [c.label for c in algo.eval_conditions()] == ["act=policy", "act=idm"]
    obs = np.random.default_rng(0).normal(size=(4, 11)).astype(np.float32)
    a_policy, _ = algo.act(obs, algo.initial_state(4, Actor("policy")))
    a_idm, _ = algo.act(obs, algo.initial_state(4, Actor("idm")))
    assert a_policy.shape == a_idm.shape == (4, 3) and not np.allclose(a_policy, a_idm)


@pytest.mark.parametrize("algo, source", [("gs_ppo", "dataset"), ("gs_ppo_joint", "env"),
                                          ("gs_ppo_joint", "dataset"), ("gs_ppo_v0", "env")])
def test_variants_run_at_smoke_through_the_cli(algo, source, tiny_dataset, tmp_path):
    where = ["--dataset", tiny_dataset] if source == "dataset" else ["--env", "Hopper-v5"]
    proc = run_cli("run", "--algo", algo, *where, "--budget", "smoke", "--out", str(tmp_path),
                   "--eval-episodes", "2")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(next(tmp_path.rglob("result.json")).read_text())
    assert result["algo"] == algo and np.isfinite(result["mean_return"])
    rows = [json.loads(line) for line in next(tmp_path.rglob("metrics.jsonl")).read_text().splitlines()]
    if source == "dataset":
        assert "idm/pretrain_loss_last" in rows[0]
    if algo != "gs_ppo":
        assert any("idm/gcsl_loss" in r for r in rows)


def test_a_trained_goal_setter_is_a_goal_source_for_idms(tiny_dataset, tmp_path):
    from bench.algos.gs_ppo import load_goal_setter

    assert run_cli("run", "--algo", "gs_ppo", "--dataset", tiny_dataset, "--budget", "smoke",
                   "--out", str(tmp_path / "gs"), "--eval-episodes", "2").returncode == 0
    run = next((tmp_path / "gs").rglob("result.json")).parent
    goals = load_goal_setter(run)(np.zeros((3, 11), np.float32))
    assert goals.shape == (3, 11) and np.isfinite(goals).all()
    # An IDM's gs_ppo goal source acts with exactly that goal setter's goals.
    from bench.goals import GoalConfig, GoalSetter

    setter = GoalSetter(GoalConfig(goal_source="gs_ppo", goal_setter_run=str(run)), _spec(),
                        torch.device("cpu"))
    obs = np.random.default_rng(0).normal(0, 1, (3, 11)).astype(np.float32)
    np.testing.assert_array_equal(setter.goals(obs, setter.initial_state(3, GoalCondition("gs_ppo"))),
                                  load_goal_setter(run)(obs))
    assert not np.allclose(load_goal_setter(run)(obs), obs)
    proc = run_cli("run", "--algo", "gcsl_idm", "--dataset", tiny_dataset, "--budget", "smoke",
                   "--set", "goal_source=gs_ppo", "--set", f"goal_setter_run={run}",
                   "--out", str(tmp_path / "idm"), "--eval-episodes", "2")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(next((tmp_path / "idm").rglob("result.json")).read_text())
    assert result["condition"] == "goal=gs_ppo"
    missing = run_cli("run", "--algo", "gcsl_idm", "--dataset", tiny_dataset, "--budget", "smoke",
                      "--set", "goal_source=gs_ppo", "--out", str(tmp_path / "bad"))
    assert missing.returncode == 2 and "goal_setter_run" in missing.stderr
    assert not (tmp_path / "bad").exists(), "a usage error writes nothing"
