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


def _family_reference_scores(alias: DatasetAlias) -> tuple[float, float, dict[str, str]] | None:
    from bench.errors import DatasetError
    from bench.reference import load_card

    family = alias.env_id.split("-")[0].lower()
    try:
        card = load_card(family)
    except DatasetError:
        return None
    source = (f"ref_min: uniform random policy, ref_max: {family} expert reference policy; mean "
              f"returns over {card['episodes']} stochastic episodes (reference.json)")
    return card["random"]["mean_return"], card["expert"]["mean_return"], {
        "ref_min_source": source, "ref_max_source": source, "ref_scores_source": source}


def make_random(alias: DatasetAlias, *, num_transitions: int, seed: int) -> dict[str, Any]:
    def make_env() -> gym.Env:
        return gym.make(alias.env_id, **alias.env_kwargs)

    env = make_env()
    low, high = env.action_space.low, env.action_space.high
    buffers = collect_episodes(make_env, UniformRandomPolicy(low, high, seed=seed),
                               num_transitions=num_transitions, seed=seed, desc=alias.alias)
    family_refs = _family_reference_scores(alias)
    ref_seed = seed + REF_SEED_OFFSET
    if family_refs is not None:
        # The family's reference policies exist: normalize like every other dataset of it.
        ref_min, ref_max, ref_sources = family_refs
    else:
        ref_min = mean_return(make_env, UniformRandomPolicy(low, high, seed=ref_seed),
                              episodes=REF_EPISODES, seed=ref_seed)
        ref_max = D4RL_HOPPER_EXPERT
        ref_sources = {
            "ref_min_source": f"mean return of the uniform random policy over {REF_EPISODES} "
                              f"episodes (seeds {ref_seed}+)",
            "ref_max_source": "D4RL hopper expert reference return 3234.3 (Fu et al. 2020), "
                              "provisional: no reference policies were committed when this was made",
            "ref_scores_source": "ref_min: own random policy, 100 episodes; ref_max: D4RL hopper "
                                 "expert 3234.3 (provisional)",
        }
    provenance = {
        "generator": "bench.data.makers.make_random",
        "policy": "uniform random actions in the action box",
        "policy_sha256": None,
        "seed": seed,
        "episode_seeds": f"{seed} + episode index",
        "requested_transitions": num_transitions,
        "alias": alias.alias,
        **ref_sources,
    }
    return write_dataset(
        alias.local_id, buffers, env, ref_min=ref_min, ref_max=ref_max,
        provenance=provenance, algorithm_name="uniform-random",
        description=f"Self-generated {alias.alias} on {alias.env_id}: {alias.description}. "
                    "NOT the D4RL or Farama dataset.",
    )


def make_with_reference_policy(which: str) -> Callable[..., dict[str, Any]]:
    """Maker for ``expert`` / ``medium``: the committed reference policy acting stochastically."""

    def make(alias: DatasetAlias, *, num_transitions: int, seed: int) -> dict[str, Any]:
        from bench.reference import load_reference_policy

        family = alias.env_id.split("-")[0].lower()
        policy, card = load_reference_policy(family, which, seed=seed)
        entry = card[which]

        def make_env() -> gym.Env:
            return gym.make(alias.env_id, **alias.env_kwargs)

        buffers = collect_episodes(make_env, policy, num_transitions=num_transitions, seed=seed,
                                   desc=alias.alias)
        provenance = {
            "generator": f"bench.data.makers.make_with_reference_policy({which!r})",
            "policy": f"{family} {which} reference policy ({entry['file']}, PPO snapshot "
                      f"{entry['snapshot']}), acting stochastically",
            "policy_sha256": entry["sha256"], "seed": seed,
            "episode_seeds": f"{seed} + episode index", "requested_transitions": num_transitions,
            "alias": alias.alias,
            "ref_scores_source": f"ref_min: uniform random policy, ref_max: {family} expert "
                                 f"reference policy; both mean returns over {card['episodes']} "
                                 "stochastic episodes (reference.json)",
        }
        return write_dataset(
            alias.local_id, buffers, make_env(), ref_min=card["random"]["mean_return"],
            ref_max=card["expert"]["mean_return"], provenance=provenance,
            algorithm_name=f"ppo-{which}-reference",
            description=f"Self-generated {alias.alias} on {alias.env_id}: {alias.description}. "
                        "NOT the D4RL or Farama dataset.")

    return make


def make_combined(*parts: str) -> Callable[..., dict[str, Any]]:
    """Maker for ``medium-expert``: the union of the suite's own component datasets (made first
    if missing, with the same seed), combined with ``minari.combine_datasets``."""

    def make(alias: DatasetAlias, *, num_transitions: int, seed: int) -> dict[str, Any]:
        import minari

        from bench.data import storage
        from bench.data.catalog import ALIASES
        from bench.data.resolve import make_alias

        components = [ALIASES[p] for p in parts]
        for c in components:
            if not storage.is_present(c.local_id):
                make_alias(c, num_transitions=num_transitions // len(parts), seed=seed)
        metas = [storage.read_metadata(c.local_id) for c in components]
        combined = minari.combine_datasets([minari.load_dataset(c.local_id) for c in components],
                                           alias.local_id)
        sha = storage.sha256_file(storage.data_file(alias.local_id))
        flats = [storage.load_flat(c.local_id, m["data_sha256"]) for c, m in zip(components, metas)]
        storage.save_flat(sha, storage.FlatEpisodes(
            *(np.concatenate([getattr(f, k) for f in flats]) for k in storage._FIELDS)))
        first = metas[0]
        provenance = {
            "source": "self-generated", "generator": f"bench.data.makers.make_combined{parts}",
            "components": [{"dataset_id": c.local_id, "data_sha256": m["data_sha256"],
                            "policy_sha256": m["bench_provenance"].get("policy_sha256")}
                           for c, m in zip(components, metas)],
            "alias": alias.alias, "ref_scores_source": first["bench_provenance"].get("ref_scores_source"),
        }
        combined.storage.update_metadata({
            "bench_provenance": provenance, "data_sha256": sha,
            "ref_min_score": first["ref_min_score"], "ref_max_score": first["ref_max_score"],
            "description": f"Self-generated {alias.alias} on {alias.env_id}: "
                           f"{' + '.join(c.local_id for c in components)}. NOT the D4RL or Farama dataset.",
            "algorithm_name": "combined", "author": {"bench (self-generated)"}})
        return storage.read_metadata(alias.local_id)

    return make


MAKERS: dict[str, Callable[..., dict[str, Any]]] = {
    "random": make_random,
    "expert": make_with_reference_policy("expert"),
    "medium": make_with_reference_policy("medium"),
    "medium-expert": make_combined("hopper-medium", "hopper-expert"),
}


def unavailable_message(alias: DatasetAlias) -> str:
    official = (f" or put the official {alias.official_id} in your Minari root "
                "(MINARI_DATASETS_PATH)") if alias.official_id else ""
    return (f"{alias.alias} cannot be made yet: its recipe (PPO's training rollouts up to the "
            f"medium reference policy) is not implemented in this version. Use another "
            f"hopper alias{official}.")
