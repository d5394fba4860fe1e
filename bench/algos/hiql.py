"""Hierarchical implicit Q-learning (HIQL; Park, Ghosh, Eysenbach & Levine, NeurIPS 2023), as
OGBench runs it (its ``impls/agents/hiql.py`` at commit 85bdd21, ``impls/utils/datasets.py``'s
``HGCDataset`` and the defaults of ``impls/main.py``).

One goal-conditioned value, two policies. The value is GCIVL's (``bench.algos.gcivl``: two heads,
an upper expectile of the one-step backup with reward −1 until the goal), but it reads the goal
through a learned representation: V(s, g) = V(s, φ(s, g)), φ an MLP of (s, g) whose 10 outputs
are rescaled to length √10. Acting is then two steps:

- the **high-level policy** π_h(z | s, g), a unit-σ Gaussian over representations, proposes the
  representation of a subgoal: it regresses φ(s, s_{t+k}), the state k = min(25, steps to the
  goal) ahead, weighted by min(exp(β_h · (V̄(s_{t+k}, g) − V̄(s, g))), 100);
- the **low-level policy** π_l(a | s, z), a unit-σ Gaussian over actions, reaches it: it regresses
  the data's action towards the subgoal w = s_{t+25} (φ(s, w), without gradient into φ), weighted
  by min(exp(β_l · (V̄(s', w) − V̄(s, w))), 100).

At evaluation the high level's mean, rescaled to length √10, goes to the low level, whose mean
action, clipped, is taken. The goal-setter of the research notes is the same idea with a goal
state in place of z and the suite's IDM in place of π_l.

Goals as GCIVL's: the value's mix the state itself (0.2), a later state at a geometric offset
(0.5) and any state (0.3); the policies' are later states of the episode, uniform. The three
losses are summed and minimized by one Adam step; the target value (φ included) then moves τ.

``full`` = OGBench's settings for pointmaze navigate (``impls/hyperparameters.sh``): expectile
0.7, β_l = β_h = 3, subgoals 25 steps ahead, a 10-dimensional representation, γ 0.99, τ 0.005,
Adam 3e-4, batch 1024, 1M updates, 512-512-512 GELU networks (layer norm in φ and the value
heads), Glorot-uniform weights, the policies' mean layers scaled by 1e-2; no observation
normalization. ``quick`` = GCIVL's: 50k updates of batch 256 with 256-256 networks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.algorithm import Algorithm
from bench.algos.gcbc import goal_policy_mlp, require_task_goals
from bench.algos.gcivl import (
    GoalValueConfig,
    ValueEnsemble,
    goal_value_mlp,
    goal_value_step,
    implicit_value_loss,
    paired,
    unit_gaussian_log_prob,
)
from bench.config import at_least
from bench.data.sampler import Sampler, TaskSpec
from bench.nn.layers import row_invariant_act
from bench.nn.optim import adamw, target_copy
from bench.registry import register


@dataclass
class HIQLConfig(GoalValueConfig):
    expectile: float = 0.7  # the value regresses this expectile of its one-step backup
    low_alpha: float = 3.0  # low-level AWR inverse temperature (weights capped at 100)
    high_alpha: float = 3.0  # high-level AWR inverse temperature (weights capped at 100)
    subgoal_steps: int = 25  # the low level's subgoals: the state this many steps ahead
    rep_dim: int = 10  # size of the goal representation φ (rescaled to length √rep_dim)

    def checks(self) -> list[str]:
        return (at_least(self, 1, "subgoal_steps", "rep_dim")
                + at_least(self, 0, "low_alpha", "high_alpha"))


class GoalRepresentation(nn.Module):
    """φ(s, g): (B, obs), (B, goal) → (B, rep_dim) of length √rep_dim (OGBench's goal_rep: a
    layer-normed GELU MLP, then ``LengthNormalize``)."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], rep_dim: int) -> None:
        super().__init__()
        body = goal_value_mlp(in_dim, hidden)
        head = nn.Linear(hidden[-1], rep_dim)
        nn.init.xavier_uniform_(head.weight)
        nn.init.zeros_(head.bias)
        self.net = nn.Sequential(*list(body)[:-1], head)  # the value MLP's body, rep_dim outputs

    def forward(self, states: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        return length_normalize(self.net(torch.cat([states, goals], -1)))


def high_level_targets(sampler: Sampler, batch: dict[str, np.ndarray],
                       subgoal_steps: int) -> np.ndarray:
    """The high level's targets for ``value_goals``' batch: the state min(``subgoal_steps``,
    steps to the policy goal) ahead (a random goal: ``subgoal_steps`` ahead, as the low
    level's)."""
    offsets = batch["policy_offsets"]
    steps = np.where(offsets < 0, subgoal_steps, np.minimum(subgoal_steps, offsets))
    return sampler.states_ahead(batch["transitions"], steps)


def length_normalize(z: torch.Tensor) -> torch.Tensor:
    """z rescaled to length √dim (OGBench's ``LengthNormalize``)."""
    return z / torch.linalg.vector_norm(z, dim=-1, keepdim=True) * math.sqrt(z.shape[-1])


class RepresentedValues(nn.Module):
    """V_k(s, g) = head_k(s, φ(s, g)), two heads sharing φ: (B, obs), (B, goal) → (B, 2)."""

    def __init__(self, obs_dim: int, goal_dim: int, hidden: tuple[int, ...], rep_dim: int) -> None:
        super().__init__()
        self.phi = GoalRepresentation(obs_dim + goal_dim, hidden, rep_dim)
        self.heads = ValueEnsemble(obs_dim + rep_dim, hidden)

    def forward(self, states: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        return self.heads(torch.cat([states, self.phi(states, goals)], -1))


@register("hiql", description="Hierarchical implicit Q-learning (Park et al. 2023), OGBench's")
class HIQL(Algorithm):
    Config = HIQLConfig
    training_loss = "value_loss"
    uses_task_goals = True

    def __init__(self, config: HIQLConfig, spec: TaskSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.check_task(config, spec)
        c, obs_dim = config, spec.obs_dim
        self.values = RepresentedValues(obs_dim, spec.goal_dim, c.hidden, c.rep_dim).to(device)
        self.values_target = target_copy(self.values)
        # π_h: (B, obs + goal) → mean subgoal representation (B, rep_dim)
        self.high_policy = goal_policy_mlp(obs_dim + spec.goal_dim, c.hidden, c.rep_dim).to(device)
        # π_l: (B, obs + rep_dim) → mean action (B, A)
        self.low_policy = goal_policy_mlp(obs_dim + c.rep_dim, c.hidden, spec.act_dim).to(device)
        self.optimizer = adamw([*self.values.parameters(), *self.high_policy.parameters(),
                                *self.low_policy.parameters()], c.lr)

    @classmethod
    def check_task(cls, config: HIQLConfig, spec: TaskSpec) -> None:
        require_task_goals("hiql", spec, goals_are_states=True)  # its subgoals are states

    def sample(self, sampler: Sampler) -> dict[str, np.ndarray]:
        c = self.config
        batch = c.value_goals(sampler)
        return {**batch, "low_subgoals": sampler.states_ahead(batch["transitions"], c.subgoal_steps),
                "high_targets": high_level_targets(sampler, batch, c.subgoal_steps)}

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        s, s_next, a = batch["observations"], batch["next_observations"], batch["actions"]
        g, g_policy = batch["goals"], batch["policy_goals"]
        w, s_ahead = batch["low_subgoals"], batch["high_targets"]
        success = batch["goal_is_current"]  # (B,) 1.0 where the goal is s itself
        # Value (and φ through it): as GCIVL's.
        value_loss, v = implicit_value_loss(self.values, self.values_target, s, s_next, g,
                                            success, c.gamma, c.expectile)

        with torch.no_grad():
            # Low level: towards w, with the advantage of the step s → s'.
            v_low_next, v_low, v_high_ahead, v_high = paired(
                self.values, (s_next, w), (s, w), (s_ahead, g_policy), (s, g_policy))
            low_advantage = v_low_next.mean(-1) - v_low.mean(-1)
            low_weight = torch.exp(c.low_alpha * low_advantage).clamp(max=100.0)
            # High level: towards φ(s, s_ahead), with the advantage of s → s_ahead for g.
            high_advantage = v_high_ahead.mean(-1) - v_high.mean(-1)
            high_weight = torch.exp(c.high_alpha * high_advantage).clamp(max=100.0)
            # (B, rep_dim) each; no gradient into φ from the low level, φ(s, s_ahead) a target
            z_w, z_target = paired(self.values.phi, (s, w), (s, s_ahead))
        low_mean = self.low_policy(torch.cat([s, z_w], -1))  # (B, A)
        low_loss = -(low_weight * unit_gaussian_log_prob(a, low_mean)).mean()
        high_mean = self.high_policy(torch.cat([s, g_policy], -1))  # (B, rep_dim)
        high_loss = -(high_weight * unit_gaussian_log_prob(z_target, high_mean)).mean()
        return {"value_loss": value_loss, "low_actor_loss": low_loss, "high_actor_loss": high_loss,
                "v": v.detach().mean(), "low_advantage": low_advantage.mean(),
                "high_advantage": high_advantage.mean()}

    def update(self, batch: dict[str, np.ndarray], step: int) -> dict[str, float]:
        return goal_value_step(self, batch, ("value_loss", "low_actor_loss", "high_actor_loss"))

    @row_invariant_act
    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """Rows [observation, goal] (a goal task's): the high level's mean subgoal
        representation, rescaled, then the low level's clipped mean action towards it."""
        rows = self.tensor(observations)
        s = rows[:, :self.spec.obs_dim]
        z = length_normalize(self.high_policy(rows))
        return self.env_actions(self.low_policy(torch.cat([s, z], -1)).clamp(-1, 1)), state
