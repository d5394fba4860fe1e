"""Goal-conditioned tasks (issue 28): OGBench's pointmaze navigate tasks as envs, their datasets
made with OGBench's recipe, goal relabelling, success rates, and GCBC."""
from __future__ import annotations

import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import make_flat

from bench.algos.gcbc import GCBC, GCBCConfig
from bench.data import storage
from bench.data.catalog import ALIASES
from bench.data.resolve import resolve
from bench.data.sampler import Sampler, TaskSpec
from bench.envs.goal_tasks import success_summary, task_of_seed
from bench.errors import UsageError
from bench.making import ogbench_maze
from bench.making.makers import make_alias
from bench.run import RunRequest, execute

QUIET = lambda m: None  # noqa: E731


# -- the task env ---------------------------------------------------------------------------

def test_the_reset_seed_picks_the_task_and_the_goal_follows_the_observation():
    env = gym.make("bench/pointmaze-medium-navigate-v0")
    maze = env.unwrapped
    tasks = maze.task_infos
    for seed in range(7):
        obs, info = env.reset(seed=seed)
        task = task_of_seed(seed, 5)
        assert env.get_wrapper_attr("task_id") == task == 1 + seed % 5
        assert obs.shape == (4,)
        np.testing.assert_array_equal(obs[2:], np.asarray(info["goal"], np.float32))
        # Start and goal lie within the jitter (±1) of the task's cells.
        assert np.abs(obs[:2] - np.asarray(tasks[task - 1]["init_xy"])).max() <= 1.0 + 1e-6
        assert np.abs(obs[2:] - np.asarray(tasks[task - 1]["goal_xy"])).max() <= 1.0 + 1e-6
        # The jitter follows the seed (OGBench draws it from numpy's global generator, which
        # the reset seeds and then restores).
        before = np.random.get_state()[1].copy()
        np.testing.assert_array_equal(env.reset(seed=seed)[0], obs)
        np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_an_episode_returns_one_exactly_when_it_reaches_its_goal():
    """The maze's own oracle, without noise, reaches task 3's goal: return 1, terminated there;
    standing still returns 0 after 1,000 steps."""
    env = gym.make("bench/pointmaze-medium-navigate-v0")
    maze = env.unwrapped
    oracle = ogbench_maze.MazeOracle(maze)
    obs, _ = env.reset(seed=2)  # task 3
    total, steps = 0.0, 0
    while True:
        direction = oracle.subgoal(obs[:2], obs[2:]) - obs[:2]
        obs, reward, terminated, truncated, _ = env.step(direction / (np.linalg.norm(direction) + 1e-6))
        total, steps = total + reward, steps + 1
        if terminated or truncated:
            break
    assert (total, terminated) == (1.0, True) and steps < 1000
    assert np.linalg.norm(obs[:2] - obs[2:]) <= 1.0
    env.reset(seed=2)
    total = sum(env.step(np.zeros(2))[1] for _ in range(1000))
    assert total == 0.0


def test_success_by_task_follows_the_episode_seeds():
    # first seed 7: episodes 0..9 run tasks 3,4,5,1,2,3,4,5,1,2
    returns = np.array([1, 0, 1, 1, 0, 0, 0, 1, 1, 0], float)
    summary = success_summary(returns, first_seed=7, num_tasks=5)
    assert summary["by_task"] == {"task1": 1.0, "task2": 0.0, "task3": 0.5, "task4": 0.0,
                                  "task5": 1.0}
    assert summary["episodes_by_task"] == {f"task{k}": 2 for k in range(1, 6)}
    assert summary["rate"] == pytest.approx(0.5)


# -- the datasets ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, vertices", [("pointmaze-medium-navigate-v0", 21),
                                            ("pointmaze-large-navigate-v0", 22)])
def test_cached_distances_pick_the_envs_oracle_subgoal_everywhere(name, vertices):
    env = ogbench_maze.collection_env(name)
    env.reset(seed=0)
    maze = env.unwrapped
    oracle = ogbench_maze.MazeOracle(maze)
    cells = list(zip(*np.nonzero(oracle.free)))
    assert len(ogbench_maze.vertex_cells(oracle.free)) == vertices
    rng = np.random.default_rng(0)
    for _ in range(300):
        start, goal = cells[rng.integers(len(cells))], cells[rng.integers(len(cells))]
        xy = np.asarray(maze.ij_to_xy(start)) + rng.uniform(-1.9, 1.9, 2)
        goal_xy = np.asarray(maze.ij_to_xy(goal)) + rng.uniform(-1.9, 1.9, 2)
        np.testing.assert_array_equal(oracle.subgoal(xy, goal_xy),
                                      maze.get_oracle_subgoal(xy, goal_xy)[0])


def test_the_recipe_gives_the_same_episodes_whatever_the_worker_count():
    one = ogbench_maze.collect("pointmaze-medium-navigate-v0", 3, seed=5, workers=1)
    two = ogbench_maze.collect("pointmaze-medium-navigate-v0", 3, seed=5, workers=2)
    for key in ("observations", "actions", "reached"):
        np.testing.assert_array_equal(one[key], two[key])
    assert one["observations"].shape == (3, 1001, 2) and one["actions"].shape == (3, 1000, 2)
    assert np.abs(one["actions"]).max() <= 1.0
    assert (one["reached"] > 0).all()  # the noisy expert reaches goals
    other = ogbench_maze.collect("pointmaze-medium-navigate-v0", 1, seed=6, workers=1)
    assert not np.array_equal(other["actions"][0], one["actions"][0])


def test_the_made_dataset_records_its_recipe_and_scores_success(tiny_goal_dataset):
    alias = ALIASES[tiny_goal_dataset]
    meta = storage.read_metadata(alias.local_id)
    provenance = meta["bench_provenance"]
    assert provenance["source"] == "self-generated"
    assert provenance["goal_task"]["num_tasks"] == 5
    assert (meta["ref_min_score"], meta["ref_max_score"]) == (0.0, 1.0)
    flat = storage.load_flat(alias.local_id, meta["data_sha256"])
    assert flat.num_episodes == 3 and flat.num_transitions == 3000
    assert flat.observations.shape[1] == 2 and flat.truncations.sum() == 3


# -- cube-single-play (OGBench's manipulation play recipe) -----------------------------------

def test_the_cube_recipe_seeds_each_episode_on_its_own_and_its_oracle_moves_the_cube():
    from bench.making import ogbench_cube

    both = ogbench_cube.collect_episodes("cube-single-play-v0", 3, range(0, 2))
    second = ogbench_cube.collect_episodes("cube-single-play-v0", 3, range(1, 2))
    for key in ("observations", "actions", "reached"):  # so worker blocks cannot matter
        np.testing.assert_array_equal(both[key][1:], second[key])
    assert both["observations"].shape == (2, 1001, 28) and both["actions"].shape == (2, 1000, 5)
    assert np.abs(both["actions"]).max() <= 1.0 and not np.array_equal(*both["actions"])
    assert (both["reached"] >= 3).all()  # the oracle finishes pick-and-place tasks
    env = gym.make("bench/cube-single-play-v0")  # its evaluation: 200 steps, [obs, goal] rows
    obs, _ = env.reset(seed=7)
    assert env.spec.max_episode_steps == 200 and obs.shape == (56,)
    assert env.get_wrapper_attr("task_id") == task_of_seed(7, 5) == 3


def test_a_cube_dataset_is_made_with_its_recipe_and_trains_a_goal_learner(isolated_roots,
                                                                          tmp_path):
    make_alias(ALIASES["cube-single-play"], num_transitions=1000, seed=0, log=QUIET)
    meta = storage.read_metadata("bench/cube/single-play-v0")
    provenance = meta["bench_provenance"]
    assert provenance["generator"] == "bench.making.ogbench_cube.collect"
    assert provenance["goals_reached_per_episode"] >= 3
    assert provenance["goal_task"] == {"env_id": "bench/cube-single-play-v0", "num_tasks": 5,
                                       "goal": "the observation to reach (arm and cube)"}
    result = execute(RunRequest(algo="gcbc", dataset="cube-single-play", seed=0, budget="smoke",
                                eval_episodes=5, eval_mode="sync", out=tmp_path), log=QUIET)
    assert set(result["success"]["by_task"]) == {f"task{k}" for k in range(1, 6)}
    assert all(n <= 200 for n in result["conditions"]["default"]["episode_lengths"])


def test_ogbenchs_own_file_is_converted_when_present(tmp_path, monkeypatch):
    """A file in OGBench's layout (rows to a terminal row whose action is unused) under its data
    directory is used instead of the recipe, once, with provenance `official`. The file here is a
    stand-in written by the test, not OGBench data."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    rows = 11  # 10 transitions per trajectory
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(2 * rows, 2)).astype(np.float32)
    act = rng.uniform(-1, 1, (2 * rows, 2)).astype(np.float32)
    terminals = np.zeros(2 * rows, bool)
    terminals[[rows - 1, 2 * rows - 1]] = True
    path = ogbench_maze.official_file("pointmaze-large-navigate-v0")
    path.parent.mkdir(parents=True)
    np.savez_compressed(path, observations=obs, actions=act, terminals=terminals)
    alias = ALIASES["pointmaze-large-navigate"]
    meta = make_alias(alias, log=QUIET)
    assert meta["bench_provenance"]["source"] == "official"
    assert meta["bench_provenance"]["file_sha256"] == storage.sha256_file(path)
    # runs record it as OGBench's file, not as data the suite made (bench results says which)
    assert resolve("pointmaze-large-navigate", download=False).source == "official (converted)"
    flat = storage.load_flat(alias.local_id, meta["data_sha256"])
    assert flat.num_episodes == 2 and flat.num_transitions == 20
    np.testing.assert_array_equal(flat.observations[:rows], obs[:rows])
    np.testing.assert_array_equal(flat.actions[:10], act[:10])  # the terminal row's action is dropped
    np.testing.assert_array_equal(flat.actions[10:], act[rows:2 * rows - 1])


# -- goal relabelling -----------------------------------------------------------------------

def _sampler() -> Sampler:
    return Sampler(make_flat([5, 8, 3]), seed=0)  # obs = (episode, step)


def test_goals_are_the_state_itself_a_later_state_of_its_episode_or_any_state():
    sampler = _sampler()
    b = sampler.goal_mixture(2000, p_current=1.0, p_future=0.0, p_random=0.0)
    np.testing.assert_array_equal(b["goals"], b["observations"])
    assert b["goal_is_current"].all()

    b = sampler.goal_mixture(2000, p_current=0.0, p_future=1.0, p_random=0.0)
    episode, step = b["observations"].T
    goal_episode, goal_step = b["goals"].T
    np.testing.assert_array_equal(goal_episode, episode)
    assert (goal_step > step).all() and not b["goal_is_current"].any()
    # uniform over the steps left: from s_0 of the 8-step episode, s_1 .. s_8 all occur
    assert set(goal_step[(episode == 1) & (step == 0)]) == set(range(1, 9))
    np.testing.assert_array_equal(b["next_observations"][:, 1], b["observations"][:, 1] + 1)

    b = sampler.goal_mixture(4000, p_current=0.0, p_future=1.0, p_random=0.0, geometric=0.5)
    episode, step = b["observations"].T
    k = b["goals"][:, 1] - step
    first = (episode == 1) & (step == 0)  # 8 steps left: k ~ Geometric(0.5), P(k = 1) = 1/2
    assert abs((k[first] == 1).mean() - 0.5) < 0.1 and (k >= 1).all()

    b = sampler.goal_mixture(4000, p_current=0.2, p_future=0.5, p_random=0.3)
    same = b["goals"][:, 0] == b["observations"][:, 0]
    assert abs(b["goal_is_current"].mean() - 0.2) < 0.04
    assert (~same).mean() > 0.1  # random goals from other episodes
    with pytest.raises(ValueError, match="sum to 1"):
        sampler.goal_mixture(4, p_current=0.5, p_future=0.6, p_random=0.0)


# -- GCBC -----------------------------------------------------------------------------------

def _goal_spec() -> TaskSpec:
    return TaskSpec(2, 2, np.zeros(2, np.float32), np.ones(2, np.float32),
                    -np.ones(2, np.float32), np.ones(2, np.float32), 1000, "test", goal_dim=2,
                    num_tasks=5)


def test_gcbc_loss_is_the_unit_gaussian_negative_log_likelihood():
    torch.manual_seed(0)
    algo = GCBC(GCBCConfig(hidden=(8,)), _goal_spec(), torch.device("cpu"))
    batch = {"observations": np.array([[0.5, -1.0], [2.0, 0.0]], np.float32),
             "goals": np.array([[1.0, 1.0], [0.0, 3.0]], np.float32),
             "actions": np.array([[0.3, -0.2], [-0.9, 0.4]], np.float32)}
    with torch.no_grad():
        mean = algo.policy(torch.tensor(np.concatenate([batch["observations"], batch["goals"]], 1)))
    a = batch["actions"].astype(np.float64)
    m = mean.numpy().astype(np.float64)
    hand = np.mean([sum(0.5 * (a[i, j] - m[i, j]) ** 2 + 0.5 * math.log(2 * math.pi)
                        for j in range(2)) for i in range(2)])
    assert algo.update(batch, 0)["actor_loss"] == pytest.approx(hand, rel=1e-6)


def test_gcbc_acts_on_the_goal_and_refuses_envs_without_task_goals():
    torch.manual_seed(0)
    algo = GCBC(GCBCConfig(hidden=(8,)), _goal_spec(), torch.device("cpu"))
    rows = np.array([[0.0, 0.0, 5.0, 5.0], [0.0, 0.0, -5.0, 5.0]], np.float32)
    actions, _ = algo.act(rows, None)
    assert not np.array_equal(actions[0], actions[1])  # same state, other goal
    assert np.abs(actions).max() <= 1.0
    spec = TaskSpec(2, 2, np.zeros(2, np.float32), np.ones(2, np.float32),
                    -np.ones(2, np.float32), np.ones(2, np.float32), 1000, "Hopper-v5")
    with pytest.raises(UsageError, match="goal-conditioned"):
        GCBC(GCBCConfig(hidden=(8,)), spec, torch.device("cpu"))


def test_a_run_on_a_goal_task_reports_success_per_task(tiny_goal_dataset, tmp_path):
    """bc (goal-blind: it sees the observation part) and gcbc (the goal too) on the tiny task."""
    for algo in ("bc", "gcbc"):
        result = execute(RunRequest(algo=algo, dataset=tiny_goal_dataset, seed=0, budget="smoke",
                                    eval_episodes=5, eval_mode="sync", out=tmp_path), log=QUIET)
        success = result["success"]
        assert set(success["by_task"]) == {f"task{k}" for k in range(1, 6)}
        assert success["rate"] == pytest.approx(np.mean(result["episode_returns"]))
        assert result["normalized_score"] == pytest.approx(100 * success["rate"])
        assert json.loads(json.dumps(result)) == result
    from bench.results import format_table, load_results, score_table

    text = format_table(score_table(load_results(tmp_path)))
    assert "the score is the success rate in percent" in text and "gcbc" in text


@pytest.mark.parametrize("algo", ["sac", "ppo"])
def test_an_online_learner_is_refused_a_goal_task_before_anything_is_written(
        tiny_goal_dataset, tmp_path, algo):
    """Its networks are sized for the observation, the env shows [observation, goal]: it crashed
    inside training (sac's replay buffer, ppo's observation statistics) after making its run
    directory."""
    notes = []
    with pytest.raises(UsageError, match=f"{algo} learns online .* goal tasks.*gcbc"):
        execute(RunRequest(algo=algo, dataset=None, env="bench/pointmaze-medium-navigate-v0",
                           seed=0, budget="smoke", out=tmp_path), log=notes.append)
    assert not any(tmp_path.iterdir())


def test_a_goal_blind_offline_learner_is_told_it_will_not_see_the_goals(tiny_goal_dataset,
                                                                          tmp_path):
    notes = []
    execute(RunRequest(algo="bc", dataset=tiny_goal_dataset, seed=0, budget="smoke",
                       eval_episodes=2, eval_mode="sync", out=tmp_path), log=notes.append)
    assert any("bc does not condition on goals" in str(n) for n in notes)
    notes.clear()
    execute(RunRequest(algo="gcbc", dataset=tiny_goal_dataset, seed=0, budget="smoke",
                       eval_episodes=2, eval_mode="sync", out=tmp_path), log=notes.append)
    assert not any("does not condition on goals" in str(n) for n in notes)
    # The IDMs take a goal task's goals only from their `task` goal source.
    from bench import registry
    from bench.config import make_config

    idm = registry.get("gcsl_idm")
    default = make_config(idm.config_cls, "smoke", {}, idm.defaults, idm.presets)
    task = make_config(idm.config_cls, "smoke", {"goal_source": "task"}, idm.defaults, idm.presets)
    assert not idm.cls.takes_task_goals(default) and idm.cls.takes_task_goals(task)


# -- GCIVL ----------------------------------------------------------------------------------

def _gcivl(**fields):
    from bench.algos.gcivl import GCIVL, GCIVLConfig

    torch.manual_seed(0)
    algo = GCIVL(GCIVLConfig(hidden=(8,), **fields), _goal_spec(), torch.device("cpu"))
    with torch.no_grad():  # targets apart from the online heads, so the two cannot be confused
        for p in algo.values_target.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return algo


def _gcivl_batch() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(1)
    return {"observations": torch.tensor(rng.normal(size=(3, 2)), dtype=torch.float32),
            "next_observations": torch.tensor(rng.normal(size=(3, 2)), dtype=torch.float32),
            "actions": torch.tensor(rng.uniform(-1, 1, (3, 2)), dtype=torch.float32),
            "goals": torch.tensor(rng.normal(size=(3, 2)), dtype=torch.float32),
            "policy_goals": torch.tensor(rng.normal(size=(3, 2)), dtype=torch.float32),
            "goal_is_current": torch.tensor([0.0, 1.0, 0.0])}


def test_gcivl_value_loss_is_each_heads_expectile_regression_onto_its_backup():
    algo = _gcivl(expectile=0.9, gamma=0.9)
    b = _gcivl_batch()
    with torch.no_grad():
        v = algo.values(b["observations"], b["goals"]).numpy().astype(np.float64)
        t_next = algo.values_target(b["next_observations"], b["goals"]).numpy().astype(np.float64)
        t_now = algo.values_target(b["observations"], b["goals"]).numpy().astype(np.float64)
    total = 0.0
    for i, success in enumerate([0.0, 1.0, 0.0]):
        r, mask = success - 1.0, 1.0 - success
        adv = r + 0.9 * mask * t_next[i].min() - t_now[i].mean()
        w = 0.9 if adv >= 0 else 0.1
        total += sum(w * (r + 0.9 * mask * t_next[i, k] - v[i, k]) ** 2 for k in range(2))
    assert algo.losses(b)["value_loss"].item() == pytest.approx(total / 3, rel=1e-5)


def test_gcivl_policy_weights_are_exp_alpha_advantage_capped_at_100():
    algo = _gcivl(alpha=10.0)
    b = _gcivl_batch()
    with torch.no_grad():
        adv = (algo.values(b["next_observations"], b["policy_goals"]).mean(-1)
               - algo.values(b["observations"], b["policy_goals"]).mean(-1)).numpy()
        mean = algo.policy(torch.cat([b["observations"], b["policy_goals"]], -1)).numpy()
    a = b["actions"].numpy()
    weights = np.minimum(np.exp(10.0 * adv.astype(np.float64)), 100.0)
    log_prob = -0.5 * ((a - mean) ** 2).sum(1) - math.log(2 * math.pi)
    assert algo.losses(b)["actor_loss"].item() == pytest.approx(-(weights * log_prob).mean(),
                                                                rel=1e-5)
    # With α = 10⁴ every positive advantage would weigh exp(10⁴ · A): capped at 100.
    algo = _gcivl(alpha=1e4)
    with torch.no_grad():
        adv = (algo.values(b["next_observations"], b["policy_goals"]).mean(-1)
               - algo.values(b["observations"], b["policy_goals"]).mean(-1)).numpy()
    assert (adv > 0).any()
    with np.errstate(over="ignore"):
        capped = np.minimum(np.exp(1e4 * adv.astype(np.float64)), 100.0)
    assert algo.losses(b)["weight"].item() == pytest.approx(capped.mean(), rel=1e-5)


def test_gcivl_targets_move_tau_of_the_way_after_each_update(tiny_goal_dataset):
    from bench.data import load_flat, resolve

    algo = _gcivl(tau=0.25, batch_size=16)
    sampler = Sampler(load_flat(resolve(tiny_goal_dataset).dataset_id,
                                resolve(tiny_goal_dataset).sha256), seed=0)
    before = [p.clone() for p in algo.values_target.parameters()]
    algo.update(algo.sample(sampler), 0)
    for old, target, online in zip(before, algo.values_target.parameters(),
                                   algo.values.parameters()):
        torch.testing.assert_close(target, old + 0.25 * (online - old))


# -- HIQL -----------------------------------------------------------------------------------

def test_subgoals_are_the_states_k_steps_ahead_capped_at_the_episode_end():
    sampler = _sampler()  # episodes of 5, 8 and 3 steps; obs = (episode, step)
    b = sampler.goal_mixture(3000, p_current=0.2, p_future=0.5, p_random=0.3)
    offsets, idx = b["offsets"], b["transitions"]
    episode, step = b["observations"].T
    goal_episode, goal_step = b["goals"].T
    future = offsets > 0
    np.testing.assert_array_equal(goal_step[future] - step[future], offsets[future])
    np.testing.assert_array_equal(offsets[b["goal_is_current"] & (offsets >= 0)], 0)
    assert (offsets == -1).any() and (offsets == 0).any()
    ahead = sampler.states_ahead(idx, 2)
    lengths = np.array([5, 8, 3])[episode.astype(int)]
    np.testing.assert_array_equal(ahead[:, 0], episode)
    np.testing.assert_array_equal(ahead[:, 1], np.minimum(step + 2, lengths))


def _hiql(**fields):
    from bench.algos.hiql import HIQL, HIQLConfig

    torch.manual_seed(0)
    return HIQL(HIQLConfig(hidden=(8,), rep_dim=3, **fields), _goal_spec(), torch.device("cpu"))


def _hiql_batch() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(2)
    b = _gcivl_batch()
    b["low_subgoals"] = torch.tensor(rng.normal(size=(3, 2)), dtype=torch.float32)
    b["high_targets"] = torch.tensor(rng.normal(size=(3, 2)), dtype=torch.float32)
    return b


def test_hiql_representations_have_length_root_dim_and_the_low_level_leaves_phi_alone():
    algo = _hiql()
    b = _hiql_batch()
    z = algo.values.phi(b["observations"], b["goals"])
    torch.testing.assert_close(torch.linalg.vector_norm(z, dim=-1), torch.full((3,), math.sqrt(3)))
    out = algo.losses(b)
    out["low_actor_loss"].backward(retain_graph=True)
    assert all(p.grad is None for p in algo.values.parameters())
    assert any(p.grad is not None for p in algo.low_policy.parameters())
    out["high_actor_loss"].backward(retain_graph=True)
    assert all(p.grad is None for p in algo.values.parameters())  # φ(s, s_ahead) is a target
    out["value_loss"].backward()
    assert all(p.grad is not None for p in algo.values.phi.parameters())


def test_hiql_high_level_regresses_the_subgoals_representation_weighted_by_its_advantage():
    algo = _hiql(high_alpha=3.0)
    b = _hiql_batch()
    s, g, ahead = b["observations"], b["policy_goals"], b["high_targets"]
    with torch.no_grad():
        adv = (algo.values(ahead, g).mean(-1) - algo.values(s, g).mean(-1)).numpy()
        target = algo.values.phi(s, ahead).numpy()
        mean = algo.high_policy(torch.cat([s, g], -1)).numpy()
    weights = np.minimum(np.exp(3.0 * adv.astype(np.float64)), 100.0)
    log_prob = -0.5 * ((target - mean) ** 2).sum(1) - 1.5 * math.log(2 * math.pi)
    assert algo.losses(b)["high_actor_loss"].item() == pytest.approx(-(weights * log_prob).mean(),
                                                                     rel=1e-5)


def test_hiql_acts_through_its_normalized_subgoal():
    algo = _hiql()
    rows = np.array([[0.0, 0.0, 5.0, 5.0], [0.0, 0.0, -5.0, 5.0]], np.float32)
    actions, _ = algo.act(rows, None)
    with torch.no_grad():
        t = torch.tensor(rows)
        z = algo.high_policy(t)
        z = z / torch.linalg.vector_norm(z, dim=-1, keepdim=True) * math.sqrt(3)
        expected = algo.low_policy(torch.cat([t[:, :2], z], -1)).clamp(-1, 1).numpy()
    np.testing.assert_allclose(actions, expected, rtol=1e-6, atol=1e-7)
    assert not np.array_equal(actions[0], actions[1])


# -- the goal setter trained offline (gs_idm) --------------------------------------------------

def _gs_idm(**fields):
    from bench.algos.gs_idm import GoalSetterIDM, GoalSetterIDMConfig

    torch.manual_seed(0)
    spec = dataclasses.replace(_goal_spec(), obs_mean=np.array([1.0, -2.0], np.float32),
                               obs_std=np.array([2.0, 0.5], np.float32))
    return GoalSetterIDM(GoalSetterIDMConfig(hidden=(8,), idm_hidden=(8,), **fields), spec,
                         torch.device("cpu"))


def _gs_idm_batch() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(3)
    b = _gcivl_batch()
    b["high_targets"] = torch.tensor(rng.normal(size=(3, 2)), dtype=torch.float32)
    for key in ("idm_observations", "idm_goals"):
        b[key] = torch.tensor(rng.normal(size=(3, 2)), dtype=torch.float32)
    b["idm_actions"] = torch.tensor(rng.uniform(-1, 1, (3, 2)), dtype=torch.float32)
    return b


@pytest.mark.parametrize("high_alpha", [3.0, 0.0])
def test_gs_idm_goal_setter_regresses_the_normalized_state_ahead_weighted_by_its_advantage(
        high_alpha):
    algo = _gs_idm(high_alpha=high_alpha)
    b = _gs_idm_batch()
    s, g, ahead = b["observations"], b["policy_goals"], b["high_targets"]
    with torch.no_grad():
        adv = (algo.values(ahead, g).mean(-1) - algo.values(s, g).mean(-1)).numpy()
        mean = algo.goal_setter(torch.cat([s, g], -1)).numpy().astype(np.float64)
    target = (ahead.numpy() - [1.0, -2.0]) / [2.0, 0.5]  # the subgoal in normalized units
    weights = np.minimum(np.exp(high_alpha * adv.astype(np.float64)), 100.0)
    if high_alpha == 0:
        np.testing.assert_array_equal(weights, 1.0)
    log_prob = -0.5 * ((target - mean) ** 2).sum(1) - math.log(2 * math.pi)
    assert algo.losses(b)["goal_setter_loss"].item() == pytest.approx(
        -(weights * log_prob).mean(), rel=1e-5)


def test_gs_idm_idm_regresses_the_data_action_and_each_loss_reaches_only_its_network():
    algo = _gs_idm()
    b = _gs_idm_batch()
    with torch.no_grad():
        norm = lambda x: (x - torch.tensor([1.0, -2.0])) / torch.tensor([2.0, 0.5])  # noqa: E731
        predicted = algo.idm(norm(b["idm_observations"]), norm(b["idm_goals"])).numpy()
    out = algo.losses(b)
    assert out["idm_loss"].item() == pytest.approx(
        ((predicted - b["idm_actions"].numpy()) ** 2).mean(), rel=1e-5)
    out["idm_loss"].backward(retain_graph=True)
    assert all(p.grad is None for p in [*algo.values.parameters(), *algo.goal_setter.parameters()])
    out["goal_setter_loss"].backward(retain_graph=True)
    assert all(p.grad is None for p in algo.values.parameters())  # the advantage is a weight
    assert all(p.grad is not None for p in algo.goal_setter.parameters())


def test_gs_idm_acts_through_the_idm_towards_its_subgoal():
    algo = _gs_idm()
    rows = np.array([[0.0, 0.0, 5.0, 5.0], [0.0, 0.0, -5.0, 5.0]], np.float32)
    actions, _ = algo.act(rows, None)
    with torch.no_grad():
        t = torch.tensor(rows)
        s = (t[:, :2] - torch.tensor([1.0, -2.0])) / torch.tensor([2.0, 0.5])
        expected = algo.idm(s, algo.goal_setter(t)).numpy()
    np.testing.assert_allclose(actions, expected, rtol=1e-6, atol=1e-7)
    assert not np.array_equal(actions[0], actions[1])


# -- the IDMs' `task` goal source -----------------------------------------------------------

@pytest.mark.parametrize("algo", ["gcsl_idm", "transformer_idm"])
def test_idms_reach_for_the_tasks_goal_with_goal_source_task(algo, tiny_goal_dataset, tmp_path):
    overrides = {"goal_source": "task", "extra_goal_sources": "self"}
    result = execute(RunRequest(algo=algo, dataset=tiny_goal_dataset, seed=0, budget="smoke",
                                eval_episodes=5, eval_mode="sync", out=tmp_path,
                                overrides=overrides), log=QUIET)
    assert result["condition"] == "goal=task"
    assert set(result["conditions"]) == {"goal=task", "goal=self"}
    for condition in result["conditions"].values():
        assert set(condition["success"]["by_task"]) == {f"task{k}" for k in range(1, 6)}


def test_the_task_source_passes_the_rows_goal_to_the_idm():
    from bench.algos.gcsl_idm import GCSLIDMConfig, GCSLInverseDynamics

    torch.manual_seed(0)
    idm = GCSLInverseDynamics(GCSLIDMConfig(hidden=(8,), goal_source="task"), _goal_spec(),
                              torch.device("cpu"))
    assert idm.uses_task_goals
    rows = np.array([[0.0, 0.0, 5.0, 5.0], [1.0, 2.0, -5.0, 5.0]], np.float32)
    actions, _ = idm.act(rows, idm.initial_state(2))
    with torch.no_grad():
        expected = idm.predict(torch.tensor(rows[:, :2]), torch.tensor(rows[:, 2:]))
    np.testing.assert_allclose(actions, expected.numpy(), rtol=1e-6, atol=1e-7)
    hopper = TaskSpec(11, 3, np.zeros(11, np.float32), np.ones(11, np.float32),
                      -np.ones(3, np.float32), np.ones(3, np.float32), 1000, "Hopper-v5")
    with pytest.raises(UsageError, match="goal source task"):
        GCSLInverseDynamics(GCSLIDMConfig(goal_source="task"), hopper, torch.device("cpu"))


# -- Dict observations: D4RL's pointmaze in Minari ------------------------------------------

@pytest.fixture(scope="module")
def d4rl_umaze(isolated_roots):
    """A local ``D4RL/pointmaze/umaze-v2`` made with Minari's own API: gymnasium-robotics'
    PointMaze_UMaze-v3 (Dict observations), a noisy go-to-goal controller, 10 episodes of 300
    steps, reference scores in the metadata (as Minari's published one has; stand-in numbers)."""
    pytest.importorskip("gymnasium_robotics")
    import minari
    from minari.data_collector import EpisodeBuffer

    env = gym.make("PointMaze_UMaze-v3", continuing_task=True, max_episode_steps=300)
    rng = np.random.default_rng(0)
    buffers = []
    for e in range(10):
        obs, _ = env.reset(seed=e)
        rows, actions, rewards, terms, truncs = [obs], [], [], [], []
        while True:
            direction = obs["desired_goal"] - obs["achieved_goal"]
            action = np.clip(direction + rng.normal(0, 0.5, 2), -1, 1).astype(np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            rows.append(obs)
            actions.append(action)
            rewards.append(reward)
            terms.append(terminated)
            truncs.append(truncated)
            if terminated or truncated:
                break
        buffers.append(EpisodeBuffer(
            id=e, seed=e, observations={k: np.stack([r[k] for r in rows]) for k in rows[0]},
            actions=np.stack(actions), rewards=np.asarray(rewards), terminations=np.asarray(terms),
            truncations=np.asarray(truncs)))
    minari.create_dataset_from_buffers("D4RL/pointmaze/umaze-v2", buffers, env=env,
                                       algorithm_name="test controller", ref_min_score=10.0,
                                       ref_max_score=110.0)
    env.close()
    return "D4RL/pointmaze/umaze-v2"


def test_dict_observations_load_as_the_observation_with_achieved_goals(d4rl_umaze):
    from bench.data import load_flat, resolve

    ds = resolve(d4rl_umaze)
    flat = load_flat(ds.dataset_id, ds.sha256)
    assert flat.observations.shape[1] == 4 and flat.achieved_goals.shape == (len(flat.observations), 2)
    np.testing.assert_allclose(flat.achieved_goals, flat.observations[:, :2], atol=1e-6)
    goals = Sampler(flat, seed=0).goal_mixture(64, 0.0, 1.0, 0.0)["goals"]
    assert goals.shape == (64, 2)


@pytest.mark.parametrize("algo", ["bc", "gcbc", "gcivl"])
def test_d4rl_pointmaze_trains_and_evaluates_with_its_metadatas_references(algo, d4rl_umaze,
                                                                           tmp_path):
    result = execute(RunRequest(algo=algo, dataset=d4rl_umaze, seed=0, budget="smoke",
                                eval_episodes=3, eval_mode="sync", out=tmp_path), log=QUIET)
    assert (result["ref_min"], result["ref_max"]) == (10.0, 110.0)
    assert result["normalized_score"] == pytest.approx(
        np.mean([100 * (r - 10.0) / 100.0 for r in result["episode_returns"]]))
    assert result["success"] is None  # scored by return, not by task success


@pytest.mark.parametrize("algo, data, overrides, match", [
    ("hiql", "d4rl_umaze", {}, "goals that are observations"),
    ("gs_idm", "d4rl_umaze", {}, "goals that are observations"),
    ("gcbc", "tiny_dataset", {}, "goal-conditioned"),
    ("gcsl_idm", "tiny_dataset", {"goal_source": "task"}, "goal source task")])
def test_runs_on_tasks_without_usable_goals_are_refused_before_writing(algo, data, overrides,
                                                                        match, request, tmp_path):
    with pytest.raises(UsageError, match=match):
        execute(RunRequest(algo=algo, dataset=request.getfixturevalue(data), seed=0,
                           budget="smoke", eval_episodes=1, out=tmp_path, overrides=overrides),
                log=QUIET)
    assert not any(tmp_path.iterdir())  # no run directory, no lock file


# -- learning at CI size --------------------------------------------------------------------

@pytest.fixture(scope="module")
def navigate_20():
    """20 episodes (20k transitions) of the pointmaze-medium-navigate recipe, as flat arrays."""
    from bench.data.storage import FlatEpisodes

    data = ogbench_maze.collect("pointmaze-medium-navigate-v0", 20, seed=0, workers=1)
    episodes, steps = data["actions"].shape[:2]
    ends = np.zeros(steps, bool)
    ends[-1] = True
    return FlatEpisodes(data["observations"].reshape(-1, 2), data["actions"].reshape(-1, 2),
                        np.zeros(episodes * steps, np.float32), np.zeros(episodes * steps, bool),
                        np.tile(ends, episodes), np.full(episodes, steps))


def _near_goal_success(act, cells_away: int = 2, episodes: int = 20) -> float:
    """Success on goals ``cells_away`` maze cells (by the shortest path) from random starts,
    200 steps each: short tasks that a small budget can learn (OGBench's five are long)."""
    env = gym.make("bench/pointmaze-medium-navigate-v0")
    oracle = ogbench_maze.MazeOracle(env.unwrapped)
    cells = [tuple(map(int, c)) for c in zip(*np.nonzero(oracle.free))]
    rng, wins = np.random.default_rng(0), 0.0
    for episode in range(episodes):
        start = cells[rng.integers(len(cells))]
        goals = [c for c in cells if oracle.distances(start)[c] == cells_away]
        obs, _ = env.reset(seed=episode, options={"task_info": {
            "init_ij": start, "goal_ij": goals[rng.integers(len(goals))]}})
        for _ in range(200):
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            if terminated or truncated:
                break
        wins += reward
    return wins / episodes


@pytest.mark.parametrize("name, floor", [("gcivl", 0.6), ("hiql", 0.6), ("gs_idm", 0.6),
                                         ("gcbc", 0.1)])
def test_goal_conditioned_learners_reach_near_goals_a_random_policy_does_not(navigate_20, name,
                                                                             floor):
    """1,500 updates of batch 256 with 64-64 networks on 20 recipe episodes: measured here,
    gcivl and hiql reach goals two cells away 95% of the time, gcbc 20%, the uniform random
    policy 0%."""
    from bench import registry

    entry = registry.get(name)
    torch.manual_seed(0)
    env = gym.make("bench/pointmaze-medium-navigate-v0")
    sizes = {"idm_hidden": (64, 64)} if name == "gs_idm" else {}
    algo = entry.cls(entry.config_cls(hidden=(64, 64), batch_size=256, **sizes),
                     TaskSpec.from_env(env),
                     torch.device("cpu"))
    sampler = Sampler(navigate_20, seed=0)
    for step in range(1500):
        algo.update(algo.sample(sampler), step)
    rng = np.random.default_rng(1)
    random_policy = _near_goal_success(lambda obs: rng.uniform(-1, 1, 2))
    learned = _near_goal_success(lambda obs: algo.act(obs[None], None)[0][0])
    assert learned >= floor and learned > random_policy + 0.05, (learned, random_policy)
