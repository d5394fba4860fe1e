"""Goal-conditioned behaviour cloning (GCBC), as OGBench runs it (Park et al., ICLR 2025; its
``impls/agents/gcbc.py`` at commit ba4e99b and the defaults of ``impls/main.py``).

A Gaussian policy π(a | s, g) with a fixed unit standard deviation maximizes the likelihood of
the dataset's action a_t given the state s_t and a goal g relabelled from the same trajectory: a
state s_{t+k}, k uniform over the steps left in the episode (hindsight relabelling; OGBench's
``actor_p_trajgoal = 1``, ``actor_geom_sample = False``). With σ = 1 the negative
log-likelihood is ½‖a − μ(s, g)‖² + (A/2)·log 2π. At evaluation the agent acts with the mean,
clipped to the action box, towards the task's goal.

``full`` = OGBench's settings for pointmaze navigate (``impls/hyperparameters.sh``: the
defaults): 1M updates, batch 1024, Adam 3e-4, an MLP of three 512-unit GELU layers on the
concatenated (s, g), Glorot-uniform weights, the mean layer's weights scaled by 1e-2, zero
biases; observations and goals as the env gives them (no normalization). ``quick`` = 20k updates
of batch 256; ``smoke`` for CI.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from bench.algorithm import Algorithm
from bench.config import TrainConfig, positive_sizes
from bench.data.sampler import Sampler, TaskSpec
from bench.errors import UsageError
from bench.nn.layers import row_invariant_act
from bench.nn.optim import adamw
from bench.registry import register


@dataclass
class GCBCConfig(TrainConfig):
    num_updates: int = 1_000_000  # gradient steps
    batch_size: int = 1024  # (state, action, goal) triples per update
    lr: float = 3e-4  # Adam's learning rate
    hidden: tuple[int, ...] = (512, 512, 512)  # GELU hidden layers of the policy
    log_every: int = 1000  # write a metrics line every N updates
    checkpoint_every: int = 50_000  # atomic checkpoint every N updates

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"num_updates": 20, "batch_size": 32, "hidden": (64, 64), "log_every": 5,
                  "checkpoint_every": 10},
        "quick": {"num_updates": 50_000, "batch_size": 256, "hidden": (256, 256), "log_every": 500,
                  "checkpoint_every": 5_000},
    }

    def checks(self) -> list[str]:
        return positive_sizes(self, "hidden")


def goal_policy_mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """OGBench's actor body: GELU layers (exact: flax's default tanh approximation differs by
    under 1e-3 and costs 2.7× as much here) with Glorot-uniform weights and zero biases, then a
    linear mean head whose Glorot-uniform weights are scaled by 1e-2 (``default_init(1e-2)``)."""
    layers: list[nn.Module] = []
    for h in hidden:
        layer = nn.Linear(in_dim, h)
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
        layers += [layer, nn.GELU()]
        in_dim = h
    head = nn.Linear(in_dim, out_dim)
    nn.init.xavier_uniform_(head.weight, gain=math.sqrt(1e-2))  # variance × 1e-2
    nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, head)


def require_task_goals(name: str, spec: TaskSpec, goals_are_states: bool = False) -> None:
    """Goal-conditioned learners act towards the goals of a goal task; refuse other envs (and,
    with ``goals_are_states``, envs whose goals are not observations: D4RL's pointmaze's are
    positions, its observations position and velocity)."""
    if not spec.goal_dim:
        raise UsageError(f"{name} is goal-conditioned: it needs a dataset whose env gives each "
                         "episode a goal (pointmaze-medium-navigate, pointmaze-large-navigate, "
                         f"D4RL/pointmaze/*); {spec.env_id or 'this env'} gives none.")
    if goals_are_states and spec.goal_dim != spec.obs_dim:
        raise UsageError(f"{name} takes goals that are observations ({spec.obs_dim} numbers); "
                         f"{spec.env_id}'s goals have {spec.goal_dim}.")


@register("gcbc", description="Goal-conditioned behaviour cloning (OGBench's GCBC)")
class GCBC(Algorithm):
    Config = GCBCConfig
    training_loss = "actor_loss"
    uses_task_goals = True

    def __init__(self, config: GCBCConfig, spec: TaskSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.check_task(config, spec)
        # μ(s, g): (B, obs + goal) → (B, act)
        self.policy = goal_policy_mlp(spec.obs_dim + spec.goal_dim, config.hidden,
                                      spec.act_dim).to(device)
        self.optimizer = adamw(self.policy.parameters(), config.lr)

    @classmethod
    def check_task(cls, config: GCBCConfig, spec: TaskSpec) -> None:
        require_task_goals("gcbc", spec)

    def sample(self, sampler: Sampler) -> dict[str, np.ndarray]:
        return sampler.goal_mixture(self.config.batch_size, p_current=0.0, p_future=1.0,
                                    p_random=0.0)

    def update(self, batch: dict[str, np.ndarray], step: int) -> dict[str, float]:
        inputs = self.tensor(np.concatenate([batch["observations"], batch["goals"]], 1))
        actions = self.unit_actions(batch["actions"])  # (B, A) in [-1, 1]
        mean = self.policy(inputs)  # (B, A)
        # −log N(a; μ, I), averaged over the batch
        loss = 0.5 * (actions - mean).pow(2).sum(1).mean() \
            + 0.5 * actions.shape[1] * math.log(2 * math.pi)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"actor_loss": loss.item(), "mse": (actions - mean).detach().pow(2).mean().item()}

    @row_invariant_act
    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """Rows [observation, goal] (a goal task's): the clipped mean action."""
        return self.env_actions(self.policy(self.tensor(observations)).clamp(-1, 1)), state
