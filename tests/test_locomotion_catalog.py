"""The D4RL locomotion trio in the catalog (issue 27): every family has the five aliases, each
resolving to Farama's id where one exists, normalized with its own env's D4RL references."""
from __future__ import annotations

import pytest

from bench.data.cards import env_reference_scores
from bench.data.catalog import ALIASES, REFERENCE_SCORES
from bench.errors import DatasetError
from bench.making.makers import make_alias

KINDS = ("random", "medium", "medium-replay", "medium-expert", "expert")


@pytest.mark.parametrize("family, env_id", [("hopper", "Hopper-v5"), ("walker2d", "Walker2d-v5"),
                                            ("halfcheetah", "HalfCheetah-v5")])
def test_each_family_has_the_five_d4rl_datasets(family, env_id):
    for kind in KINDS:
        alias = ALIASES[f"{family}-{kind}"]
        assert alias.env_id == env_id and alias.local_id == f"bench/{family}/{kind}-v0"
        official = f"mujoco/{family}/{kind}-v0" if kind in ("medium", "expert") else None
        assert alias.official_id == official
    assert ALIASES[f"{family}-medium-expert"].default_transitions == 2_000_000


@pytest.mark.parametrize("family, low, high", [("hopper", -20.272305, 3234.3),
                                               ("walker2d", 1.629008, 4592.3),
                                               ("halfcheetah", -280.178953, 12135.0)])
def test_official_datasets_use_their_own_envs_d4rl_references(family, low, high):
    refs = REFERENCE_SCORES[f"mujoco/{family}/medium-v0"]
    assert (refs.ref_min, refs.ref_max) == (low, high) and family in refs.source


def test_walker2d_random_is_made_without_reference_policies_with_walker2d_references(
        tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_REFERENCE_DIR", str(tmp_path / "refs"))  # no cards at all
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    meta = make_alias(ALIASES["walker2d-random"], num_transitions=300, seed=0, log=lambda m: None)
    assert meta["ref_max_score"] == 4592.3
    assert "walker2d" in meta["bench_provenance"]["ref_max_source"]
    assert meta["env_spec"] and "Walker2d-v5" in str(meta["env_spec"])
    assert env_reference_scores("Walker2d-v5").ref_max == 4592.3


@pytest.mark.parametrize("kind", ["medium", "medium-replay", "medium-expert"])
def test_datasets_that_need_missing_sac_policies_name_the_script_that_makes_them(
        kind, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_REFERENCE_DIR", str(tmp_path / "refs"))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DatasetError, match="scripts/train_reference.sh halfcheetah"):
        make_alias(ALIASES[f"halfcheetah-{kind}"], log=lambda m: None)


def test_blocked_making_gives_the_same_episodes_on_one_core_or_two():
    """Walker2d's and HalfCheetah's datasets are made in two blocks side by side: block b's
    episodes reset from seed + b * 10^8 + n with its own policy seed, block 0's first in the
    file; the episodes are the same whether one worker makes both blocks or two do."""
    import functools

    import gymnasium as gym
    import numpy as np

    from bench.making.generate import BLOCK_SEED_STRIDE, UniformRandomPolicy, collect_blocks

    assert ALIASES["walker2d-expert"].making_blocks == 2
    assert ALIASES["halfcheetah-random"].making_blocks == 2
    assert ALIASES["hopper-expert"].making_blocks == 1  # as its datasets were made
    make_env = functools.partial(gym.make, "Walker2d-v5")
    space = make_env().action_space
    make_policy = functools.partial(UniformRandomPolicy, space.low, space.high)
    made = {workers: collect_blocks(make_env, make_policy, num_transitions=400, seed=7,
                                    blocks=2, desc="test", workers=workers)
            for workers in (1, 2)}
    one, two = made[1], made[2]
    assert [e.seed for e in one] == [e.seed for e in two]
    assert one[0].seed == 7 and BLOCK_SEED_STRIDE + 7 in [e.seed for e in one]
    seeds = [e.seed for e in one]
    assert seeds == sorted(seeds) and [e.id for e in one] == list(range(len(one)))
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
    # Each block collects its share (200 steps) of whole episodes.
    block_steps = [sum(len(e.actions) for e in one if (e.seed >= BLOCK_SEED_STRIDE) == b)
                   for b in (False, True)]
    assert all(200 <= n < 200 + 1000 for n in block_steps), block_steps


def _random_policy_failing_in_block_1(low, high, seed):
    from bench.making.generate import BLOCK_SEED_STRIDE, UniformRandomPolicy

    if seed >= BLOCK_SEED_STRIDE:
        raise RuntimeError("block 1 cannot make its policy")
    return UniformRandomPolicy(low, high, seed)


def test_a_failing_block_stops_the_collection_with_its_error():
    """Block 1 fails at once while block 0 has 200k short random Walker2d episodes' worth of
    steps to go: the collection raises block 1's error, without waiting for block 0 (whose
    progress reports, unread, once filled the pipe and hung the worker at exit)."""
    import functools

    import gymnasium as gym

    from bench.making.generate import collect_blocks

    make_env = functools.partial(gym.make, "Walker2d-v5")
    space = make_env().action_space
    with pytest.raises(RuntimeError, match="block 1 cannot make its policy"):
        collect_blocks(make_env, functools.partial(_random_policy_failing_in_block_1, space.low,
                                                   space.high),
                       num_transitions=400_000, seed=0, blocks=2, desc="test", workers=2)
