"""Speed of making and opening the suite's datasets (pytest-benchmark).

Run: ``python -m pytest benchmarks/test_data_speed.py --benchmark-only -s`` (about 5 minutes).

Targets (from the Hopper datasets issue):
- generation: 1M Hopper transitions in <= 4 minutes on 2 cores (``hopper-expert``: the committed
  expert policy acting stochastically, 1,000-step episodes);
- loading: opening any 1M-transition dataset into the sampler in <= 10 s. ``hopper-random`` is the
  worst case (tens of thousands of short episodes, one HDF5 group each), so it is measured both
  from the flat-array cache (how every run opens it) and cold, from the HDF5 file alone (what the
  first run after a download pays once).

``BENCH_GEN_TRANSITIONS`` scales the datasets down for a quick look (generation then still has
to finish in 4 minutes: making a dataset has fixed costs, e.g. scoring the random policy).
"""
from __future__ import annotations

import os
import time

import pytest

from bench.data import ALIASES, Sampler, load_flat, resolve
from bench.making.makers import make_alias
from bench.data.storage import _cache_path
from bench.perf import tune_allocator
from conftest import fresh_data_roots

TRANSITIONS = int(os.environ.get("BENCH_GEN_TRANSITIONS", "1000000"))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Fresh Minari root and flat cache: nothing the benchmarks time is already made."""
    with fresh_data_roots(tmp_path_factory.mktemp("data")) as root:
        tune_allocator()
        yield root


def _make(name: str) -> float:
    start = time.perf_counter()
    make_alias(ALIASES[name], num_transitions=TRANSITIONS, seed=0, log=lambda *_: None)
    return time.perf_counter() - start


def _open(name: str) -> tuple[float, int]:
    start = time.perf_counter()
    dataset = resolve(name, download=False)
    sampler = Sampler(load_flat(dataset.dataset_id, dataset.sha256), seed=0)
    return time.perf_counter() - start, len(sampler.flat.actions)


def test_generate_hopper_expert(benchmark, data_root):
    seconds = benchmark.pedantic(lambda: _make("hopper-expert"), rounds=1, iterations=1)
    per_million = seconds * 1e6 / TRANSITIONS
    benchmark.extra_info.update(seconds=seconds, transitions=TRANSITIONS, seconds_per_million=per_million)
    print(f"\nhopper-expert, {TRANSITIONS:,} transitions: {seconds:.1f} s "
          f"({per_million / 60:.2f} min per million)")
    assert seconds <= 240 * max(1.0, TRANSITIONS / 1e6)


@pytest.mark.parametrize("name", ["walker2d-expert", "halfcheetah-expert"])
def test_generate_sac_family_expert(benchmark, data_root, name):
    """Issue 27: 1M transitions of Walker2d's and HalfCheetah's expert data in <= 4 minutes on 2
    cores (two blocks side by side, ``DatasetAlias.making_blocks``)."""
    from bench.data.cards import card_path, family_of

    if not card_path(family_of(ALIASES[name].env_id)).exists():
        pytest.skip(f"no reference policies for {name} yet (scripts/train_reference.sh)")
    seconds = benchmark.pedantic(lambda: _make(name), rounds=1, iterations=1)
    benchmark.extra_info.update(seconds=seconds, transitions=TRANSITIONS)
    print(f"\n{name}, {TRANSITIONS:,} transitions: {seconds:.1f} s")
    assert seconds <= 240 * max(1.0, TRANSITIONS / 1e6)


def test_open_hopper_random(benchmark, data_root):
    made = _make("hopper-random")
    cached, n = _open("hopper-random")  # the maker caches the flat arrays as it writes them
    dataset = resolve("hopper-random", download=False)
    _cache_path(dataset.sha256).unlink()
    cold, _ = benchmark.pedantic(lambda: _open("hopper-random"), rounds=1, iterations=1)
    again, _ = _open("hopper-random")  # the cold open rebuilt the cache
    scale = 1e6 / n
    benchmark.extra_info.update(transitions=n, make_s=made, cached_s=cached, cold_s=cold,
                                cache_rebuilt_s=again)
    print(f"\nhopper-random, {n:,} transitions, {dataset.metadata.get('total_episodes'):,} episodes "
          f"(made in {made:.1f} s): open from cache {cached:.2f} s, cold from HDF5 {cold:.1f} s, "
          f"from the rebuilt cache {again:.2f} s")
    assert cached * scale <= 10 and again * scale <= 10


@pytest.mark.parametrize("name", ["pointmaze-medium-navigate", "pointmaze-large-navigate"])
def test_generate_pointmaze_navigate(benchmark, data_root, name):
    """Issue 28: OGBench's navigate recipe, 1M transitions (1,000 episodes of 1,000 steps) in
    <= 6 minutes on 2 cores."""
    seconds = benchmark.pedantic(lambda: _make(name), rounds=1, iterations=1)
    benchmark.extra_info.update(seconds=seconds, transitions=TRANSITIONS)
    print(f"\n{name}, {TRANSITIONS:,} transitions: {seconds:.1f} s")
    assert seconds <= 360 * max(1.0, TRANSITIONS / 1e6)
