"""Recipes for the suite's own datasets (the ``generator`` field of an alias).

Each maker collects episodes with a batched policy, measures the reference returns it needs and
writes a Minari dataset whose metadata says exactly how it was made.
"""
from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np

from bench.data.catalog import D4RL_HOPPER_EXPERT, DatasetAlias
from bench.data.generate import UniformRandomPolicy, collect_episodes, write_dataset

REF_EPISODES = 100  # episodes used to measure a reference return
REF_SEED_OFFSET = 1_000_000  # reference episodes use seeds disjoint from the dataset's


def mean_return(make_env: Callable[[], gym.Env], policy, *, episodes: int, seed: int) -> float:
    buffers = collect_episodes(make_env, policy, num_episodes=episodes, seed=seed,
                               desc="reference return")
    return float(np.mean([sum(b.rewards) for b in buffers]))


def make_random(alias: DatasetAlias, *, num_transitions: int, seed: int) -> dict[str, Any]:
    def make_env() -> gym.Env:
        return gym.make(alias.env_id, **alias.env_kwargs)

    env = make_env()
    low, high = env.action_space.low, env.action_space.high
    buffers = collect_episodes(make_env, UniformRandomPolicy(low, high, seed=seed),
                               num_transitions=num_transitions, seed=seed, desc=alias.alias)
    ref_seed = seed + REF_SEED_OFFSET
    ref_min = mean_return(make_env, UniformRandomPolicy(low, high, seed=ref_seed),
                          episodes=REF_EPISODES, seed=ref_seed)
    provenance = {
        "generator": "bench.data.makers.make_random",
        "policy": "uniform random actions in the action box",
        "policy_sha256": None,
        "seed": seed,
        "episode_seeds": f"{seed} + episode index",
        "requested_transitions": num_transitions,
        "alias": alias.alias,
        "ref_min_source": f"mean return of the uniform random policy over {REF_EPISODES} "
                          f"episodes (seeds {ref_seed}+)",
        # Provisional until the suite's own expert policy lands; says so wherever it is shown.
        "ref_max_source": "D4RL hopper expert reference return 3234.3 (Fu et al. 2020), "
                          "provisional until the suite's expert policy is committed",
        "ref_scores_source": "ref_min: own random policy, 100 episodes; ref_max: D4RL hopper "
                             "expert 3234.3 (provisional)",
    }
    return write_dataset(
        alias.local_id, buffers, env, ref_min=ref_min, ref_max=D4RL_HOPPER_EXPERT,
        provenance=provenance, algorithm_name="uniform-random",
        description=f"Self-generated {alias.alias} on {alias.env_id}: {alias.description}. "
                    "NOT the D4RL or Farama dataset.",
    )


MAKERS: dict[str, Callable[..., dict[str, Any]]] = {"random": make_random}


def unavailable_message(alias: DatasetAlias) -> str:
    official = (f" or put the official {alias.official_id} in your Minari root "
                "(MINARI_DATASETS_PATH)") if alias.official_id else ""
    return (f"{alias.alias} cannot be made yet: it needs the suite's trained reference policy, "
            f"which this version does not ship. Use hopper-random{official}.")
