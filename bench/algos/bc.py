"""Behaviour cloning: an MLP regresses dataset actions from (normalized) observations.

Defaults follow CORL's BC for D4RL locomotion (256-256 MLP, Adam 3e-4, batch 256, 1M updates).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bench.algorithm import Algorithm
from bench.config import TRANSITION_BUDGETS, TrainConfig, positive_sizes
from bench.data.sampler import TaskSpec
from bench.nn import MLP
from bench.nn.layers import row_invariant_act
from bench.nn.optim import adamw
from bench.registry import register


@dataclass
class BCConfig(TrainConfig):
    num_updates: int = 1_000_000  # gradient steps
    batch_size: int = 256  # transitions per update
    lr: float = 3e-4  # Adam's learning rate
    hidden: tuple[int, ...] = (256, 256)  # hidden layer sizes of the ReLU MLP
    log_every: int = 1000  # write a metrics line every N updates
    checkpoint_every: int = 50_000  # atomic checkpoint every N updates

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = TRANSITION_BUDGETS

    def checks(self) -> list[str]:
        return positive_sizes(self, "hidden")


@register("bc", description="MLP behaviour cloning (MSE on actions)")
class BehaviourCloning(Algorithm):
    Config = BCConfig

    def __init__(self, config: BCConfig, spec: TaskSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.policy = MLP(spec.obs_dim, config.hidden, spec.act_dim, torch.nn.Tanh()).to(device)
        self.optimizer = adamw(self.policy.parameters(), config.lr)

    def update(self, batch: dict[str, np.ndarray], step: int) -> dict[str, float]:
        obs = self.normalize(self.tensor(batch["observations"]))
        target = self.unit_actions(batch["actions"])
        loss = F.mse_loss(self.policy(obs), target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item()}

    @row_invariant_act
    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        self.policy.eval()
        out = self.policy(self.normalize(self.tensor(observations)))
        self.policy.train()
        return self.env_actions(out), state
