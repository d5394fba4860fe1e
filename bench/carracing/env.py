"""``bench/CarRacingLatent-v0``: CarRacing-v3 (continuous) seen through the frozen vision encoder.

Observations are the 64-d latents of the rendered 96×96 frames, exactly what the Car Racer
datasets store, so any algorithm trained on those datasets evaluates here unchanged (and
``minari.recover_environment`` returns this env). Episodes last at most 1,000 steps, as
CarRacing-v3's; the reward, termination and action box are CarRacing's own.
"""
from __future__ import annotations

import functools
from pathlib import Path

import gymnasium as gym
import numpy as np

LATENT_ENV_ID = "bench/CarRacingLatent-v0"
MAX_EPISODE_STEPS = 1000


class CarRacingLatent(gym.ObservationWrapper):
    def __init__(self, env: gym.Env, encoder_path: str | Path | None = None) -> None:
        super().__init__(env)
        import torch

        from bench.carracing.encoder import LATENT_DIM, load_encoder

        self.encoder, self.encoder_sha256 = load_encoder(encoder_path)
        self._torch = torch
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (LATENT_DIM,), np.float32)

    def observation(self, frame: np.ndarray) -> np.ndarray:
        from bench.carracing.encoder import encode_frames

        return encode_frames(self.encoder, frame[None])[0]

    def split_for_workers(self, max_episode_steps: int | None):
        """For ``bench.evaluate``: worker processes run plain CarRacing-v3 (same arguments, the
        outer env's step limit) and the frames of all envs are encoded here in one batch."""
        from bench.carracing.encoder import encode_frames

        kwargs = {"continuous": self.env.unwrapped.continuous,
                  "max_episode_steps": max_episode_steps}
        encoder = self.encoder
        return (functools.partial(gym.make, "CarRacing-v3", **kwargs),
                lambda frames: encode_frames(encoder, np.asarray(frames)))


def make_latent_env(encoder_path: str | None = None, render_mode: str | None = None,
                    **carracing_kwargs) -> gym.Env:
    """Entry point of ``bench/CarRacingLatent-v0`` (gymnasium adds the 1,000-step limit)."""
    from gymnasium.envs.box2d.car_racing import CarRacing

    carracing_kwargs.setdefault("continuous", True)
    return CarRacingLatent(CarRacing(render_mode=render_mode, **carracing_kwargs), encoder_path)


def register() -> None:
    if LATENT_ENV_ID not in gym.registry:
        gym.register(id=LATENT_ENV_ID, entry_point="bench.carracing.env:make_latent_env",
                     max_episode_steps=MAX_EPISODE_STEPS)
