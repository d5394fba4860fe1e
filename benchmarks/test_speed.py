"""Speed benchmarks of the spine (pytest-benchmark). Run: ``python -m pytest benchmarks/ --benchmark-only``.

Targets (from the spine issue):
- ``dt_update``: one DT update (batch 64, K=20, embed 128, 3 layers, 1 head, dropout 0.1, Hopper dims)
  at >= 1.5x the updates/s of d3rlpy 2.8.1's DT on the same config, measured in the same run.
  d3rlpy lives in its own venv (``benchmarks/d3rlpy_dt/setup_venv.sh``, made on first use; set
  BENCH_SKIP_D3RLPY=1 to skip the comparison) and process; chunks of its updates alternate with
  chunks of ours.
- ``sample_batch``: one DT batch costs < 2% of a DT update.
- ``eval_vectorized`` vs ``eval_sequential``: 10 Hopper episodes of 1,000 steps (no early
  termination), DT policy at the ``dt_update`` size: >= 3x faster, identical returns. Both loops
  get the same torch threads; the vectorized one is ``evaluate``'s default, which shards the
  episodes over one process per thread.
"""
from __future__ import annotations

import functools
import itertools
import json
import os
import selectors
import statistics
import subprocess
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from bench.algos.dt import DecisionTransformer, DTConfig, TargetReturn
from bench.data.sampler import Sampler
from bench.data.storage import FlatEpisodes
from bench.evaluate import evaluate, evaluate_sequential
from bench.perf import tune_allocator

ROOT = Path(__file__).resolve().parents[1]
D3RLPY_DIR = ROOT / "benchmarks" / "d3rlpy_dt"
D3RLPY_PYTHON = ROOT / ".venv-d3rlpy" / "bin" / "python"
MEASURED: dict[str, float] = {}


EVAL_ROUNDS = int(os.environ.get("BENCH_EVAL_ROUNDS", "3"))


def _hopper_shaped_flat(episodes: int = 50, length: int = 200) -> FlatEpisodes:
    rng = np.random.default_rng(0)
    n = episodes * length
    return FlatEpisodes(
        observations=rng.normal(size=(n + episodes, 11)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        rewards=rng.uniform(0, 3, n).astype(np.float32),
        terminations=np.zeros(n, bool), truncations=np.tile(np.arange(length) == length - 1, episodes),
        episode_lengths=np.full(episodes, length))


def _gemm_gflops(threads: int, seconds: float = 1.0) -> float:
    """Median GFLOP/s of a DT-sized product (3840x128 @ 128x512) on ``threads`` torch threads."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, w = torch.randn(3840, 128), torch.randn(512, 128)
        for _ in range(5):
            torch.nn.functional.linear(a, w)
        times, end = [], time.perf_counter() + seconds
        while time.perf_counter() < end:
            start = time.perf_counter()
            torch.nn.functional.linear(a, w)
            times.append(time.perf_counter() - start)
        return 2 * 3840 * 128 * 512 / statistics.median(times) / 1e9
    finally:
        torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def machine_state() -> dict[str, float]:
    """How fast this machine's cores multiply matrices right now, each alone and together. This
    VM's speed changes by tens of percent over minutes to hours (and one vCPU can run slower than
    the other), so the ratios below are printed and stored with it."""
    state = {}
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cpus:
        try:
            for cpu in cpus:
                os.sched_setaffinity(0, {cpu})
                state[f"gemm_gflops_cpu{cpu}"] = round(_gemm_gflops(1), 1)
        finally:
            os.sched_setaffinity(0, set(cpus))
    state["gemm_gflops_all_threads"] = round(_gemm_gflops(torch.get_num_threads()), 1)
    print("\nmachine state: " + ", ".join(f"{k} {v}" for k, v in state.items()))
    return state


@pytest.fixture(scope="module")
def dt_setup():
    tune_allocator()  # as `bench run` does
    torch.manual_seed(0)
    sampler = Sampler(_hopper_shaped_flat(), seed=0)
    spec = sampler.spec(-np.ones(3), np.ones(3), 1000)
    algo = DecisionTransformer(DTConfig(), spec, torch.device("cpu"))  # full = published size
    return algo, sampler


class _D3rlpyUpdates:
    """d3rlpy's DT in its own venv and process (``measure.py --serve``), timing chunks of updates
    on request, so that they can alternate with chunks of ours. Every answer has a deadline, and
    the process is killed if it does not exit when closed."""

    START_S, CHUNK_S = 600, 300  # building + warming up (first import is slow); 10 updates

    def __init__(self, script: Path = D3RLPY_DIR / "measure.py",
                 args: tuple[str, ...] = ("--serve", "--n-updates", "40")) -> None:
        if not D3RLPY_PYTHON.exists():
            subprocess.run(["bash", str(D3RLPY_DIR / "setup_venv.sh")], check=True, cwd=ROOT)
        self.proc = subprocess.Popen([str(D3RLPY_PYTHON), str(script), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=ROOT)
        try:
            self._read(self.START_S)  # {"ready": true}: built and warmed up
        except BaseException:
            self.close()
            raise

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while True:
                if not selector.select(max(0.0, deadline - time.monotonic())):
                    raise RuntimeError(f"d3rlpy's measure.py gave no answer in {timeout} s")
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"d3rlpy's measure.py exited ({self.proc.wait()}) "
                                       "before answering")
                if line.startswith("{"):
                    return json.loads(line)

    def updates(self, n: int) -> list[float]:
        """Seconds of each of ``n`` more d3rlpy updates."""
        try:
            self.proc.stdin.write(f"{n}\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise RuntimeError(f"d3rlpy's measure.py exited ({self.proc.wait()})") from None
        return self._read(self.CHUNK_S)["seconds"]

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_dt_update(benchmark, dt_setup, machine_state):
    algo, sampler = dt_setup
    benchmark.extra_info.update(machine_state)
    batches = itertools.cycle([sampler.windows(64, 20) for _ in range(8)])
    theirs_s: list[float] = []
    d3rlpy = None if os.environ.get("BENCH_SKIP_D3RLPY") else _D3rlpyUpdates()
    warmup, rounds, chunk = 5, 100, 10
    calls = itertools.count()

    def before_round() -> None:
        # Chunks of 10 d3rlpy updates before every 10 of ours (untimed for ours): this VM's speed
        # drifts by tens of percent within a minute, and timing one side after the other would
        # measure the drift (it did: 1.39x and 1.57x of fastest updates an hour apart).
        i = next(calls) - warmup
        if d3rlpy is not None and i >= 0 and i % chunk == 0:
            theirs_s.extend(d3rlpy.updates(chunk))

    try:
        benchmark.pedantic(lambda: algo.update(next(batches), 0), setup=before_round, rounds=rounds,
                           iterations=1, warmup_rounds=warmup)
    finally:
        if d3rlpy is not None:
            d3rlpy.close()
    ours = 1.0 / benchmark.stats.stats.mean
    ours_best = 1.0 / benchmark.stats.stats.min
    MEASURED["dt_update_seconds"] = benchmark.stats.stats.mean
    benchmark.extra_info["updates_per_s"] = ours
    if d3rlpy is None:
        pytest.skip(f"d3rlpy comparison skipped (BENCH_SKIP_D3RLPY); bench DT: {ours:.2f} updates/s")
    theirs, theirs_best = len(theirs_s) / sum(theirs_s), 1.0 / min(theirs_s)
    ours_median = 1.0 / benchmark.stats.stats.median
    theirs_median = 1.0 / statistics.median(theirs_s)
    benchmark.extra_info.update(d3rlpy_updates_per_s=theirs, ratio_mean=ours / theirs,
                                ratio_median=ours_median / theirs_median,
                                best_updates_per_s=ours_best, d3rlpy_best_updates_per_s=theirs_best,
                                ratio_best=ours_best / theirs_best)
    print(f"\nDT update ({rounds} each, alternating chunks of {chunk}): bench {ours:.2f}/s "
          f"(median {ours_median:.2f}, best {ours_best:.2f}), d3rlpy 2.8.1 {theirs:.2f}/s "
          f"(median {theirs_median:.2f}, best {theirs_best:.2f}); ratio of means "
          f"{ours / theirs:.2f}x, of medians {ours_median / theirs_median:.2f}x, "
          f"of bests {ours_best / theirs_best:.2f}x")
    # The target is a rate, updates/s: all updates over all their time, each side measured in
    # chunks alternating with the other's so that both meet the same drift of this VM's speed.
    # (Until 2026-12-04 the fastest single update of each side was asserted, as "the least
    # disturbed figure"; being the extreme of a few dozen draws it proved the noisiest figure:
    # d3rlpy's fastest update varied 6.03-7.28/s over four runs in ten minutes, its mean
    # 5.15-6.09/s. The fastest and median updates are still reported.)
    assert ours >= 1.5 * theirs, (
        f"bench's DT update runs {ours / theirs:.2f}x d3rlpy's updates/s; the target is 1.5x")


def test_sample_batch(benchmark, dt_setup):
    algo, sampler = dt_setup
    benchmark(sampler.windows, 64, 20)
    update = MEASURED.get("dt_update_seconds")
    if update is None:  # run alone: time a few updates here
        batch = sampler.windows(64, 20)
        import time

        algo.update(batch, 0)
        start = time.perf_counter()
        for _ in range(5):
            algo.update(batch, 0)
        update = (time.perf_counter() - start) / 5
    share = benchmark.stats.stats.mean / update
    benchmark.extra_info["share_of_dt_update"] = share
    print(f"\nsample_batch: {benchmark.stats.stats.mean * 1e3:.3f} ms = {100 * share:.2f}% of a DT update")
    assert share < 0.02


def test_eval_vectorized_vs_sequential(benchmark, dt_setup, machine_state):
    algo, _ = dt_setup
    benchmark.extra_info.update(machine_state)
    make_env = functools.partial(gym.make, "Hopper-v5", terminate_when_unhealthy=False)
    kwargs = dict(episodes=10, seed=0, condition=TargetReturn(3600.0))
    # The loops alternate and each keeps its fastest round: this VM's speed drifts by tens of
    # percent over a minute, and timing one loop after the other would measure the drift.
    # "vectorized" is what `bench run` does by default (mode auto: the 10 envs sharded over one
    # process per torch thread, 5 envs batched in each); the single-process batch of 10 is
    # timed beside it and reported.
    vec_s, one_s, seq_s = [], [], []

    def one_round():
        vec = evaluate(algo, make_env, mode="auto", **kwargs)
        one = evaluate(algo, make_env, mode="sync", **kwargs)
        seq = evaluate_sequential(algo, make_env, **kwargs)
        assert (vec.lengths == 1000).all()
        np.testing.assert_array_equal(vec.returns, seq.returns)
        np.testing.assert_array_equal(one.returns, seq.returns)
        vec_s.append(vec.seconds)
        one_s.append(one.seconds)
        seq_s.append(seq.seconds)

    benchmark.pedantic(one_round, rounds=EVAL_ROUNDS, iterations=1)
    speedup = min(seq_s) / min(vec_s)
    benchmark.extra_info.update(vectorized_s=vec_s, single_process_s=one_s, sequential_s=seq_s,
                                speedup=speedup, single_process_speedup=min(seq_s) / min(one_s),
                                torch_threads=torch.get_num_threads())
    print(f"\neval 10x1000 steps, best of {EVAL_ROUNDS}: vectorized {min(vec_s):.2f}s "
          f"({torch.get_num_threads()} shards), one process {min(one_s):.2f}s, sequential "
          f"{min(seq_s):.2f}s: {speedup:.2f}x ({min(seq_s) / min(one_s):.2f}x in one process; "
          f"rounds: vec {vec_s}, one {one_s}, seq {seq_s})")
    assert speedup >= 3.0


_FAULTS_CODE = """
import resource, sys, numpy as np, torch
from bench.algos.dt import DecisionTransformer, DTConfig, TargetReturn
from bench.data.sampler import TaskSpec
from bench.perf import tune_allocator
if sys.argv[1] == "1":
    assert tune_allocator()
torch.manual_seed(0)
spec = TaskSpec(11, 3, np.zeros(11, np.float32), np.ones(11, np.float32), -np.ones(3, np.float32),
                   np.ones(3, np.float32), 1000)
algo = DecisionTransformer(DTConfig(), spec, torch.device("cpu"))
rng = np.random.default_rng(0)
batch = {"states": rng.normal(size=(64, 20, 11)).astype(np.float32),
         "actions": rng.uniform(-1, 1, (64, 20, 3)).astype(np.float32),
         "returns_to_go": rng.uniform(0, 3000, (64, 20)).astype(np.float32),
         "timesteps": np.tile(np.arange(20), (64, 1)), "mask": np.ones((64, 20), bool)}
for _ in range(5):
    algo.update(batch, 0)
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    algo.update(batch, 0)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / 10)
"""


def test_allocator_page_faults_per_dt_update(benchmark):
    """``bench.perf.tune_allocator`` keeps activation memory in the heap: far fewer page faults."""
    import sys

    def faults(flag: str) -> float:
        return float(subprocess.run([sys.executable, "-c", _FAULTS_CODE, flag], capture_output=True,
                                    text=True, check=True, cwd=ROOT).stdout)

    # Alternating rounds, medians of three each: on this VM the kernel's own memory work (its
    # DAMON reclaim scans run all the time) adds hundreds of faults to an occasional measurement,
    # and glibc's adaptive mmap threshold sometimes keeps a default process's blocks in the heap
    # early (one default round had 482 faults where the others had 1,648 and 2,084).
    defaults, tuned_runs = [], []

    def one_round() -> None:
        defaults.append(faults("0"))
        tuned_runs.append(faults("1"))

    benchmark.pedantic(one_round, rounds=3, iterations=1)
    default, tuned = statistics.median(defaults), statistics.median(tuned_runs)
    benchmark.extra_info.update(page_faults_default=defaults, page_faults_tuned=tuned_runs)
    print(f"\nminor page faults per DT update (median of 3): default malloc {default:.0f}, "
          f"tuned {tuned:.0f} (all: {defaults}, {tuned_runs})")
    # A broken tuning would give about the default's count; working, it has given 4-25x fewer.
    assert tuned < 0.5 * default
