"""The goal-conditioned inverse-dynamics network shared by ``gcsl_idm`` and the goal-setter
family: (normalized s_t, normalized goal) → action in [-1, 1] (tanh).

Without a state encoder (the default) it is one MLP on the concatenation [s_t, g]. With
``state_encoder`` sizes, a state encoder φ (an MLP with a ReLU output) is applied to both s_t and
g, and the MLP reads [φ(s_t), φ(g)]: φ is the state representation that the VICReg variants
regularize.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from bench.nn.layers import MLP


class InverseDynamicsMLP(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int],
                 state_encoder: Sequence[int] = ()) -> None:
        super().__init__()
        self.encoder: nn.Module | None = None
        width = obs_dim
        if state_encoder:
            *enc_hidden, width = state_encoder
            self.encoder = nn.Sequential(MLP(obs_dim, tuple(enc_hidden), width), nn.ReLU())
        self.head = MLP(2 * width, tuple(hidden), act_dim, nn.Tanh())

    @property
    def representation_dim(self) -> int:
        return self.head[0].in_features // 2

    def encode(self, states: torch.Tensor) -> torch.Tensor:
        return states if self.encoder is None else self.encoder(states)

    def forward(self, states: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.encode(states), self.encode(goals)], dim=-1))
