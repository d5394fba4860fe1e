"""Speed beside another job (pytest-benchmark): a second CPU-bound process on the machine should
cost a job its share of the cores, not a 4-5x slowdown from torch threads spinning at OpenMP
barriers (``bench.perf.torch_threads``).

Run: ``python -m pytest benchmarks/test_under_load.py --benchmark-only -s`` (about 3 minutes).

Targets (issue 24, row 14), each measured idle and beside a busy-loop process in the same run,
alternating (idle, busy, busy, idle) so that a drift in the VM's speed falls on both sides:
- making 100k ``hopper-medium`` transitions (the committed medium policy acting on 8 envs):
  beside the busy loop at most 1.25x the idle time;
- evaluating 10 Hopper episodes in one process (``--eval-mode sync``, what a sweep's
  single-threaded workers and the non-shardable agents run): the same bound.
A sharded evaluation forks one process per torch thread, so beside a busy loop its two shards
share one core's worth of time more than they had: its ratio is printed, not asserted.

``BENCH_UNDER_LOAD_PEER=1`` also times the code as it was (torch's default thread count) for
comparison (another ~2 minutes).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import torch

import bench.making.generate as generate
import bench.evaluate as evaluate_module
from bench.data import ALIASES
from bench.making.makers import make_alias
from bench.evaluate import PolicyAgent, evaluate
from bench.perf import tune_allocator
from bench.reference import load_reference_policy
from bench.run import eval_seed
from conftest import fresh_data_roots

TRANSITIONS = int(os.environ.get("BENCH_LOAD_TRANSITIONS", "100000"))
EVAL_EPISODES, EVAL_REPEATS = 10, 3  # each timing: 3 evaluations of 10 episodes
MAX_RATIO = 1.25


@contextlib.contextmanager
def busy_loop() -> Iterator[None]:
    """Another job: one process spinning on a core."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(1.0)  # started and spinning
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def idle_and_busy(work: Callable[[], None]) -> tuple[float, float]:
    """Mean seconds of ``work`` idle and beside a busy loop, timed idle, busy, busy, idle."""
    times: dict[bool, list[float]] = {False: [], True: []}
    for busy in (False, True, True, False):
        with busy_loop() if busy else contextlib.nullcontext():
            start = time.perf_counter()
            work()
            times[busy].append(time.perf_counter() - start)
    return sum(times[False]) / 2, sum(times[True]) / 2


@contextlib.contextmanager
def default_threads() -> Iterator[None]:
    """The code as it was before small-batch inference chose its thread count."""
    saved = generate.torch_threads, evaluate_module.torch_threads
    generate.torch_threads = evaluate_module.torch_threads = lambda n: contextlib.nullcontext()
    try:
        yield
    finally:
        generate.torch_threads, evaluate_module.torch_threads = saved


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    with fresh_data_roots(tmp_path_factory.mktemp("data")) as root:
        tune_allocator()  # as `bench run` and `bench datasets make` do
        print(f"\ntorch threads {torch.get_num_threads()}, cores {os.cpu_count()}")
        yield root


def _report(benchmark, what: str, idle: float, busy: float, peer: tuple[float, float] | None):
    ratio = busy / idle
    benchmark.extra_info.update(idle_s=idle, busy_s=busy, ratio=ratio)
    line = f"\n{what}: idle {idle:.2f} s, beside a busy loop {busy:.2f} s = {ratio:.2f}x"
    if peer is not None:
        benchmark.extra_info.update(peer_idle_s=peer[0], peer_busy_s=peer[1])
        line += (f"; torch's default threads: idle {peer[0]:.2f} s, busy {peer[1]:.2f} s = "
                 f"{peer[1] / peer[0]:.2f}x")
    print(line)
    return ratio


def test_make_hopper_medium_beside_another_job(benchmark, data_root):
    def make() -> None:
        make_alias(ALIASES["hopper-medium"], num_transitions=TRANSITIONS, seed=0, force=True,
                   log=lambda *_: None)

    idle, busy = benchmark.pedantic(lambda: idle_and_busy(make), rounds=1, iterations=1)
    peer = None
    if os.environ.get("BENCH_UNDER_LOAD_PEER") == "1":
        with default_threads():
            peer = idle_and_busy(make)
    ratio = _report(benchmark, f"hopper-medium, {TRANSITIONS:,} transitions", idle, busy, peer)
    assert ratio <= MAX_RATIO


@pytest.mark.parametrize("mode", ["sync", "sharded"])
def test_evaluate_hopper_beside_another_job(benchmark, data_root, mode):
    import gymnasium as gym

    policy, _ = load_reference_policy("hopper", "medium", seed=0)
    policy.deterministic = True
    # batch_invariant lets the evaluation shard; the returns are not compared here.
    agent = PolicyAgent(policy, batch_invariant=True)

    def run() -> None:
        for _ in range(EVAL_REPEATS):
            evaluate(agent, lambda: gym.make("Hopper-v5"), episodes=EVAL_EPISODES,
                     seed=eval_seed(0), mode=mode)

    idle, busy = benchmark.pedantic(lambda: idle_and_busy(run), rounds=1, iterations=1)
    peer = None
    if os.environ.get("BENCH_UNDER_LOAD_PEER") == "1":
        with default_threads():
            peer = idle_and_busy(run)
    ratio = _report(benchmark, f"evaluation ({mode}), {EVAL_REPEATS} x {EVAL_EPISODES} episodes",
                    idle, busy, peer)
    if mode == "sync":
        assert ratio <= MAX_RATIO
