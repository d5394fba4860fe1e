"""Evaluation in the environment: many episodes stepped together, the policy acting on the batch.

Episode ``i`` of an evaluation always starts from ``reset(seed=seed + i)``, whether it runs in a
vector env or in the plain sequential loop, so the two give the same per-episode returns (a test
checks it). Each env runs exactly one episode per round.

``sync`` steps in-process envs in a loop (not gymnasium's SyncVectorEnv: its autoreset would
keep simulating envs whose episode has ended, and its bookkeeping costs ~25% on top of 10 Hopper
steps): for Hopper-sized simulators (0.2 ms a step) the batched forward pass dominates and worker
processes only add IPC (measured here: 10 DT envs, 300 steps,
2.3 s in-process vs 3.8 s in worker processes; splitting the envs into two groups so that one
group steps while the network acts for the other was slower still, 3.2 s, because two half-size
forward passes cost more than one). ``async`` pays off for expensive simulators (image-based
ones), where stepping dominates. (The Car Racer latent env then encodes all envs' frames in one
batch, whose latents differ in the last bits from one frame's; its modes agree to rounding.)

``sharded`` forks one process per torch thread; each takes a contiguous block of the episodes,
its own copy of the agent and one torch thread, and runs the in-process loop on its block. The
forward pass of a small policy is mostly fixed per-call cost (Python and op dispatch), which
intra-op threads cannot split but processes can, so two single-threaded shards of 5 envs finish
sooner than one two-threaded batch of 10 on the same two cores. Only ``batch_invariant_act``
agents are sharded: those whose actions for one env are bit-for-bit the same whatever other envs
share the batch and however many threads compute it — every built-in one but the transformer
IDMs, through ``row_invariant_act`` on their ``act``, which pads their linear layers' rows. For them the returns are the same as in one process and as in the
sequential loop, on any number of threads (tests check it). Other agents (the transformer IDMs)
run in one process: a plain GEMM's kernel, and so the last bits of an action, depend on the
batch's row count, which sharding would change; and an agent that draws random numbers would
draw different ones in the workers. Their returns match the sequential loop's to rounding, not
bit for bit. Every agent acts on ``ACTING_THREADS`` (one) torch thread, so no score depends on
the machine's core count.
"""
from __future__ import annotations

import multiprocessing as mp
import pickle
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import gymnasium as gym
import numpy as np
import torch
from multiprocessing.connection import Connection, wait

from bench.algorithm import DEFAULT, Condition
from bench.data.catalog import RefScores
from bench.errors import BenchError
from bench.perf import torch_threads
from bench.progress import progress_bar

MakeEnv = Callable[[], gym.Env]

# A sharded evaluation gives up when no worker has reported a finished episode (or anything
# else) for this long: far longer than any round of episodes takes, short of waiting forever.
SHARD_SILENCE_S = 1800.0

# Torch threads an agent acts on, in this process and in each shard. Batches of at most 32
# observations gain little from a second thread, and beside another job on the cores it spins at
# OpenMP barriers (10 Hopper episodes: 2.5x slower beside a busy process on two threads, 1.03x
# on one). One fixed count also keeps the scores of agents whose actions depend on the thread
# count (the transformer IDMs) the same on machines with more cores.
ACTING_THREADS = 1


@dataclass
class EvalResult:
    returns: np.ndarray
    lengths: np.ndarray
    seconds: float
    condition: Condition = DEFAULT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))


def normalized_score(returns: float | np.ndarray, ref: RefScores) -> float | np.ndarray:
    """``100 * (R - ref_min) / (ref_max - ref_min)``: 0 = random, 100 = expert."""
    return 100.0 * (np.asarray(returns, dtype=np.float64) - ref.ref_min) / (ref.ref_max - ref.ref_min)


class _EnvBatch:
    """``n`` envs stepped one after another in this process. Only running envs are stepped: an
    env whose episode has ended waits for the round to finish instead of being auto-reset, so
    episodes of uneven length cost no extra simulation."""

    def __init__(self, make_env: MakeEnv, n: int) -> None:
        self.envs = [make_env() for _ in range(n)]
        self.obs: np.ndarray | None = None

    def reset(self, seeds: list[int]) -> np.ndarray:
        self.obs = np.stack([np.asarray(env.reset(seed=s)[0], dtype=np.float32)
                             for env, s in zip(self.envs, seeds)])
        return self.obs.copy()

    def step(self, actions: np.ndarray, running: np.ndarray):
        n = len(self.envs)
        rew, term, trunc = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        for i in np.flatnonzero(running):
            obs, rew[i], term[i], trunc[i], _ = self.envs[i].step(actions[i])
            self.obs[i] = obs
        return self.obs.copy(), rew, term, trunc

    def close(self, terminate: bool = False) -> None:
        for env in self.envs:
            env.close()


def worker_split(env: gym.Env) -> tuple[MakeEnv, Callable[[np.ndarray], np.ndarray]] | None:
    """``(make_inner_env, batch_transform)`` if ``env`` can be split for worker processes.

    An env whose observations are a learned transform of an expensive simulator's (the Car Racer
    latent env: frames → encoder) offers ``split_for_workers(max_episode_steps)``: the workers then run only the
    simulator and the transform runs here, batched over all envs, instead of once per env and
    step inside each worker (and no worker process needs torch)."""
    try:
        split = env.get_wrapper_attr("split_for_workers")
    except AttributeError:
        return None
    return split(env.spec.max_episode_steps if env.spec is not None else None)


class _WorkerEnvs:
    """``n`` envs in worker processes (gymnasium's AsyncVectorEnv); every env steps every time
    and finished ones auto-reset, which the caller's ``running`` mask discards. With a
    ``transform`` the workers run the inner simulator and observations are transformed here."""

    def __init__(self, make_env: MakeEnv, n: int,
                 transform: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        # fork keeps start-up cheap; workers only step the simulator (no torch work). Shared
        # memory is named although it is the default: in gymnasium 1.x the worker clears a
        # pending autoreset on reset() only in that mode, and a round that follows one whose envs
        # finished at the last step relies on it.
        self.envs = gym.vector.AsyncVectorEnv([make_env] * n, context="fork", shared_memory=True)
        self.transform = transform

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs if self.transform is None else self.transform(obs), dtype=np.float32)

    def reset(self, seeds: list[int]) -> np.ndarray:
        return self._obs(self.envs.reset(seed=seeds)[0])

    def step(self, actions: np.ndarray, running: np.ndarray):
        obs, rew, term, trunc, _ = self.envs.step(actions)
        return self._obs(obs), rew, term, trunc

    def close(self, terminate: bool = False) -> None:
        self.envs.close(terminate=terminate)


def _run_episodes(agent: Any, envs: Any, n: int, ids: np.ndarray, seed: int, condition: Condition,
                  on_finished: Callable[[int], None]) -> tuple[np.ndarray, np.ndarray]:
    """Episodes ``ids`` (episode ``i`` starts from ``reset(seed=seed + i)``), ``n`` at a time."""
    returns = np.zeros(len(ids))
    lengths = np.zeros(len(ids), dtype=np.int64)
    for first in range(0, len(ids), n):
        chunk = ids[first:first + n]
        # Unused slots in the last round replay seeds past the end and are discarded.
        seeds = [int(seed + chunk[0] + j) for j in range(n)]
        obs = envs.reset(seeds)
        state = agent.initial_state(n, condition)
        running = np.ones(n, dtype=bool)
        running[len(chunk):] = False
        ret = np.zeros(n)
        length = np.zeros(n, dtype=np.int64)
        while running.any():
            actions, state = agent.act(obs, state)
            obs, rew, term, trunc = envs.step(actions, running)
            state = agent.observe(state, actions, rew)
            ret += np.where(running, rew, 0.0)
            length += running
            finished = running & (term | trunc)
            running &= ~finished
            done_here = int(finished[: len(chunk)].sum())
            if done_here:
                on_finished(done_here)
        returns[first:first + len(chunk)] = ret[: len(chunk)]
        lengths[first:first + len(chunk)] = length[: len(chunk)]
    return returns, lengths


def _shard_main(conn: Connection, agent: Any, make_env: MakeEnv, n: int, ids: np.ndarray,
                seed: int, condition: Condition) -> None:
    """One shard of a ``sharded`` evaluation, in a forked worker: reports finished episodes as
    they end, then its returns and lengths (or the traceback of what went wrong)."""
    try:
        torch.set_num_threads(ACTING_THREADS)
        envs = _EnvBatch(make_env, n)
        try:
            returns, lengths = _run_episodes(agent, envs, n, ids, seed, condition,
                                             lambda k: conn.send(("finished", k)))
        finally:
            envs.close()
        conn.send(("result", returns, lengths))
    except BenchError as exc:  # a message for the user: the parent raises it as it is
        try:
            pickle.loads(pickle.dumps(exc))  # the parent must be able to rebuild it
            conn.send(("bench_error", exc))
        except Exception:  # noqa: BLE001 -- an exception that does not pickle: send its text
            conn.send(("error", traceback.format_exc()))
    except BaseException:  # noqa: BLE001 -- the parent re-raises it with the worker's traceback
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def shard_count(agent: Any, num_envs: int, limit: int | None = None) -> int:
    """How many worker processes an evaluation of ``agent`` is sharded over: ``limit``, by default
    one per torch thread (``torch.get_num_threads()``, so a job confined to one thread stays in one
    process), at most one per env; 1 (no sharding) for agents that are not batch-invariant, inside
    daemonic processes (which cannot fork children), once CUDA is in use and where ``fork`` is
    unavailable."""
    if not getattr(agent, "batch_invariant_act", False) or num_envs < 2:
        return 1
    if mp.current_process().daemon or "fork" not in mp.get_all_start_methods():
        return 1
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # CUDA does not survive fork
        return 1
    return max(1, min(limit or torch.get_num_threads(), num_envs))


def _evaluate_sharded(agent: Any, make_env: MakeEnv, episodes: int, n: int, shards: int,
                      seed: int, condition: Condition, desc: str) -> tuple[np.ndarray, np.ndarray]:
    blocks = [b for b in np.array_split(np.arange(episodes), shards) if len(b)]
    per_shard = -(-n // len(blocks))  # the n envs shared out, rounded up
    ctx = mp.get_context("fork")  # the agent is inherited, not pickled
    workers, conns = [], []
    try:
        # Workers are forked before the progress bar exists, so no bar thread is copied mid-write.
        for block in blocks:
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_shard_main, daemon=True,
                               args=(child, agent, make_env, min(per_shard, len(block)), block,
                                     seed, condition))
            proc.start()
            child.close()
            workers.append(proc)
            conns.append(parent)
        results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        pending = dict(enumerate(conns))
        with progress_bar(total=episodes, desc=desc, unit="ep") as bar:
            while pending:
                ready = wait(list(pending.values()), timeout=SHARD_SILENCE_S)
                if not ready:  # a deadlocked or stuck worker would otherwise hang the run
                    raise RuntimeError(
                        f"evaluation workers {sorted(pending)} sent nothing for "
                        f"{SHARD_SILENCE_S:.0f} s (not even a finished episode); rerun with "
                        "--eval-mode sync to evaluate in this process")
                for conn in ready:
                    index = next(i for i, c in pending.items() if c is conn)
                    try:
                        message = conn.recv()
                    except EOFError:
                        workers[index].join(timeout=5)  # exitcode is None until it is joined
                        raise RuntimeError(
                            f"evaluation worker {index} died (exit code {workers[index].exitcode}) "
                            "without a result; rerun with --eval-mode sync to see the error "
                            "in this process") from None
                    if message[0] == "finished":
                        bar.update(message[1])
                    elif message[0] == "bench_error":
                        raise message[1]
                    elif message[0] == "error":
                        raise RuntimeError(f"evaluation worker {index} failed:\n{message[1]}")
                    else:
                        results[index] = (message[1], message[2])
                        del pending[index]
    finally:
        for conn in conns:
            conn.close()
        for proc in workers:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
    returns = np.concatenate([results[i][0] for i in range(len(blocks))])
    lengths = np.concatenate([results[i][1] for i in range(len(blocks))])
    return returns, lengths


def evaluate(
    agent: Any,
    make_env: MakeEnv,
    *,
    episodes: int,
    seed: int,
    condition: Condition = DEFAULT,
    num_envs: int | None = None,
    mode: Literal["async", "sync", "sharded", "auto"] = "auto",
    desc: str = "evaluating",
    shards: int | None = None,
) -> EvalResult:
    """Run ``episodes`` episodes, ``num_envs`` at a time (default: all of them, at most 32).

    ``mode="auto"`` runs envs that offer a worker split (``worker_split``) in worker processes
    with the observation transform batched here; otherwise it shards the episodes over
    ``shard_count`` forked processes when that is more than one, and steps them in this process
    when it is not. ``sharded`` without a shardable agent or a second thread falls back to
    ``sync``. ``shards`` replaces the thread count as ``shard_count``'s limit."""
    n = min(episodes, num_envs or 32)
    start = time.perf_counter()
    split = None
    if mode in ("async", "auto") and n > 1:
        probe = make_env()
        split = worker_split(probe)
        probe.close()
        if mode == "auto":
            mode = "async" if split is not None else "sharded"
    if mode in ("sharded", "auto"):
        shards = shard_count(agent, n, limit=shards)
        if shards > 1:
            returns, lengths = _evaluate_sharded(agent, make_env, episodes, n, shards, seed,
                                                 condition, desc)
            return EvalResult(returns, lengths, time.perf_counter() - start, condition)
        mode = "sync"
    if mode == "async" and n > 1:
        envs = _WorkerEnvs(make_env, n) if split is None else _WorkerEnvs(split[0], n, split[1])
    else:
        envs = _EnvBatch(make_env, n)
    try:
        with torch_threads(ACTING_THREADS), \
                progress_bar(total=episodes, desc=desc, unit="ep") as bar:
            returns, lengths = _run_episodes(agent, envs, n, np.arange(episodes), seed,
                                             condition, bar.update)
    except BaseException:
        # Interrupted (SIGTERM reaches this process only, not its env workers), worker envs may
        # be mid-step: waiting for their step would wait forever, so they are stopped instead.
        envs.close(terminate=True)
        raise
    envs.close()
    return EvalResult(returns, lengths, time.perf_counter() - start, condition)


def evaluate_sequential(agent: Any, make_env: MakeEnv, *, episodes: int, seed: int,
                        condition: Condition = DEFAULT) -> EvalResult:
    """The reference loop: one env, one episode at a time, the policy at batch size 1."""
    start = time.perf_counter()
    env = make_env()
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        state = agent.initial_state(1, condition)
        done = False
        while not done:
            actions, state = agent.act(np.asarray(obs, dtype=np.float32)[None], state)
            obs, rew, term, trunc, _ = env.step(actions[0])
            state = agent.observe(state, actions, np.array([rew]))
            returns[i] += rew
            lengths[i] += 1
            done = term or trunc
    env.close()
    return EvalResult(returns, lengths, time.perf_counter() - start, condition)


class WithoutTaskGoal:
    """``agent``, which acts on observations alone, evaluated on a goal task whose env shows
    ``[observation, goal]`` (``bench.envs.goal_tasks``): it is given the first ``obs_dim``
    numbers of each row (the goal-blind behaviour its training data teach it)."""

    def __init__(self, agent: Any, obs_dim: int) -> None:
        self.agent, self.obs_dim = agent, obs_dim

    @property
    def batch_invariant_act(self) -> bool:
        return bool(getattr(self.agent, "batch_invariant_act", False))

    def initial_state(self, num_envs: int, condition: Condition = DEFAULT) -> Any:
        return self.agent.initial_state(num_envs, condition)

    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        return self.agent.act(observations[:, :self.obs_dim], state)

    def observe(self, state: Any, actions: np.ndarray, rewards: np.ndarray) -> Any:
        return self.agent.observe(state, actions, rewards)


class PolicyAgent:
    """Adapts a stateless batch policy ``f(obs) -> actions`` to the agent interface."""

    def __init__(self, policy: Callable[[np.ndarray], np.ndarray], batch_invariant: bool = False) -> None:
        self.policy = policy
        # Only a policy whose per-env actions do not depend on the batch (no random draws, no
        # batch-size-dependent rounding) may be sharded over processes (``evaluate``).
        self.batch_invariant_act = batch_invariant

    def initial_state(self, num_envs: int, condition: Condition = DEFAULT) -> None:
        return None

    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        return np.asarray(self.policy(observations)), state

    def observe(self, state: Any, actions: np.ndarray, rewards: np.ndarray) -> Any:
        return state
