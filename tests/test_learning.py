"""Learned policies beat random ones in the environment: the end-to-end check that training,
data and evaluation fit together (a model that trains on shuffled pairs, or an evaluation that
feeds it the wrong observations, would lose to random here)."""
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from bench.making.generate import UniformRandomPolicy, collect_episodes, write_dataset
from bench.evaluate import PolicyAgent, evaluate
from bench.policies import GaussianMLPPolicy
from bench.run import RunRequest, eval_seed, execute

EXPERT = Path(__file__).resolve().parents[1] / "assets" / "hopper" / "expert.pt"
STEPS = 200  # long enough for a hopper to hop, short enough for CI


def _make_env() -> gym.Env:
    return gym.make("Hopper-v5", max_episode_steps=STEPS)


@pytest.fixture(scope="module")
def expert_dataset(isolated_roots) -> str:
    """About 4,000 transitions of the committed expert policy (sampled actions, as the suite's
    datasets are made), 200-step episodes."""
    dataset_id = "test/hopper/short-expert-v0"
    policy = GaussianMLPPolicy.load(EXPERT, deterministic=False, seed=0)
    buffers = collect_episodes(_make_env, policy, num_episodes=20, seed=0, num_envs=4)
    write_dataset(dataset_id, buffers, _make_env(), ref_min=0.0, ref_max=100.0,
                  provenance={"generator": "tests", "policy": "assets/hopper/expert.pt"},
                  description="test fixture", algorithm_name="expert")
    return dataset_id


def _random_returns(episodes: int, seed: int) -> np.ndarray:
    space = _make_env().action_space
    return evaluate(PolicyAgent(UniformRandomPolicy(space.low, space.high, seed=0)), _make_env,
                    episodes=episodes, seed=seed, mode="sync").returns


@pytest.mark.parametrize("algo, overrides", [
    ("bc", {"num_updates": "2000"}),
    # goals from the data's best states: needs no goal model
    ("gcsl_idm", {"num_updates": "2000", "goal_source": "dataset"}),
    # DT at its smoke size (1 layer, embed 32, K 5), a target near the data's 200-step returns
    ("dt", {"num_updates": "600", "batch_size": "32", "lr": "1e-3", "target_returns": "800"}),
    # CQL with 64-unit networks, 4 sampled actions of each kind, learning rates raised for 1k updates
    ("cql", {"num_updates": "1000", "batch_size": "64", "policy_lr": "3e-4", "qf_lr": "1e-3",
             "cql_n_actions": "4", "actor_hidden": "64,64", "q_hidden": "64,64",
             "checkpoint_every": "500", "log_every": "100"}),
    # full-size networks, CORL's settings otherwise (IQL: rewards scaled by the return range)
    ("td3_bc", {"num_updates": "1000", "batch_size": "64"}),
    ("iql", {"num_updates": "1000", "batch_size": "64"}),
])
def test_an_offline_learner_on_expert_data_beats_a_random_policy(expert_dataset, tmp_path,
                                                                 algo, overrides):
    result = execute(RunRequest(algo=algo, dataset=expert_dataset, seed=0, budget="smoke",
                                overrides=overrides, out=tmp_path, eval_episodes=3),
                     log=lambda m: None)
    random = _random_returns(3, eval_seed(0))  # the same start states
    learned = float(np.mean(result["episode_returns"]))
    assert learned > 4 * float(np.mean(random)), (learned, random)
