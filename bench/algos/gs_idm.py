"""The research notes' goal setter trained offline: a Gaussian policy over goal *states* that
decodes through the suite's GCSL inverse-dynamics model (IDM), built as HIQL's hierarchy
(``bench.algos.hiql``) so that the two can be read side by side.

The notes' goal setter proposes "where to be a few steps from now" and a goal-conditioned IDM
turns it into an action; online (``gs_ppo``) the env's reward trains it. Offline there is no
reward but the task's goal, so the goal setter here is trained the way HIQL trains its high
level, with one change: it proposes the subgoal *state* itself (each entry a Gaussian, as the
notes describe), not a learned representation of it. Three parts, one Adam step over their
summed losses per update:

- a **goal-conditioned value** V(s, g), GCIVL's (two heads, an upper expectile of the one-step
  backup with reward −1 until the goal, target heads Polyak-averaged);
- the **goal setter** π_h(w | s, g), a unit-σ Gaussian over the normalized subgoal state,
  regresses the state k = min(``subgoal_steps``, steps to the goal) ahead, weighted by
  min(exp(β · (V̄(s_{t+k}, g) − V̄(s, g))), 100): subgoals that bring the goal nearer count more.
  ``high_alpha`` = 0 drops the value: plain regression of the state k ahead (GCSL's subgoal);
- the **IDM** (s, w) → a, the suite's GCSL IDM (``bench.nn.idm``: an MLP on normalized states,
  tanh action, MSE), trained on the data's own (s_t, a_t, s_{t+j}), j uniform in
  1..``subgoal_steps``, so every subgoal the goal setter proposes lies in its trained range. It is
  not weighted by any value: where HIQL's low level is advantage-weighted regression towards φ(w),
  this one is plain hindsight relabelling — the notes' IDM.

Acting: the goal setter's mean subgoal, then the IDM's action towards it.

``full`` = HIQL's settings on pointmaze navigate (OGBench's ``impls/hyperparameters.sh``):
expectile 0.7, β 3, subgoals 25 steps ahead, γ 0.99, τ 0.005, Adam 3e-4, batch 1024, 1M updates,
512-512-512 GELU value and goal-setter networks; the IDM a 512-512-512 ReLU MLP (HIQL's low
level's size). ``quick`` = GCIVL's: 50k updates of batch 256 with 256-256 networks (the IDM
256-256 too).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bench.algorithm import Algorithm
from bench.algos.gcbc import goal_policy_mlp, require_task_goals
from bench.algos.gcivl import (
    GoalValueConfig,
    GoalValues,
    goal_value_step,
    implicit_value_loss,
    paired,
    unit_gaussian_log_prob,
)
from bench.algos.hiql import high_level_targets
from bench.config import at_least, positive_sizes
from bench.data.sampler import Sampler, TaskSpec
from bench.nn.idm import InverseDynamicsMLP
from bench.nn.layers import row_invariant_act
from bench.nn.optim import adamw, target_copy
from bench.registry import register


@dataclass
class GoalSetterIDMConfig(GoalValueConfig):
    expectile: float = 0.7  # the value regresses this expectile of its one-step backup
    high_alpha: float = 3.0  # goal-setter AWR inverse temperature (0 = unweighted regression)
    subgoal_steps: int = 25  # subgoals: the state this many steps ahead; the IDM learns 1..this
    idm_hidden: tuple[int, ...] = (512, 512, 512)  # ReLU hidden layers of the IDM

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        name: {**budget, "idm_hidden": budget["hidden"]}
        for name, budget in GoalValueConfig.BUDGETS.items()}

    def checks(self) -> list[str]:
        return (at_least(self, 1, "subgoal_steps") + at_least(self, 0, "high_alpha")
                + positive_sizes(self, "idm_hidden"))


@register("gs_idm", description="Goal setter trained offline (HIQL's high level over states) "
                                "decoding through a GCSL IDM")
class GoalSetterIDM(Algorithm):
    Config = GoalSetterIDMConfig
    training_loss = "value_loss"
    uses_task_goals = True

    def __init__(self, config: GoalSetterIDMConfig, spec: TaskSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.check_task(config, spec)
        c, obs_dim = config, spec.obs_dim
        self.values = GoalValues(obs_dim + spec.goal_dim, c.hidden).to(device)  # (B, 2)
        self.values_target = target_copy(self.values)
        # π_h: (B, obs + goal) → mean normalized subgoal state (B, obs)
        self.goal_setter = goal_policy_mlp(obs_dim + spec.goal_dim, c.hidden, obs_dim).to(device)
        # IDM: normalized (s, w), (B, obs) each → action in [-1, 1] (B, A)
        self.idm = InverseDynamicsMLP(obs_dim, spec.act_dim, c.idm_hidden).to(device)
        self.optimizer = adamw([*self.values.parameters(), *self.goal_setter.parameters(),
                                *self.idm.parameters()], c.lr)

    @classmethod
    def check_task(cls, config: GoalSetterIDMConfig, spec: TaskSpec) -> None:
        require_task_goals("gs_idm", spec, goals_are_states=True)  # its subgoals are states

    def sample(self, sampler: Sampler) -> dict[str, np.ndarray]:
        c = self.config
        batch = c.value_goals(sampler)
        pairs = sampler.goal_pairs(c.batch_size, c.subgoal_steps)
        return {**batch, "high_targets": high_level_targets(sampler, batch, c.subgoal_steps),
                "idm_observations": pairs["observations"], "idm_actions": pairs["actions"],
                "idm_goals": pairs["goals"]}

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        s, s_next = batch["observations"], batch["next_observations"]
        g, g_policy, s_ahead = batch["goals"], batch["policy_goals"], batch["high_targets"]
        value_loss, v = implicit_value_loss(self.values, self.values_target, s, s_next, g,
                                            batch["goal_is_current"], c.gamma, c.expectile)

        # Goal setter: towards the normalized state k ahead, weighted by how much nearer to g
        # it is than s.
        with torch.no_grad():
            v_ahead, v_now = paired(self.values, (s_ahead, g_policy), (s, g_policy))
            high_advantage = v_ahead.mean(-1) - v_now.mean(-1)  # (B,)
            high_weight = torch.exp(c.high_alpha * high_advantage).clamp(max=100.0)
        mean = self.goal_setter(torch.cat([s, g_policy], -1))  # (B, obs), normalized units
        high_loss = -(high_weight * unit_gaussian_log_prob(self.normalize(s_ahead), mean)).mean()

        # IDM: the data's action from (s_t, s_{t+j}), j uniform in 1..subgoal_steps.
        predicted = self.idm(self.normalize(batch["idm_observations"]),
                             self.normalize(batch["idm_goals"]))  # (B, A)
        idm_loss = F.mse_loss(predicted, self.unit_actions(batch["idm_actions"]))
        return {"value_loss": value_loss, "goal_setter_loss": high_loss, "idm_loss": idm_loss,
                "v": v.detach().mean(), "high_advantage": high_advantage.mean(),
                "high_weight": high_weight.mean()}

    def update(self, batch: dict[str, np.ndarray], step: int) -> dict[str, float]:
        return goal_value_step(self, batch, ("value_loss", "goal_setter_loss", "idm_loss"))

    @row_invariant_act
    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """Rows [observation, goal] (a goal task's): the goal setter's mean subgoal, then the
        IDM's action towards it."""
        rows = self.tensor(observations)
        s = self.normalize(rows[:, :self.spec.obs_dim])
        return self.env_actions(self.idm(s, self.goal_setter(rows))), state
