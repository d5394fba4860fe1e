"""Making the Car Racer datasets: the track driver drives CarRacing-v3 in worker processes, the
frames come back to this process and are encoded in batches by the frozen encoder, and the
latents are written as a Minari dataset whose environment is ``bench/CarRacingLatent-v0``.

Reference scores come from ``assets/carracing/reference.json`` (``python -m bench.carracing
references`` measures them: the uniform random policy and the expert driver, 20 episodes each on
raw CarRacing-v3, which gives the same returns as the latent env).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from bench.carracing.driver import DRIVER_LEVELS, DriverActionWrapper, driver_card
from bench.carracing.env import LATENT_ENV_ID, MAX_EPISODE_STEPS, register

REFERENCE_EPISODES = 20
REFERENCE_SEED = 1_000_000  # disjoint from the datasets' episode seeds (0, 1, 2, ...)
COLLECT_ENVS = 4  # worker processes; CarRacing's Box2D physics and rendering dominate


def driver_env(level: str, max_episode_steps: int = MAX_EPISODE_STEPS) -> gym.Env:
    """Raw CarRacing-v3 (continuous) with the driver of ``level`` reporting its actions."""
    return DriverActionWrapper(gym.make("CarRacing-v3", continuous=True,
                                        max_episode_steps=max_episode_steps), DRIVER_LEVELS[level])


def reference_card_path() -> Path:
    from bench.data.cards import reference_dir

    return reference_dir() / "carracing" / "reference.json"


def load_reference_card() -> dict[str, Any]:
    from bench.errors import DatasetError

    path = reference_card_path()
    if not path.exists():
        raise DatasetError(f"Car Racer reference scores are missing at {path}; measure them with "
                           "`python -m bench.carracing references` (about 10 minutes).")
    return json.loads(path.read_text())


def measure_references(episodes: int = REFERENCE_EPISODES, seed: int = REFERENCE_SEED) -> dict[str, Any]:
    """Mean ± std return of the random policy and of each driver level; written to the card."""
    from bench.making.generate import InfoActionPolicy, UniformRandomPolicy, collect_episodes
    from bench.io import atomic_write_json

    card: dict[str, Any] = {"env": "CarRacing-v3", "max_episode_steps": MAX_EPISODE_STEPS,
                            "episodes": episodes, "seed": seed}
    probe = gym.make("CarRacing-v3", continuous=True)
    policies = {"random": UniformRandomPolicy(probe.action_space.low, probe.action_space.high,
                                              seed=seed)}
    probe.close()
    policies.update({level: InfoActionPolicy("driver_action") for level in DRIVER_LEVELS})
    for name, policy in policies.items():
        level = name if name in DRIVER_LEVELS else "expert"  # random ignores the driver's infos
        buffers = collect_episodes(functools.partial(driver_env, level), policy,
                                   num_episodes=episodes, seed=seed, num_envs=COLLECT_ENVS,
                                   vectorization="async", desc=f"reference: {name}",
                                   transform=lambda frames: np.zeros((len(frames), 1), np.float32))
        returns = np.array([float(np.sum(b.rewards)) for b in buffers])
        card[name] = {"mean_return": float(returns.mean()), "std_return": float(returns.std()),
                      "returns": returns.round(2).tolist(),
                      "driver": driver_card(name) if name in DRIVER_LEVELS else None}
    atomic_write_json(reference_card_path(), card)
    return card


def make_carracing_dataset(dataset_id: str, level: str, *, num_transitions: int | None = None,
                           num_episodes: int | None = None, seed: int = 0,
                           max_episode_steps: int = MAX_EPISODE_STEPS,
                           num_envs: int = COLLECT_ENVS) -> dict[str, Any]:
    """Collect with the ``level`` driver, encode the frames, write ``dataset_id``."""
    from bench.carracing.encoder import encode_frames, load_encoder
    from bench.making.generate import InfoActionPolicy, collect_episodes, write_dataset

    register()
    card = load_reference_card()
    encoder, encoder_sha = load_encoder()
    # collect_episodes encodes on one torch thread: the CarRacing workers need the cores, and a
    # multi-threaded encoder call on busy cores spends its time waiting at OpenMP barriers
    # (measured: the encoding process used 4x the CPU of a worker with 2 threads).
    buffers = collect_episodes(
        functools.partial(driver_env, level, max_episode_steps), InfoActionPolicy("driver_action"),
        num_transitions=num_transitions, num_episodes=num_episodes, seed=seed,
        num_envs=num_envs, vectorization="async" if num_envs > 1 else "sync", desc=dataset_id,
        transform=lambda frames: encode_frames(encoder, frames))
    env = gym.make(LATENT_ENV_ID, max_episode_steps=max_episode_steps)
    try:
        return write_dataset(
            dataset_id, buffers, env, ref_min=card["random"]["mean_return"],
            ref_max=card["expert"]["mean_return"],
            provenance={"generator": "bench.carracing.data.make_carracing_dataset",
                        "driver": driver_card(level), "encoder_sha256": encoder_sha, "seed": seed,
                        "max_episode_steps": max_episode_steps,
                        "ref_scores_source": f"{reference_card_path().name}: random policy and "
                                             f"expert driver, {card['episodes']} episodes each"},
            description=f"Self-generated Car Racer ({level} driver) on CarRacing-v3, observations "
                        "are 64-d latents of the frozen bench encoder. NOT an official dataset.",
            algorithm_name=f"bench-track-driver-{level}")
    finally:
        env.close()


def maker(level: str):
    """A ``bench.making.makers`` maker for the suite's ``carracing-<level>`` alias."""

    def make(alias, *, num_transitions: int, seed: int) -> dict[str, Any]:
        return make_carracing_dataset(alias.local_id, level, num_transitions=num_transitions,
                                      seed=seed)

    return make
