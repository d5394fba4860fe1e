"""Stochastic actors for continuous actions in [-1, 1].

``TanhGaussianActor`` is SAC's policy (Haarnoja et al. 2018, appendix C): an MLP gives a
Gaussian's mean and log standard deviation per action dimension, a sample ``u`` of it is squashed
to ``a = tanh(u)``, and the density of ``a`` is the Gaussian's corrected by the Jacobian of tanh.
CQL uses it as CORL's ``TanhGaussianPolicy`` does (3×256 ReLU trunk, a log-std that is a learned
affine map of the raw head, clamped to [-20, 2]); SAC can reuse it with other settings.

Sampling takes its standard-normal draws as an argument (``sample(mean, log_std, eps)``): an
update can draw every random number it needs up front, so its loss is a plain function of the
parameters, the batch and those draws (testable by hand, reproducible, shardable).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench.nn.layers import MLP

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
LOG_2 = math.log(2.0)


def tanh_log_det_jacobian(u: torch.Tensor) -> torch.Tensor:
    """log(1 − tanh(u)²) elementwise, in the form that stays finite for large |u|:
    1 − tanh(u)² = 4 / (e^u + e^−u)², so its log is 2·(log 2 − u − softplus(−2u))."""
    return 2.0 * (LOG_2 - u - F.softplus(-2.0 * u))


def tanh_gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor,
                           log_std: torch.Tensor) -> torch.Tensor:
    """log π(tanh(u)) for u drawn from N(mean, exp(log_std)²), summed over the last dimension:
    (..., A) pre-squash values, means and log-stds (broadcast) → (...,)."""
    z = (u - mean) * torch.exp(-log_std)  # (..., A) standardized
    gaussian = -0.5 * z.pow(2) - log_std - LOG_SQRT_2PI  # (..., A) log N(u; mean, std²)
    return (gaussian - tanh_log_det_jacobian(u)).sum(-1)  # (...,)


class TanhGaussianActor(nn.Module):
    """π(a | s): a = tanh(u), u ~ N(μ(s), σ(s)²), every action dimension independent.

    One ReLU MLP maps (..., obs_dim) observations to (..., 2·act_dim): its last layer is the
    mean head (first half) and the log-std head (second half). The raw log-std goes through a
    learned affine map, ``log_std_scale · raw + log_std_shift`` (scalars starting at
    ``log_std_multiplier`` and ``log_std_offset``: an offset of −1 starts σ near e^−1), and is
    clamped to ``log_std_bounds``. The last layer starts small (Xavier-uniform with gain
    ``head_gain``, zero bias), so the first actions are near tanh(0) = 0; the hidden layers keep
    PyTorch's default initialization.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256, 256),
                 log_std_bounds: tuple[float, float] = (-20.0, 2.0),
                 log_std_multiplier: float = 1.0, log_std_offset: float = -1.0,
                 head_gain: float = 1e-2) -> None:
        super().__init__()
        self.act_dim = act_dim
        self.log_std_bounds = log_std_bounds
        self.net = MLP(obs_dim, hidden, 2 * act_dim)  # (..., obs_dim) → (..., 2·act_dim)
        head = self.net[-1]
        nn.init.xavier_uniform_(head.weight, gain=head_gain)
        nn.init.zeros_(head.bias)
        self.log_std_scale = nn.Parameter(torch.tensor(float(log_std_multiplier)))
        self.log_std_shift = nn.Parameter(torch.tensor(float(log_std_offset)))

    def forward(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., obs_dim) → mean, log_std, each (..., act_dim) (pre-squash Gaussian)."""
        mean, raw = self.net(observations).split(self.act_dim, dim=-1)
        log_std = (self.log_std_scale * raw + self.log_std_shift).clamp(*self.log_std_bounds)
        return mean, log_std

    @staticmethod
    def sample(mean: torch.Tensor, log_std: torch.Tensor,
               eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterized samples u = mean + σ·eps squashed: mean, log_std (..., 1, A) or
        (..., A) and standard-normal ``eps`` (..., N, A) → actions (..., N, A) in (−1, 1) and
        their log-probabilities (..., N). Gradients flow to mean and log_std."""
        u = mean + torch.exp(log_std) * eps
        return torch.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)

    def log_prob(self, observations: torch.Tensor, actions: torch.Tensor,
                 eps: float = 1e-6) -> torch.Tensor:
        """log π(a | s) of given actions: (B, obs_dim), (B, A) in [−1, 1] → (B,). Actions are
        pulled inside (−1 + eps, 1 − eps) first, where atanh is finite."""
        mean, log_std = self(observations)
        u = torch.atanh(actions.clamp(-1.0 + eps, 1.0 - eps))
        return tanh_gaussian_log_prob(u, mean, log_std)

    def deterministic(self, observations: torch.Tensor) -> torch.Tensor:
        """The policy's mode for acting: tanh(μ(s)), (..., obs_dim) → (..., act_dim)."""
        return torch.tanh(self(observations)[0])
