"""Evaluation in the environment: many episodes stepped together, the policy acting on the batch.

Episode ``i`` of an evaluation always starts from ``reset(seed=seed + i)``, whether it runs in a
vector env or in the plain sequential loop, so the two give the same per-episode returns (a test
checks it). Each env runs exactly one episode per round.

Default is in-process envs stepped in a loop (not gymnasium's SyncVectorEnv: its autoreset would
keep simulating envs whose episode has ended, and its bookkeeping costs ~25% on top of 10 Hopper
steps): for Hopper-sized simulators (0.2 ms a step) the batched forward pass dominates and worker
processes only add IPC (measured here: 10 DT envs, 300 steps,
2.3 s in-process vs 3.8 s in worker processes; splitting the envs into two groups so that one
group steps while the network acts for the other was slower still, 3.2 s, because two half-size
forward passes cost more than one). ``async`` pays off for expensive simulators (image-based
ones), where stepping dominates.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import gymnasium as gym
import numpy as np

from bench.data.catalog import RefScores
from bench.progress import progress_bar

MakeEnv = Callable[[], gym.Env]


@dataclass
class EvalResult:
    returns: np.ndarray
    lengths: np.ndarray
    seconds: float
    condition: str = "default"
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

    def close(self) -> None:
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
        # fork keeps start-up cheap; workers only step the simulator (no torch work).
        self.envs = gym.vector.AsyncVectorEnv([make_env] * n, context="fork")
        self.transform = transform

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs if self.transform is None else self.transform(obs), dtype=np.float32)

    def reset(self, seeds: list[int]) -> np.ndarray:
        return self._obs(self.envs.reset(seed=seeds)[0])

    def step(self, actions: np.ndarray, running: np.ndarray):
        obs, rew, term, trunc, _ = self.envs.step(actions)
        return self._obs(obs), rew, term, trunc

    def close(self) -> None:
        self.envs.close()


def evaluate(
    agent: Any,
    make_env: MakeEnv,
    *,
    episodes: int,
    seed: int,
    condition: str = "default",
    num_envs: int | None = None,
    mode: Literal["async", "sync", "auto"] = "auto",
    desc: str = "evaluating",
) -> EvalResult:
    """Run ``episodes`` episodes, ``num_envs`` at a time (default: all of them, at most 32).

    ``mode="auto"`` steps the envs in this process, except for envs that offer a worker split
    (``worker_split``): those run in worker processes with the observation transform batched
    here."""
    n = min(episodes, num_envs or 32)
    start = time.perf_counter()
    split = None
    if mode != "sync" and n > 1:
        probe = make_env()
        split = worker_split(probe)
        probe.close()
        if mode == "auto":
            mode = "async" if split is not None else "sync"
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    if mode == "async" and n > 1:
        envs = _WorkerEnvs(make_env, n) if split is None else _WorkerEnvs(split[0], n, split[1])
    else:
        envs = _EnvBatch(make_env, n)
    try:
        with progress_bar(total=episodes, desc=desc, unit="ep") as bar:
            for first in range(0, episodes, n):
                ids = np.arange(first, min(first + n, episodes))
                # Unused slots in the last round replay seeds past the end and are discarded.
                seeds = [int(seed + first + j) for j in range(n)]
                obs = envs.reset(seeds)
                state = agent.initial_state(n, condition)
                running = np.ones(n, dtype=bool)
                running[len(ids):] = False
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
                    bar.update(int(finished[: len(ids)].sum()))
                returns[ids] = ret[: len(ids)]
                lengths[ids] = length[: len(ids)]
    finally:
        envs.close()
    return EvalResult(returns, lengths, time.perf_counter() - start, condition)


def evaluate_sequential(agent: Any, make_env: MakeEnv, *, episodes: int, seed: int,
                        condition: str = "default") -> EvalResult:
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


class PolicyAgent:
    """Adapts a stateless batch policy ``f(obs) -> actions`` to the agent interface."""

    def __init__(self, policy: Callable[[np.ndarray], np.ndarray]) -> None:
        self.policy = policy

    def initial_state(self, num_envs: int, condition: str = "default") -> None:
        return None

    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        return np.asarray(self.policy(observations)), state

    def observe(self, state: Any, actions: np.ndarray, rewards: np.ndarray) -> Any:
        return state
