"""GCSL inverse dynamics: a small MLP (s_t, s_{t+k}) → a_t, goals relabelled from the same episode.

Goal-conditioned supervised learning (Ghosh et al. 2019) relabels every logged action with a state
the trajectory actually reached later: whatever a_t was meant to do, it is a good action for
getting from s_t towards s_{t+k}. Here k is uniform in 1..K (``max_offset``, default 10: long
enough that the goal says where to go, short enough that one action still matters for it), never
crossing the episode's end. Both states are normalized with the dataset statistics; the action is
regressed in [-1, 1] (tanh) with MSE.

At evaluation a goal source (``bench.goals``) names the state to reach ``goal_offset`` steps
ahead (default 5, inside the trained range): ``dataset`` (nearest good dataset state, its
successor), ``learned`` (a goal model conditioned on a target return) or ``self`` (the current
state: a sanity floor).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bench.algorithm import Algorithm
from bench.data.sampler import DatasetSpec, Sampler
from bench.config import at_least, positive_sizes
from bench.goals import GoalConfig, GoalSetter, GoalState
from bench.nn.idm import InverseDynamicsMLP
from bench.nn.layers import row_invariant_act
from bench.nn.optim import adamw
from bench.nn.vicreg import VICRegFields, VICRegHead
from bench.registry import register


@dataclass
class GCSLIDMConfig(GoalConfig, VICRegFields):
    num_updates: int = 1_000_000
    batch_size: int = 256
    lr: float = 3e-4
    hidden: tuple[int, ...] = (256, 256)
    state_encoder: tuple[int, ...] = ()  # () = one MLP on [s, g]; sizes = a shared encoder φ
    max_offset: int = 10  # K: relabelled goals are 1..K steps ahead
    log_every: int = 1000
    checkpoint_every: int = 50_000

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"num_updates": 20, "log_every": 5, "checkpoint_every": 10, "batch_size": 32,
                  "goal_batch_size": 32},
        "quick": {"num_updates": 20_000, "log_every": 500, "checkpoint_every": 5_000},
    }

    def problems(self) -> list[str]:
        out = (super().problems() + at_least(self, 1, "max_offset")
               + positive_sizes(self, "hidden", "state_encoder"))
        if self.max_offset >= 1 and self.goal_offset > self.max_offset:
            out.append(f"goal_offset ({self.goal_offset}) must be at most max_offset "
                       f"({self.max_offset}): the IDM learned goals 1..max_offset steps ahead")
        if self.vicreg_weight > 0 and not self.state_encoder:
            out.append("VICReg regularizes the IDM's state encoder: set state_encoder (e.g. "
                       "--set state_encoder=256) or use gcsl_idm_vicreg")
        return out


@register("gcsl_idm", description="GCSL inverse dynamics (s_t, s_t+k) -> a_t with a goal source")
@register("gcsl_idm_vicreg", presets={"state_encoder": (256,), "vicreg_weight": 0.1},
          description="GCSL IDM whose state encoder is regularized by temporal VICReg")
class GCSLInverseDynamics(Algorithm):
    Config = GCSLIDMConfig
    batch_invariant_act = True  # ``row_invariant_act``: linear layers padded to 16 rows

    def __init__(self, config: GCSLIDMConfig, spec: DatasetSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.policy = InverseDynamicsMLP(spec.obs_dim, spec.act_dim, config.hidden,
                                         config.state_encoder).to(device)
        params = list(self.policy.parameters())
        self.vicreg: VICRegHead | None = None
        if config.vicreg_weight > 0:
            self.vicreg = VICRegHead(self.policy.representation_dim, config).to(device)
            params += list(self.vicreg.parameters())
        self.optimizer = adamw(params, config.lr)
        self.goal_setter = GoalSetter(config, spec, device)

    def attach_dataset(self, sampler: Sampler) -> None:
        self.goal_setter.attach_dataset(sampler)

    # -- training -------------------------------------------------------------------------
    def sample(self, sampler: Sampler) -> dict[str, Any]:
        return {"pairs": sampler.goal_pairs(self.config.batch_size, self.config.max_offset),
                "goal_model": self.goal_setter.sample(sampler)}

    def predict(self, states: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        """Normalized actions in [-1, 1] for raw-unit states and goals."""
        return self.policy(self.normalize(states), self.normalize(goals))

    def update(self, batch: dict[str, Any]) -> dict[str, float]:
        pairs = batch["pairs"]
        target = (self.tensor(pairs["actions"]) - self.act_shift) / self.act_scale
        states = self.normalize(self.tensor(pairs["observations"]))
        goals = self.normalize(self.tensor(pairs["goals"]))
        mse = F.mse_loss(self.policy(states, goals), target)
        loss, stats = mse, {}
        if self.vicreg is not None:
            # Temporal pairs for free: each (s_t, s_{t+k}) of the batch, k <= vicreg_max_offset.
            near = torch.as_tensor(pairs["offsets"] <= self.config.vicreg_max_offset)
            if int(near.sum()) >= 2:
                aux, stats = self.vicreg(self.policy.encode(states[near]),
                                         self.policy.encode(goals[near]))
                loss = mse + self.config.vicreg_weight * aux
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": mse.item(), **stats, **self.goal_setter.update(batch["goal_model"])}

    # -- acting ---------------------------------------------------------------------------
    def eval_conditions(self) -> list[str]:
        return self.goal_setter.conditions()

    def initial_state(self, num_envs: int, condition: str = "default") -> GoalState:
        return self.goal_setter.initial_state(num_envs, condition)

    @row_invariant_act
    def act(self, observations: np.ndarray, state: GoalState) -> tuple[np.ndarray, GoalState]:
        goals = self.goal_setter.goals(observations, state)
        out = self.predict(self.tensor(observations), self.tensor(goals))
        return (out * self.act_scale + self.act_shift).cpu().numpy(), state

    def observe(self, state: GoalState, actions: np.ndarray, rewards: np.ndarray) -> GoalState:
        return self.goal_setter.observe(state, rewards)

    # -- persistence ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "goal_setter": self.goal_setter.state_dict(),
                "vicreg": self.vicreg.state_dict() if self.vicreg is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        if self.vicreg is not None:
            self.vicreg.load_state_dict(state["vicreg"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.goal_setter.load_state_dict(state["goal_setter"])
