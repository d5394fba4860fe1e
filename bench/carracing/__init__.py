"""The Car Racer dataset family: a track-geometry driver for CarRacing-v3, a frozen 64-d vision
encoder, and the latent environment ``bench/CarRacingLatent-v0`` the datasets are recorded in."""
from bench.carracing.env import LATENT_ENV_ID, register

register()

__all__ = ["LATENT_ENV_ID", "register"]
