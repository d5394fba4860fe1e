"""Standalone policies: files that act without the algorithm that trained them.

The suite's reference policies (which make the hopper datasets) are such files: small, hashed,
loadable with ``torch.load(weights_only=True)``-safe contents plus numpy arrays.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import BenchError
from bench.nn.layers import orthogonal_tanh_mlp


class GaussianMLPPolicy:
    """A tanh MLP mean with a state-independent log-std over normalized observations (PPO's actor).

    ``deterministic``: act with the mean; otherwise sample from the Gaussian with the policy's own
    seeded generator (as D4RL's datasets were collected). Actions are clipped to the action box.
    """

    def __init__(self, exported: dict[str, Any], *, deterministic: bool = True, seed: int = 0) -> None:
        if exported.get("format") != "bench.gaussian_mlp.v1":
            raise BenchError(f"unknown policy format {exported.get('format')!r}")
        self.exported = exported
        self.actor = orthogonal_tanh_mlp(exported["obs_dim"], tuple(exported["hidden"]),
                                         exported["act_dim"], 0.01)
        self.actor.load_state_dict(exported["actor_mean"])
        self.actor.eval()
        self.std = exported["log_std"].exp().numpy().astype(np.float64)
        self.deterministic = deterministic
        self.rng = np.random.default_rng(seed)
        self.low, self.high = exported["action_low"], exported["action_high"]

    @classmethod
    def load(cls, path: Path, **kwargs: Any) -> "GaussianMLPPolicy":
        try:
            exported = torch.load(path, map_location="cpu", weights_only=False)
        except (OSError, RuntimeError, EOFError) as exc:
            raise BenchError(f"cannot load policy file {path}: {exc}") from None
        return cls(exported, **kwargs)

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        e = self.exported
        if e["obs_mean"] is None:
            return obs.astype(np.float32)
        z = (obs - e["obs_mean"]) / np.sqrt(e["obs_var"] + 1e-8)
        return np.clip(z, -e["clip_obs"], e["clip_obs"]).astype(np.float32)

    @torch.inference_mode()
    def __call__(self, observations: np.ndarray) -> np.ndarray:
        mean = self.actor(torch.as_tensor(self.normalize(np.asarray(observations)))).numpy()
        if not self.deterministic:
            mean = mean + self.std * self.rng.standard_normal(mean.shape)
        return np.clip(mean, self.low, self.high).astype(np.float32)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
