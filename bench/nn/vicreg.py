"""VICReg (Bardes, Ponce & LeCun 2022) applied temporally: embeddings of two states a few steps
apart in the same trajectory should agree (invariance), every embedding dimension should keep a
standard deviation of at least 1 across the batch (variance, a hinge), and dimensions should be
decorrelated (covariance). One module for every algorithm that uses it (DT's state embeddings,
PPO's state representation, the GCSL IDM's state encoder): ``VICRegFields`` are the config
fields, ``VICRegHead`` the projector plus the loss.

The loss is computed on the projector's outputs (an "expander" MLP), as in the paper; the
representation that the algorithm uses is the projector's input. Coefficients default to the
paper's 25 / 25 / 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.nn.layers import MLP


@dataclass
class VICRegFields:
    """Config fields shared by every VICReg variant, mixed into the variant's config
    (``DTVICRegConfig(DTConfig, VICRegFields)``); the base algorithm's config has none."""

    vicreg_weight: float = 0.0  # weight of the auxiliary loss; 0 = the base algorithm exactly
    vicreg_sim: float = 25.0  # invariance coefficient
    vicreg_var: float = 25.0  # variance coefficient
    vicreg_cov: float = 1.0  # covariance coefficient
    vicreg_max_offset: int = 5  # pairs are states 1..this many steps apart in one episode
    vicreg_projector: tuple[int, ...] = (256, 256)  # the expander's hidden and output sizes

    def checks(self) -> list[str]:
        from bench.config import at_least, positive_sizes

        return (at_least(self, 0, "vicreg_weight", "vicreg_sim", "vicreg_var", "vicreg_cov")
                + at_least(self, 1, "vicreg_max_offset") + positive_sizes(self, "vicreg_projector"))


def vicreg_terms(za: torch.Tensor, zb: torch.Tensor, eps: float = 1e-4) -> dict[str, torch.Tensor]:
    """Invariance, variance and covariance terms for paired embeddings (N, D), unweighted.

    invariance: mean squared difference of the pairs; variance: mean over dimensions of
    relu(1 - std) per branch, averaged over the two branches (at most 1 - sqrt(eps), when every
    embedding is the same); covariance: sum of squared off-diagonal covariances / D per branch,
    summed over the branches."""
    invariance = F.mse_loss(za, zb)
    variance = za.new_zeros(())
    covariance = za.new_zeros(())
    n, d = za.shape
    for z in (za, zb):
        z = z - z.mean(0)
        std = torch.sqrt(z.var(0) + eps)
        variance = variance + F.relu(1.0 - std).mean() / 2
        cov = (z.T @ z) / max(n - 1, 1)
        off_diagonal = cov - torch.diag(torch.diagonal(cov))
        covariance = covariance + off_diagonal.pow(2).sum() / d
    return {"invariance": invariance, "variance": variance, "covariance": covariance}


class VICRegHead(nn.Module):
    """The projector and the weighted loss; build it only when ``vicreg_weight > 0`` so that a
    zero weight leaves the base algorithm's parameters, random draws and numbers untouched."""

    def __init__(self, in_dim: int, fields: VICRegFields) -> None:
        super().__init__()
        *hidden, out = fields.vicreg_projector
        self.projector = MLP(in_dim, tuple(hidden), out)
        self.coefficients = (fields.vicreg_sim, fields.vicreg_var, fields.vicreg_cov)

    def forward(self, ha: torch.Tensor, hb: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted VICReg loss of representation pairs (N, in_dim) and its terms for logging."""
        terms = vicreg_terms(self.projector(ha), self.projector(hb))
        sim, var, cov = self.coefficients
        loss = sim * terms["invariance"] + var * terms["variance"] + cov * terms["covariance"]
        return loss, {f"vicreg/{k}": v.item() for k, v in terms.items()} | {"vicreg/loss": loss.item()}


def vicreg_weight(config: object) -> float:
    """A config's VICReg weight: 0 for the configs of base algorithms, which have no VICReg
    fields (only the ``*_vicreg`` variants' configs mix ``VICRegFields`` in)."""
    return config.vicreg_weight if isinstance(config, VICRegFields) else 0.0
