"""Shared fixtures: an isolated Minari root and cache per session, and a tiny Hopper dataset."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

TINY_ID = "test/hopper/tiny-v0"


@pytest.fixture(scope="session", autouse=True)
def isolated_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every test sees its own Minari root and cache; nothing touches ~/.minari."""
    roots = {"minari": tmp_path_factory.mktemp("minari"), "cache": tmp_path_factory.mktemp("cache"),
             "reference": tmp_path_factory.mktemp("no-reference-policies")}
    os.environ["MINARI_DATASETS_PATH"] = str(roots["minari"])
    os.environ["MINARI_TEST_ROOT"] = str(roots["minari"])  # stays put when a test moves the root
    os.environ["BENCH_CACHE"] = str(roots["cache"])
    os.environ["BENCH_OFFLINE"] = "1"
    # Tests never see the repository's committed reference policies unless they ask for them.
    os.environ["BENCH_REFERENCE_DIR"] = str(roots["reference"])
    os.environ["BENCH_PROGRESS"] = "0"
    return roots


@pytest.fixture(scope="session")
def tiny_dataset(isolated_roots) -> str:
    """30 short Hopper-v5 episodes from a random policy, written in the Minari format."""
    from bench.making.generate import UniformRandomPolicy, collect_episodes, write_dataset

    def make_env() -> gym.Env:
        return gym.make("Hopper-v5", max_episode_steps=50)

    env = make_env()
    buffers = collect_episodes(make_env, UniformRandomPolicy(env.action_space.low,
                                                             env.action_space.high, seed=0),
                               num_episodes=30, seed=0, num_envs=4)
    write_dataset(TINY_ID, buffers, env, ref_min=0.0, ref_max=100.0,
                  provenance={"generator": "tests", "seed": 0}, description="test fixture",
                  algorithm_name="uniform-random")
    return TINY_ID


TINY_GOAL_ALIAS = "pointmaze-medium-navigate"


@pytest.fixture(scope="session")
def tiny_goal_dataset(isolated_roots) -> str:
    """Three 1,000-step episodes of the pointmaze-medium-navigate recipe, under the isolated
    root, made as `bench datasets make pointmaze-medium-navigate --transitions 3000` would."""
    from bench.data.catalog import ALIASES
    from bench.making.makers import make_alias

    make_alias(ALIASES[TINY_GOAL_ALIAS], num_transitions=3000, seed=0, log=lambda m: None)
    return TINY_GOAL_ALIAS


class SimulatedKill(Exception):
    """Stands in for a killed process inside the training loop (``kill_after``)."""


def kill_after(step: int) -> list:
    """Run callbacks (``bench.run.execute(..., callbacks=...)``) that stop the run once ``step``
    units of training are done, after that unit's checkpoint, as a kill would leave it."""
    from bench.run import Callback

    class Kill(Callback):
        def after_unit(self, before, progress, losses) -> None:
            if progress.step >= step:
                raise SimulatedKill(f"stopped after {progress.step} steps")

    return [Kill()]


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m bench ARGS`` in a subprocess with the test roots in its environment."""
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=dict(os.environ))


def make_flat(lengths: list[int], obs_dim: int = 2, act_dim: int = 1, seed: int = 0):
    """Hand-made episodes whose observations encode (episode, step) for exact index checks:
    obs[..., 0] = episode id, obs[..., 1] = step within the episode (0..len)."""
    from bench.data.storage import FlatEpisodes

    obs, act, rew, term, trunc = [], [], [], [], []
    for e, n in enumerate(lengths):
        o = np.zeros((n + 1, obs_dim), np.float32)
        o[:, 0] = e
        o[:, 1] = np.arange(n + 1)
        obs.append(o)
        a = np.zeros((n, act_dim), np.float32)
        a[:, 0] = 100 * e + np.arange(n)
        act.append(a)
        rew.append(np.ones(n, np.float32) * (e + 1))
        t = np.zeros(n, bool)
        t[-1] = True
        term.append(t)
        trunc.append(np.zeros(n, bool))
    return FlatEpisodes(np.concatenate(obs), np.concatenate(act), np.concatenate(rew),
                        np.concatenate(term), np.concatenate(trunc), np.array(lengths))


def hand_q(critics, member: int, s: list[float], a: list[float]) -> float:
    """Member ``member`` of a ``QEnsemble`` at (s, a), layer by layer in float64 Python from its
    weight matrices: the hand computation the Q-learning tests compare against."""
    h = [float(x) for x in [*s, *a]]
    layers = list(zip(critics.weights, critics.biases))
    for k, (weight, bias) in enumerate(layers):
        w, b = weight[member].double().tolist(), bias[member, 0].double().tolist()
        h = [sum(h[i] * w[i][j] for i in range(len(h))) + b[j] for j in range(len(b))]
        if k < len(layers) - 1:
            h = [max(x, 0.0) for x in h]
    return h[0]
