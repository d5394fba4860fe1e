"""Make a Minari dataset from any batched policy, without JAX (no ``minari.DataCollector``).

Episodes are collected from several envs stepped together so a neural policy acts on a batch; each
episode ``i`` starts from ``env.reset(seed=seed + i)``, so a dataset is reproducible from its seed.
Provenance is written into the dataset's metadata so it can never pass for an official dataset.
"""
from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import gymnasium as gym
import numpy as np

from bench.data import storage
from bench.progress import progress_bar


class BatchPolicy(Protocol):
    """Maps a batch of observations (n, obs_dim) to a batch of actions (n, act_dim)."""

    def __call__(self, observations: np.ndarray) -> np.ndarray: ...


@dataclass
class UniformRandomPolicy:
    """Uniform random actions in the action box, from its own seeded generator."""

    low: np.ndarray
    high: np.ndarray
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        n = len(observations)
        return self.rng.uniform(self.low, self.high, size=(n, len(self.low))).astype(np.float32)


def collect_episodes(
    make_env: Callable[[], gym.Env],
    policy: BatchPolicy,
    *,
    num_transitions: int | None = None,
    num_episodes: int | None = None,
    seed: int = 0,
    num_envs: int = 8,
    desc: str = "collecting",
) -> list:
    """Collect whole episodes until ``num_transitions`` steps or ``num_episodes`` episodes.

    Episodes still running when the target is met are dropped, so every episode is complete.
    """
    from minari.data_collector.episode_buffer import EpisodeBuffer

    if (num_transitions is None) == (num_episodes is None):
        raise ValueError("give exactly one of num_transitions or num_episodes")
    envs = [make_env() for _ in range(num_envs)]
    target = num_transitions if num_transitions is not None else num_episodes
    done_steps = 0
    finished: list[EpisodeBuffer] = []
    next_episode = 0
    # Per env: episode index, seed and lists of the episode so far.
    slots: list[dict[str, Any] | None] = [None] * num_envs

    def start(j: int) -> None:
        nonlocal next_episode
        ep_seed = seed + next_episode
        obs, _ = envs[j].reset(seed=ep_seed)
        slots[j] = {"id": next_episode, "seed": ep_seed, "obs": [obs], "act": [], "rew": [],
                    "term": [], "trunc": []}
        next_episode += 1

    def reached() -> bool:
        return (done_steps if num_transitions is not None else len(finished)) >= target

    for j in range(num_envs):
        start(j)
    with progress_bar(total=target, desc=desc, unit="step" if num_transitions else "ep") as bar:
        while not reached():
            batch_obs = np.stack([s["obs"][-1] for s in slots])
            actions = np.asarray(policy(batch_obs))
            for j, env in enumerate(envs):
                s = slots[j]
                obs, rew, term, trunc, _ = env.step(actions[j])
                s["obs"].append(obs)
                s["act"].append(actions[j])
                s["rew"].append(float(rew))
                s["term"].append(bool(term))
                s["trunc"].append(bool(trunc))
                if term or trunc:
                    finished.append(EpisodeBuffer(
                        id=s["id"], seed=s["seed"], observations=np.asarray(s["obs"]),
                        actions=np.asarray(s["act"]), rewards=s["rew"], terminations=s["term"],
                        truncations=s["trunc"]))
                    done_steps += len(s["act"])
                    bar.update(len(s["act"]) if num_transitions is not None else 1)
                    if reached():
                        break
                    start(j)
    for env in envs:
        env.close()
    # Episode ids follow completion order in the file; sort so the file order is the seed order.
    finished.sort(key=lambda b: b.id)
    return [dataclasses.replace(buf, id=new_id) for new_id, buf in enumerate(finished)]


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("bench", "numpy", "torch", "gymnasium", "minari", "mujoco", "h5py"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def write_dataset(
    dataset_id: str,
    buffers: list,
    env: gym.Env,
    *,
    ref_min: float,
    ref_max: float,
    provenance: dict[str, Any],
    description: str,
    algorithm_name: str,
) -> dict[str, Any]:
    """Write ``buffers`` as a Minari dataset and stamp provenance + data sha256 into its metadata."""
    import warnings

    import minari

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # minari nags about optional fields
        dataset = minari.create_dataset_from_buffers(
            dataset_id=dataset_id, buffer=buffers, env=env, algorithm_name=algorithm_name,
            author="bench (self-generated)",
            ref_min_score=float(ref_min), ref_max_score=float(ref_max), description=description,
        )
    sha = storage.sha256_file(storage.data_file(dataset_id))
    storage.save_flat(sha, storage.flat_from_buffers(buffers))
    provenance = {"source": "self-generated", "versions": package_versions(), **provenance}
    dataset.storage.update_metadata({"bench_provenance": provenance, "data_sha256": sha})
    return storage.read_metadata(dataset_id)
