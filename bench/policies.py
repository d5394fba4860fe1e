"""Standalone policies: files that act without the algorithm that trained them.

The suite's reference policies (which make the hopper datasets) are such files: small, hashed,
loadable with ``torch.load(weights_only=True)``-safe contents plus numpy arrays. Two formats:
PPO's Gaussian MLP (``bench.gaussian_mlp.v1``) and SAC's tanh-squashed Gaussian
(``bench.tanh_gaussian_mlp.v1``); ``load_policy`` reads either.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import BenchError
from bench.nn.actors import TanhGaussianActor
from bench.nn.layers import orthogonal_tanh_mlp


def _read(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise BenchError(f"cannot load policy file {path}: {exc}") from None


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
    def load(cls, path: Path, **kwargs: Any) -> GaussianMLPPolicy:
        return cls(_read(path), **kwargs)

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


class TanhGaussianMLPPolicy:
    """SAC's actor (``bench.nn.actors.TanhGaussianActor``) over raw observations: the action is
    tanh(u) mapped to the env's box, u = μ(s) when ``deterministic``, else u ~ N(μ(s), σ(s)²)
    drawn with the policy's own seeded generator (as D4RL's datasets were collected)."""

    FORMAT = "bench.tanh_gaussian_mlp.v1"

    def __init__(self, exported: dict[str, Any], *, deterministic: bool = True, seed: int = 0) -> None:
        if exported.get("format") != self.FORMAT:
            raise BenchError(f"unknown policy format {exported.get('format')!r}")
        self.exported = exported
        self.actor = TanhGaussianActor(exported["obs_dim"], exported["act_dim"],
                                       tuple(exported["hidden"]),
                                       log_std_bounds=tuple(exported["log_std_bounds"]))
        self.actor.load_state_dict(exported["actor"])
        self.actor.eval()
        self.deterministic = deterministic
        self.rng = np.random.default_rng(seed)
        self.low = np.asarray(exported["action_low"], np.float64)
        self.high = np.asarray(exported["action_high"], np.float64)

    @classmethod
    def load(cls, path: Path, **kwargs: Any) -> TanhGaussianMLPPolicy:
        return cls(_read(path), **kwargs)

    @torch.inference_mode()
    def __call__(self, observations: np.ndarray) -> np.ndarray:
        obs = torch.as_tensor(np.asarray(observations, np.float32))
        mean, log_std = self.actor(obs)  # (n, A) each
        u = mean.double().numpy()
        if not self.deterministic:
            u = u + np.exp(log_std.double().numpy()) * self.rng.standard_normal(u.shape)
        unit = np.tanh(u)  # (n, A) in (-1, 1)
        action = unit * (self.high - self.low) / 2 + (self.high + self.low) / 2
        return np.clip(action, self.low, self.high).astype(np.float32)


FORMATS = {"bench.gaussian_mlp.v1": GaussianMLPPolicy,
           TanhGaussianMLPPolicy.FORMAT: TanhGaussianMLPPolicy}


def load_policy(path: Path, **kwargs: Any) -> GaussianMLPPolicy | TanhGaussianMLPPolicy:
    """The standalone policy in ``path``, whichever format it has (``deterministic``, ``seed``
    as the classes take them)."""
    exported = _read(path)
    kind = FORMATS.get(exported.get("format") if isinstance(exported, dict) else None)
    if kind is None:
        raise BenchError(f"{path} is not a policy file this suite writes (format "
                         f"{exported.get('format') if isinstance(exported, dict) else None!r}; "
                         f"known: {', '.join(FORMATS)})")
    return kind(exported, **kwargs)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
