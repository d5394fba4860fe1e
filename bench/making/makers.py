"""Recipes for the suite's own datasets (the ``generator`` field of an alias), and
``make_alias``, which runs one: one maker per dataset at a time, the dataset appearing in the
Minari root only when whole (``bench.data.staging``).

Each maker collects episodes with a batched policy, measures the reference returns it needs and
writes a Minari dataset whose metadata says exactly how it was made.
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import sys
import time
from typing import Any, Callable

import gymnasium as gym
import minari
import numpy as np
import torch

from bench.algos.ppo import PPO, PPOConfig
from bench.carracing.data import maker as carracing_maker
from bench.config import config_from_dict
from bench.data import storage
from bench.data.catalog import ALIASES, D4RL_REFERENCE_RETURNS, SUCCESS_SOURCE, DatasetAlias
from bench.data.sampler import TaskSpec
from bench.data.staging import maker_lock, replacing, staged
from bench.errors import DatasetError, UsageError
from bench.evaluate import PolicyAgent, evaluate
from bench.making.generate import (BLOCK_SEED_STRIDE, UniformRandomPolicy, collect_blocks,
                                   collect_episodes, write_dataset)
from bench.making import ogbench_cube, ogbench_maze
from bench.making.replay import load_action_record, replay
from bench.progress import progress_bar
from bench.provenance import package_versions
from bench.data.cards import card_path, card_scores, family_of, load_card, reference_dir
from bench.reference import load_reference_policy
from bench.seeding import seed_everything

REF_EPISODES = 100  # episodes used to measure a reference return
REF_SEED_OFFSET = 1_000_000  # reference episodes use seeds disjoint from the dataset's


def _family_reference_scores(alias: DatasetAlias) -> tuple[float, float, dict[str, str]] | None:

    family = family_of(alias.env_id)
    if not card_path(family).exists():
        return None
    # A card that is there but damaged or holding unusable returns is an error (DatasetError),
    # not a reason to fall back silently to the provisional references.
    ref_min, ref_max, source = card_scores(load_card(family))
    return ref_min, ref_max, {"ref_min_source": source, "ref_max_source": source,
                              "ref_scores_source": source}


def _reference_policy(family: str, which: str, seed: int) -> Any:
    """The family's ``which`` reference policy, stochastic, seeded (picklable by name)."""
    return load_reference_policy(family, which, seed=seed)[0]


def _env_factory(alias: DatasetAlias) -> Callable[[], gym.Env]:
    """``alias``'s env, made by a picklable factory (blocked making spawns its workers)."""
    return functools.partial(gym.make, alias.env_id, **alias.env_kwargs)


def _collect(alias: DatasetAlias, make_policy: Callable[[int], Any], *, num_transitions: int,
             seed: int) -> list:
    """The episodes of a policy-made locomotion dataset: in ``alias.making_blocks`` blocks side
    by side (``collect_blocks``), or in one pass with the policy ``make_policy(seed)``."""
    make_env = _env_factory(alias)
    if alias.making_blocks > 1:
        return collect_blocks(make_env, make_policy, num_transitions=num_transitions, seed=seed,
                              blocks=alias.making_blocks, desc=alias.alias)
    return collect_episodes(make_env, make_policy(seed), num_transitions=num_transitions,
                            seed=seed, desc=alias.alias)


def _episode_seeds(alias: DatasetAlias, seed: int) -> dict[str, Any]:
    """How a policy-made dataset's episodes were seeded, for its provenance."""
    dropped = ("episodes still running when the size was reached are left out, so a few long "
               "ones in the last batch are missing")
    if alias.making_blocks == 1:
        return {"episode_seeds": f"{seed} + n for the n-th episode started (each episode's own "
                                 f"in its `seed` attribute; {dropped})"}
    blocks, stride = alias.making_blocks, BLOCK_SEED_STRIDE
    return {"blocks": blocks,
            "episode_seeds": f"{blocks} blocks, one after the other in the file, each of an equal "
                             f"share of the size: block b's policy is seeded {seed} + b * "
                             f"{stride} and its n-th episode resets from {seed} + b * {stride} + n "
                             f"(each episode's own in its `seed` attribute; in each block "
                             f"{dropped})"}


def make_random(alias: DatasetAlias, *, num_transitions: int, seed: int) -> dict[str, Any]:
    make_env = _env_factory(alias)
    env = make_env()
    low, high = env.action_space.low, env.action_space.high
    buffers = _collect(alias, functools.partial(UniformRandomPolicy, low, high),
                       num_transitions=num_transitions, seed=seed)
    family_refs = _family_reference_scores(alias)
    ref_seed = seed + REF_SEED_OFFSET
    if family_refs is not None:
        # The family's reference policies exist: normalize like every other dataset of it.
        ref_min, ref_max, ref_sources = family_refs
    else:
        ref_min = evaluate(PolicyAgent(UniformRandomPolicy(low, high, seed=ref_seed)), make_env,
                           episodes=REF_EPISODES, seed=ref_seed, desc="reference return").mean_return
        family = family_of(alias.env_id)
        ref_max = D4RL_REFERENCE_RETURNS[family][1]
        ref_sources = {
            "ref_min_source": f"mean return of the uniform random policy over {REF_EPISODES} "
                              f"episodes (seeds {ref_seed}+)",
            "ref_max_source": f"D4RL {family} expert reference return {ref_max} (Fu et al. "
                              "2020), provisional: no reference policies were committed when "
                              "this was made",
            "ref_scores_source": f"ref_min: own random policy, 100 episodes; ref_max: D4RL "
                                 f"{family} expert {ref_max} (provisional)",
        }
    provenance = {
        "generator": "bench.data.makers.make_random",
        "policy": "uniform random actions in the action box",
        "policy_sha256": None,
        "seed": seed,
        **_episode_seeds(alias, seed),
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

        family = family_of(alias.env_id)
        # The card; loading the policy here checks its file's sha256 before any block starts.
        card = load_reference_policy(family, which, seed=seed)[1]
        ref_min, ref_max, ref_source = card_scores(card)
        entry = card[which]
        algo = card.get("training", {}).get("algo", "ppo")
        trainer = {"ppo": "PPO", "sac": "SAC"}.get(algo, algo)
        make_env = _env_factory(alias)
        buffers = _collect(alias, functools.partial(_reference_policy, family, which),
                           num_transitions=num_transitions, seed=seed)
        provenance = {
            "generator": f"bench.data.makers.make_with_reference_policy({which!r})",
            "policy": f"{family} {which} reference policy ({entry['file']}, {trainer} snapshot "
                      f"{entry['snapshot']}), acting stochastically",
            "policy_sha256": entry["sha256"], "seed": seed, **_episode_seeds(alias, seed),
            "requested_transitions": num_transitions,
            "alias": alias.alias, "ref_scores_source": ref_source,
        }
        return write_dataset(
            alias.local_id, buffers, make_env(), ref_min=ref_min, ref_max=ref_max,
            provenance=provenance,
            algorithm_name=f"{algo}-{which}-reference",
            description=f"Self-generated {alias.alias} on {alias.env_id}: {alias.description}. "
                        "NOT the D4RL or Farama dataset.")

    return make


def make_combined(*kinds: str) -> Callable[..., dict[str, Any]]:
    """Maker for ``medium-expert``: the union of the suite's own component datasets of the same
    family (``hopper-medium-expert`` = ``hopper-medium`` + ``hopper-expert``), combined with
    ``minari.combine_datasets``. Missing parts are made first with this seed and a share of the
    size; present parts are reused as they are (their provenance says how they were made), and
    the combined dataset's provenance records which parts were made and which reused."""

    def make(alias: DatasetAlias, *, num_transitions: int, seed: int) -> dict[str, Any]:

        family = alias.alias.removesuffix("-" + "-".join(kinds))
        parts = [f"{family}-{kind}" for kind in kinds]
        components = [ALIASES[p] for p in parts]
        # Missing parts are made at their own defaults, scaled if a size was asked for.
        share = num_transitions / alias.default_transitions
        made = []
        for c in components:
            if storage.is_present(c.local_id):
                print(f"[bench] {alias.alias}: reusing the present {c.alias} as it is (remake it "
                      f"with `bench datasets make {c.alias} --force` to change its size or seed)",
                      file=sys.stderr)
            else:
                make_alias(c, num_transitions=max(1, round(c.default_transitions * share)),
                           seed=seed)
                made.append(c.local_id)
        metas = [storage.read_metadata(c.local_id) for c in components]
        encoders = {m["bench_provenance"].get("encoder_sha256") for m in metas} - {None}
        if len(encoders) > 1:  # latents of different encoders are different observations
            raise DatasetError(
                f"{alias.alias}: its parts were encoded with different Car Racer encoders "
                f"({', '.join(sorted(e[:16] + '…' for e in encoders))}); make them again with "
                f"the current one (`bench datasets make {parts[0]} --force`, and {parts[1]}) and "
                "then this one. Nothing was combined.")
        sources = [minari.load_dataset(c.local_id) for c in components]
        flats = [storage.load_flat(c.local_id, m["data_sha256"]) for c, m in zip(components, metas)]
        first = metas[0]
        provenance = {
            "source": "self-generated",
            "generator": f"bench.data.makers.make_combined{tuple(parts)}",
            "policy": "the components' behaviour policies (see components)",
            "policy_sha256": None,
            "components": [{"dataset_id": c.local_id, "data_sha256": m["data_sha256"],
                            "policy_sha256": m["bench_provenance"].get("policy_sha256"),
                            "seed": m["bench_provenance"].get("seed"),
                            "encoder_sha256": m["bench_provenance"].get("encoder_sha256"),
                            "requested_transitions": m["bench_provenance"].get("requested_transitions"),
                            "made_now": c.local_id in made}
                           for c, m in zip(components, metas)],
            # The seed the parts made now were made with (None: every part was reused).
            "seed": seed if made else None, "requested_transitions": num_transitions,
            "versions": package_versions(),
            "alias": alias.alias, "ref_scores_source": first["bench_provenance"].get("ref_scores_source"),
        }
        # The parts are read above: inside `staged` the Minari root is the staging root.
        with staged(alias.local_id):
            combined = minari.combine_datasets(sources, alias.local_id)
            sha = storage.sha256_file(storage.data_file(alias.local_id))
            combined.storage.update_metadata({
                "bench_provenance": provenance, "data_sha256": sha,
                "ref_min_score": first["ref_min_score"], "ref_max_score": first["ref_max_score"],
                "description": f"Self-generated {alias.alias} on {alias.env_id}: "
                               f"{' + '.join(c.local_id for c in components)}. NOT the D4RL or "
                               "Farama dataset.",
                "algorithm_name": "combined", "author": {"bench (self-generated)"}})
        storage.save_flat(sha, storage.FlatEpisodes(
            *(np.concatenate([getattr(f, k) for f in flats]) for k in storage.FLAT_FIELDS)),
            storage.data_file(alias.local_id))
        return storage.read_metadata(alias.local_id)

    return make


def replay_mismatch(alias: DatasetAlias, mismatch: str, episodes_are: str) -> str:
    """A replay that is not the recorded training (``mismatch``, a clause): refused with
    BENCH_STRICT_REPLAY=1, else warned about; returns the ``replay_verified`` text saying so."""
    if os.environ.get("BENCH_STRICT_REPLAY") == "1":
        raise DatasetError(f"{mismatch} and BENCH_STRICT_REPLAY=1; nothing was written.")
    print(f"[bench] warning: {alias.alias}: {mismatch}. Writing the replay anyway, marked "
          "replay_verified=NO in its metadata; BENCH_STRICT_REPLAY=1 refuses instead.",
          file=sys.stderr)
    return f"NO: {mismatch}; the episodes are {episodes_are}"


def make_training_replay(alias: DatasetAlias, *, num_transitions: int, seed: int) -> dict[str, Any]:
    """``medium-replay``: every complete episode PPO's training saw until the medium snapshot.

    Re-runs the recorded training (same config, seed and torch thread count) up to the medium
    policy's env step, recording each transition, then checks that the replayed policy equals
    ``medium.pt`` parameter for parameter: the data are provably the rollouts that led to it. On a
    CPU that computes differently the check fails; the replay is then written with
    ``replay_verified`` saying so (``BENCH_STRICT_REPLAY=1`` refuses instead).
    ``num_transitions`` and ``seed`` do not apply (the size is set by the training).
    """
    from minari.data_collector.episode_buffer import EpisodeBuffer


    family = family_of(alias.env_id)
    card = load_card(family)
    ref_min, ref_max, ref_source = card_scores(card)
    training, medium = card["training"], card["medium"]
    # config_from_dict: lists back to tuples, and an "inf" bound (strict JSON) back to inf
    config = config_from_dict(PPOConfig, training["config"])

    def make_env() -> gym.Env:
        return gym.make(alias.env_id, **alias.env_kwargs)

    threads = torch.get_num_threads()
    torch.set_num_threads(int(training["torch_threads"] or threads))
    try:
        seed_everything(training["seed"])  # exactly as `bench run` seeds a run
        algo = PPO(config, TaskSpec.from_env(make_env()), torch.device("cpu"))
        algo.setup(make_env, training["seed"])
        episodes: list[EpisodeBuffer] = []
        running: dict[int, dict[str, list]] = {}

        def record(i, obs, action, reward, term, trunc, next_obs) -> None:
            ep = running.setdefault(i, {"obs": [obs], "act": [], "rew": [], "term": [], "trunc": []})
            ep["obs"].append(np.asarray(next_obs))
            ep["act"].append(np.asarray(action, np.float32))
            ep["rew"].append(float(reward))
            ep["term"].append(bool(term))
            ep["trunc"].append(bool(trunc))
            if term or trunc:
                done = running.pop(i)
                episodes.append(EpisodeBuffer(
                    id=len(episodes), observations=np.asarray(done["obs"]),
                    actions=np.asarray(done["act"]), rewards=done["rew"],
                    terminations=done["term"], truncations=done["trunc"]))

        algo.transition_hook = record

        with progress_bar(total=medium["env_steps"], desc=f"{alias.alias} (replaying training)",
                          unit="step") as bar:
            while algo.env_steps < medium["env_steps"]:
                before = algo.env_steps
                algo.train_iteration()
                bar.update(algo.env_steps - before)
    finally:
        torch.set_num_threads(threads)
    target = torch.load(reference_dir() / family / medium["file"], weights_only=False)
    difference = policy_difference(algo.export_policy(), target)
    if difference == 0.0:
        verified = "the replayed policy equals the medium reference policy exactly"
    else:
        # Float results of PyTorch's CPU kernels depend on the CPU's vector instructions (AVX2,
        # AVX-512, ...) and thread count, and PPO's rollouts amplify a last-bit difference into
        # different episodes. The replay is then the same recipe (config, seed, env steps), not
        # the same rollouts: said in the metadata, refused only where exactness is demanded.
        mismatch = (f"the replayed training does not end exactly at {medium['file']} (max "
                    f"parameter difference {difference:.3g}: this CPU, thread count or library "
                    f"versions compute differently from those that trained it)")
        verified = replay_mismatch(alias, mismatch, "this machine's replay of the same training "
                                   "recipe, config and seed up to the same env step")
    provenance = {
        "generator": "bench.data.makers.make_training_replay",
        "policy": f"PPO training rollouts from step 0 to {medium['env_steps']} (the medium "
                  f"reference policy, {medium['file']}); complete episodes only",
        "policy_sha256": medium["sha256"], "seed": training["seed"], "alias": alias.alias,
        "replay_verified": verified,
        "replay_max_parameter_difference": difference,
        "ref_scores_source": ref_source,
    }
    return write_dataset(
        alias.local_id, episodes, make_env(), ref_min=ref_min, ref_max=ref_max,
        provenance=provenance,
        algorithm_name="ppo-training-replay",
        description=f"Self-generated {alias.alias} on {alias.env_id}: {alias.description}. "
                    "NOT the D4RL or Farama dataset.")


def policy_difference(replayed: dict[str, Any], target: dict[str, Any]) -> float:
    """Largest absolute difference between two exported PPO policies' actor parameters."""
    diffs = [(replayed["actor_mean"][k] - v).abs().max().item()
             for k, v in target["actor_mean"].items()]
    diffs.append((replayed["log_std"] - target["log_std"]).abs().max().item())
    return float(max(diffs))


# Makers whose data are fixed by a recorded recipe (they take no size or seed), in words.
FIXED_RECIPES = {"medium-replay": "a replay of the recorded training (PPO's for hopper, SAC's for "
                                  "walker2d and halfcheetah) that produced the medium reference "
                                  "policy"}

def make_action_replay(alias: DatasetAlias, *, num_transitions: int, seed: int) -> dict[str, Any]:
    """``medium-replay`` of a SAC-trained family: every complete episode of the reference
    training up to the medium policy, rebuilt in the simulator from the committed action record
    (``bench.making.replay``); ``num_transitions`` and ``seed`` do not apply."""
    family = family_of(alias.env_id)
    card = load_card(family)
    ref_min, ref_max, ref_source = card_scores(card)
    entry, medium = card["medium_replay"], card["medium"]
    record = load_action_record(reference_dir() / family / entry["file"], entry["sha256"])
    result = replay(alias.env_id, record, desc=f"{alias.alias} (replaying training)")
    episodes = len(result.episodes)
    if result.differing == 0:
        verified = (f"every one of the {episodes} episodes has the recorded length, ending and "
                    "return exactly")
    else:
        mismatch = (f"{result.differing} of {episodes} replayed episodes differ from the "
                    f"recorded training in length, ending or return (largest return difference "
                    f"{result.max_return_difference:.3g}: this simulator build computes "
                    "differently from the one that trained the policy)")
        verified = replay_mismatch(alias, mismatch,
                                   "this simulator's response to the recorded actions")
    provenance = {
        "generator": "bench.making.replay (bench.data.makers.make_action_replay)",
        "policy": f"SAC training from step 0 to {entry['env_steps']} (the medium reference "
                  f"policy, {medium['file']}, is that run's snapshot at that step); complete "
                  f"episodes only, replayed from {entry['file']} (sha256 {entry['sha256']})",
        "policy_sha256": medium["sha256"], "seed": card["training"]["seed"],
        "reset_seed": entry["reset_seed"], "alias": alias.alias,
        "replay_verified": verified, "replay_differing_episodes": result.differing,
        "replay_max_return_difference": result.max_return_difference,
        "ref_scores_source": ref_source,
    }
    return write_dataset(
        alias.local_id, result.episodes, gym.make(alias.env_id), ref_min=ref_min,
        ref_max=ref_max, provenance=provenance, algorithm_name="sac-training-replay",
        description=f"Self-generated {alias.alias} on {alias.env_id}: {alias.description}. "
                    "NOT the D4RL or Farama dataset.")


# How each OGBench recipe is made and described: generator name → (module, its policy, the
# episodes' seeding, the algorithm name written into the dataset, what the goal is, the policy
# behind OGBench's own file).
OGBENCH_RECIPES = {
    "ogbench-navigate": (
        ogbench_maze,
        "OGBench's navigate recipe: the maze's breadth-first oracle subgoal, unit direction plus "
        f"N(0, {ogbench_maze.NOISE_STD}²) noise clipped to [-1, 1], a new random vertex-cell goal "
        "whenever one is reached",
        "draws its cells and noise from numpy.random.default_rng([{seed}, e])",
        "ogbench-navigate-oracle", "the observation to reach (x, y)",
        "OGBench's noisy scripted navigation expert (its own file)"),
    "ogbench-play": (
        ogbench_cube,
        "OGBench's play recipe: its CubePlanOracle (a keyframe plan for each pick-and-place with "
        f"temporally smoothed noise {ogbench_cube.NOISE} / {ogbench_cube.NOISE_SMOOTHING}), a new "
        "random target for the cube whenever a task is done",
        "runs with numpy's global generator seeded with [{seed}, e] (the oracle's plans and noise)",
        "ogbench-cube-plan-oracle", "the observation to reach (arm and cube)",
        "OGBench's scripted cube plan oracle (its own file)"),
}


def make_ogbench_dataset(alias: DatasetAlias, *, num_transitions: int, seed: int) -> dict[str, Any]:
    """OGBench's dataset for ``alias`` (a navigate maze or cube play): from OGBench's own file
    when it is in OGBench's data directory (converted once, provenance ``official``), else made
    with its recipe (``bench.making.ogbench_maze`` / ``ogbench_cube``): ``num_transitions``
    rounded up to whole 1,000-step episodes."""
    recipe, policy, seeding, algorithm_name, goal, official_policy = OGBENCH_RECIPES[alias.generator]
    name = f"{alias.alias}-v0"
    official = ogbench_maze.official_file(name)
    eval_env = gym.make(alias.env_id)
    probe = recipe.collection_env(name)
    observation_space = probe.observation_space  # the data's: the observation without the goal
    probe.close()
    if official.exists():
        observations, actions = ogbench_maze.read_official(official)
        provenance = {
            "source": "official", "generator": "bench.making.ogbench_maze.read_official",
            "policy": official_policy,
            "policy_sha256": None, "seed": None, "file": str(official),
            "file_sha256": storage.sha256_file(official)}
        first_seed, author = None, "OGBench (Park et al. 2025); converted by bench"
    else:
        episodes = -(-num_transitions // recipe.EPISODE_STEPS)
        data = recipe.collect(name, episodes, seed)
        observations, actions = data["observations"], data["actions"]
        provenance = {
            "generator": f"{recipe.__name__}.collect", "policy": policy,
            "policy_sha256": None, "seed": seed,
            "episode_seeds": f"episode e resets with {seed} + e and " + seeding.format(seed=seed),
            "requested_transitions": num_transitions,
            "goals_reached_per_episode": float(data["reached"].mean())}
        first_seed, author = seed, "bench (self-generated)"
    provenance.update({"alias": alias.alias, "ogbench_dataset": name,
                       "ogbench_version": importlib.metadata.version("ogbench"),
                       "ref_scores_source": SUCCESS_SOURCE,
                       "goal_task": {"env_id": alias.env_id, "num_tasks":
                                     int(eval_env.unwrapped.num_tasks), "goal": goal}})
    buffers = ogbench_maze.episode_buffers(observations, actions, first_seed)
    made_here = provenance.get("source") != "official"
    return write_dataset(
        alias.local_id, buffers, eval_env, ref_min=0.0, ref_max=1.0, provenance=provenance,
        algorithm_name=algorithm_name if made_here else "ogbench-official",
        observation_space=observation_space, author=author,
        description=(f"{'Self-generated' if made_here else 'Converted'} {alias.alias} on "
                     f"{alias.env_id}: {alias.description}. "
                     + ("NOT OGBench's file." if made_here else "OGBench's own file.")))


def make_medium_replay(alias: DatasetAlias, *, num_transitions: int, seed: int) -> dict[str, Any]:
    """``medium-replay``: the training that produced the family's medium policy, replayed: a SAC
    run's from its committed action record, a PPO run's by training again."""
    card = load_card(family_of(alias.env_id))
    if "medium_replay" in card:
        return make_action_replay(alias, num_transitions=num_transitions, seed=seed)
    trainer = card.get("training", {}).get("algo")
    if trainer != "ppo":
        raise DatasetError(f"{alias.alias}: the {family_of(alias.env_id)} reference policies "
                           f"were trained by {trainer} without an action record, so their "
                           "training cannot be replayed; pick them again from a run trained "
                           "with --set record_steps=N (bench.reference).")
    return make_training_replay(alias, num_transitions=num_transitions, seed=seed)


MAKERS: dict[str, Callable[..., dict[str, Any]]] = {
    "medium-replay": make_medium_replay,
    "random": make_random,
    "expert": make_with_reference_policy("expert"),
    "medium": make_with_reference_policy("medium"),
    "medium-expert": make_combined("medium", "expert"),
    "carracing-medium-expert": make_combined("medium", "expert"),
    "ogbench-navigate": make_ogbench_dataset,
    "ogbench-play": make_ogbench_dataset,
}


def _carracing_maker(level: str) -> Callable[..., dict[str, Any]]:
    def make(alias: DatasetAlias, *, num_transitions: int, seed: int) -> dict[str, Any]:

        return carracing_maker(level)(alias, num_transitions=num_transitions, seed=seed)

    return make


MAKERS.update({f"carracing-{level}": _carracing_maker(level) for level in ("medium", "expert")})


def unavailable_message(alias: DatasetAlias) -> str:
    official = (f" or put the official {alias.official_id} in your Minari root "
                "(MINARI_DATASETS_PATH)") if alias.official_id else ""
    return (f"{alias.alias} has no recipe for making it locally in this version{official}.")


def make_alias(alias: DatasetAlias, *, num_transitions: int | None = None,
               seed: int | None = None, force: bool = False, first_use: bool = False,
               log=None) -> dict[str, Any]:
    """Generate the suite's own dataset for ``alias`` (``num_transitions``: at least this many,
    default the alias's; ``seed`` default 0). Refuses to overwrite; ``force`` keeps a backup.

    One maker per dataset at a time: a second one waits for the first (``staging.maker_lock``).
    ``first_use``: a run that needs the data, for which a dataset another process made while
    it waited is what it asked for. The dataset appears in the Minari root only when whole.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    maker = MAKERS.get(alias.generator)
    if maker is None:
        raise DatasetError(unavailable_message(alias))
    if alias.generator in FIXED_RECIPES and (num_transitions is not None or seed is not None):
        raise UsageError(f"{alias.alias} is {FIXED_RECIPES[alias.generator]}; its size and "
                         "seed are fixed by that recipe, so --transitions and --seed do not apply.")
    if num_transitions is not None and num_transitions < 1:
        raise UsageError(f"--transitions must be at least 1, got {num_transitions}.")
    target = storage.dataset_dir(alias.local_id)
    with maker_lock(alias.local_id, log):
        if first_use and storage.is_present(alias.local_id):  # made while this process waited
            return storage.read_metadata(alias.local_id)
        backup = None
        if storage.is_present(alias.local_id) or target.exists():
            if not force:
                raise DatasetError(f"{alias.local_id} already exists at {target}; pass --force "
                                   "to make it again (the old one is kept as a backup).")
            backup = (storage.cache_dir() / "backups"
                      / f"{alias.local_id.replace('/', '_')}-{time.strftime('%Y%m%d-%H%M%S')}")
        # The present dataset stays in place until the new one is whole (staging.replacing).
        with replacing(alias.local_id, backup):
            meta = maker(alias, num_transitions=num_transitions or alias.default_transitions,
                         seed=0 if seed is None else seed)
        if backup is not None:
            log(f"[bench] kept the previous {alias.local_id} at {backup}")
        return meta


def make_on_first_use(alias: DatasetAlias, log=None) -> dict[str, Any]:
    """The maker ``bench.data.resolve`` calls for a missing alias (a run's first use): its
    default size and seed; a dataset another process made meanwhile is used as it is."""
    return make_alias(alias, first_use=True, log=log)
