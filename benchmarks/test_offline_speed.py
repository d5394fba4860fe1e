"""Speed of bench's TD3+BC, IQL and CQL against d3rlpy 2.8.1's (issue 26), pytest-benchmark. Run:
``python -m pytest benchmarks/test_offline_speed.py --benchmark-only -s``.

Targets: training steps per second at batch 256 with 256-256 networks (every network of the
algorithm; CQL's `full` has 3 hidden layers, the benchmark the issue's two), Hopper dims, the
other settings bench's `full` ones: ``td3_bc`` and ``iql`` >= 2x d3rlpy's, ``cql`` >= 1.5x,
measured in the same run. d3rlpy runs in its own venv (made on first use by
``benchmarks/d3rlpy_dt/setup_venv.sh``; BENCH_SKIP_D3RLPY=1 skips the comparison) and process
(``benchmarks/d3rlpy_offline/measure.py --serve``), built from bench's config by
``benchmarks/d3rlpy_offline/mirror.py``; chunks of its steps alternate with chunks of ours, as
``test_speed.py::test_dt_update`` does, with an untimed 50 ms pause at every switch (``SETTLE_S``),
and the ratio of means (all of a side's steps over all their time) is asserted.

A step on each side is what its training loop does per update: bench's
``algo.update(algo.sample(sampler), step)`` (the ``bench run`` loop's) and d3rlpy's ``fit`` step
(draw a ``TransitionMiniBatch``, ``algo.update``, buffer the losses). Both train on the same
synthetic Hopper-shaped episodes (``test_speed._hopper_shaped_flat``). Each side's share of the
step spent sampling is printed. BENCH_OFFLINE_ROUNDS (default 200) sets the steps per side.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import statistics
import time

import numpy as np
import pytest
import torch

from bench import registry
from bench.config import config_to_json, make_config
from bench.data.sampler import Sampler
from bench.perf import tune_allocator
from test_speed import (ROOT, _D3rlpyUpdates, _hopper_shaped_flat,
                        machine_state)  # noqa: F401  (machine_state: a fixture used below)

MEASURE = ROOT / "benchmarks" / "d3rlpy_offline" / "measure.py"
TARGETS = {"td3_bc": 2.0, "iql": 2.0, "cql": 1.5}  # ours / d3rlpy's steps per second
# The size: 256-256 networks everywhere (batch 256 is every `full` config's already).
NETWORKS = {"td3_bc": {"hidden": (256, 256)}, "iql": {"hidden": (256, 256)},
            "cql": {"actor_hidden": (256, 256), "q_hidden": (256, 256)}}
ROUNDS = int(os.environ.get("BENCH_OFFLINE_ROUNDS", "200"))
WARMUP, CHUNK = 10, 10
# Each side's OpenMP threads spin for a while after its last product before they sleep: the side
# that starts a chunk right after the other's ran 4-8 ms slower over its first two steps (~15% of a
# 10-step TD3+BC chunk), a cost neither has in its own training loop. An untimed pause at every
# switch lets the other side's threads go quiet first, for both sides alike.
SETTLE_S = 0.05


class _D3rlpySteps(_D3rlpyUpdates):
    """``_D3rlpyUpdates`` serving d3rlpy's offline algorithm from ``measure.py --serve``; also
    keeps the sampling part of each step it is told of."""

    def __init__(self, algo: str, config: dict, data: str, threads: int) -> None:
        self.sample_seconds: list[float] = []
        super().__init__(MEASURE, ("--serve", "--algo", algo, "--config", json.dumps(config),
                                   "--data", data, "--threads", str(threads)))

    def _read(self, timeout: float) -> dict:
        answer = super()._read(timeout)
        self.sample_seconds.extend(answer.get("sample_seconds", []))
        return answer


def _flat_arrays(flat) -> dict[str, np.ndarray]:
    """D4RL-style flat arrays of ``flat`` (``bench.d4rl.qlearning_dataset``'s keys), for d3rlpy."""
    return {"observations": flat.state_observations(),
            "next_observations": flat.observations[flat.obs_index + 1], "actions": flat.actions,
            "rewards": flat.rewards, "terminals": flat.terminations, "timeouts": flat.truncations}


@pytest.mark.parametrize("name", list(TARGETS))
def test_offline_update(benchmark, machine_state, tmp_path, name):  # noqa: F811
    if name not in registry.all_algorithms():
        pytest.skip(f"{name} is not registered yet (bench/algos/{name}.py)")
    benchmark.extra_info.update(machine_state)
    tune_allocator()  # as `bench run` does
    torch.manual_seed(0)
    entry = registry.get(name)
    config = dataclasses.replace(
        make_config(entry.config_cls, "full", {}, entry.defaults, entry.presets), **NETWORKS[name])
    flat = _hopper_shaped_flat()
    sampler = Sampler(flat, seed=0)
    spec = sampler.spec(-np.ones(3), np.ones(3), 1000)
    algo = entry.cls(config, spec, torch.device("cpu"))
    algo.attach_dataset(sampler)
    data = tmp_path / "hopper_shaped.npz"
    np.savez(data, **_flat_arrays(flat))

    d3rlpy = None
    if not os.environ.get("BENCH_SKIP_D3RLPY"):
        d3rlpy = _D3rlpySteps(name, config_to_json(config), str(data), torch.get_num_threads())
    theirs_s: list[float] = []
    steps, calls = itertools.count(), itertools.count()

    def before_round() -> None:
        # A chunk of d3rlpy's steps before every CHUNK of ours (untimed for ours): this VM's speed
        # drifts by tens of percent within a minute (test_speed.py::test_dt_update).
        i = next(calls) - WARMUP
        if d3rlpy is not None and i >= 0 and i % CHUNK == 0:
            time.sleep(SETTLE_S)
            theirs_s.extend(d3rlpy.updates(CHUNK))
            time.sleep(SETTLE_S)

    try:
        benchmark.pedantic(lambda: algo.update(algo.sample(sampler), next(steps)),
                           setup=before_round, rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP)
    finally:
        if d3rlpy is not None:
            d3rlpy.close()
    stats = benchmark.stats.stats
    ours, ours_median = 1.0 / stats.mean, 1.0 / stats.median
    start = time.perf_counter()
    for _ in range(ROUNDS):
        algo.sample(sampler)
    ours_sample_share = (time.perf_counter() - start) / ROUNDS * ours
    benchmark.extra_info.update(updates_per_s=ours, sample_share=ours_sample_share,
                                torch_threads=torch.get_num_threads())
    if d3rlpy is None:
        pytest.skip(f"d3rlpy comparison skipped (BENCH_SKIP_D3RLPY); bench {name}: "
                    f"{ours:.1f} updates/s")
    theirs = len(theirs_s) / sum(theirs_s)
    theirs_median = 1.0 / statistics.median(theirs_s)
    theirs_sample_share = sum(d3rlpy.sample_seconds) / sum(theirs_s)
    ratio = ours / theirs
    benchmark.extra_info.update(d3rlpy_updates_per_s=theirs, ratio_mean=ratio,
                                ratio_median=ours_median / theirs_median,
                                d3rlpy_sample_share=theirs_sample_share)
    print(f"\n{name} step, batch 256, 256-256 ({ROUNDS} each, alternating chunks of {CHUNK}, "
          f"torch threads {torch.get_num_threads()}): bench {ours:.1f}/s (median "
          f"{ours_median:.1f}, sampling {100 * ours_sample_share:.1f}%), d3rlpy 2.8.1 "
          f"{theirs:.1f}/s (median {theirs_median:.1f}, sampling "
          f"{100 * theirs_sample_share:.1f}%); ratio of means {ratio:.2f}x, of medians "
          f"{ours_median / theirs_median:.2f}x")
    assert ratio >= TARGETS[name], (
        f"bench's {name} runs {ratio:.2f}x d3rlpy's updates/s; the target is {TARGETS[name]}x")
