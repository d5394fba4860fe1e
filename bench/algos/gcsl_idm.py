"""GCSL inverse dynamics: a small MLP (s_t, s_{t+k}) → a_t, goals relabelled from the same episode.

Goal-conditioned supervised learning (Ghosh et al. 2019) relabels every logged action with a state
the trajectory actually reached later: whatever a_t was meant to do, it is a good action for
getting from s_t towards s_{t+k}. Here k is uniform in 1..K (``max_offset``, default 10: long
enough that the goal says where to go, short enough that one action still matters for it), never
crossing the episode's end. Both states are normalized with the dataset statistics
(``normalize_states=false`` feeds them raw, as the research notes' first GCSL IDM did); the action
is regressed in [-1, 1] (tanh) with MSE.

At evaluation a goal source (``bench.goals``) names the state to reach ``goal_offset`` steps
ahead (default 5, inside the trained range): ``dataset`` (nearest good dataset state, its
successor), ``learned`` (a goal model conditioned on a target return), ``self`` (the current
state: a sanity floor) or, on goal tasks, ``task`` (the episode's own goal).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bench.algorithm import DEFAULT, Algorithm, Condition
from bench.data.sampler import TaskSpec, Sampler
from bench.config import at_least, positive_sizes
from bench.goals import GoalConfig, GoalSetter, GoalState, check_goal_sources
from bench.nn.idm import InverseDynamicsMLP
from bench.nn.layers import row_invariant_act
from bench.nn.optim import adamw
from bench.nn.vicreg import VICRegFields, VICRegHead, vicreg_weight
from bench.registry import register


@dataclass
class GCSLIDMConfig(GoalConfig):
    num_updates: int = 1_000_000  # gradient steps
    batch_size: int = 256  # goal pairs per update
    lr: float = 3e-4  # Adam's learning rate
    hidden: tuple[int, ...] = (256, 256)  # hidden layers of the ReLU MLP
    state_encoder: tuple[int, ...] = ()  # () = one MLP on [s, g]; sizes = a shared encoder φ
    max_offset: int = 10  # K: relabelled goals are 1..K steps ahead
    normalize_states: bool = True  # false: the IDM reads raw states and goals (no dataset scaling)
    log_every: int = 1000  # write a metrics line every N updates
    checkpoint_every: int = 50_000  # atomic checkpoint every N updates

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"num_updates": 20, "log_every": 5, "checkpoint_every": 10, "batch_size": 32,
                  "goal_batch_size": 32},
        "quick": {"num_updates": 20_000, "log_every": 500, "checkpoint_every": 5_000},
    }

    def checks(self) -> list[str]:
        out = at_least(self, 1, "max_offset") + positive_sizes(self, "hidden", "state_encoder")
        if self.max_offset >= 1 and self.goal_offset > self.max_offset:
            out.append(f"goal_offset ({self.goal_offset}) must be at most max_offset "
                       f"({self.max_offset}): the IDM learned goals 1..max_offset steps ahead")
        return out


@dataclass
class GCSLIDMVICRegConfig(GCSLIDMConfig, VICRegFields):
    def checks(self) -> list[str]:
        if self.vicreg_weight > 0 and not self.state_encoder:
            return ["VICReg regularizes the IDM's state encoder: set state_encoder (e.g. "
                    "--set state_encoder=256)"]
        return []


@register("gcsl_idm", description="GCSL inverse dynamics (s_t, s_t+k) -> a_t with a goal source")
@register("gcsl_idm_vicreg", config=GCSLIDMVICRegConfig, presets={"state_encoder": (256,), "vicreg_weight": 0.1},
          description="GCSL IDM whose state encoder is regularized by temporal VICReg")
class GCSLInverseDynamics(Algorithm):
    Config = GCSLIDMConfig

    def __init__(self, config: GCSLIDMConfig, spec: TaskSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.policy = InverseDynamicsMLP(spec.obs_dim, spec.act_dim, config.hidden,
                                         config.state_encoder).to(device)
        params = list(self.policy.parameters())
        self.vicreg: VICRegHead | None = None
        if vicreg_weight(config) > 0:
            self.vicreg = VICRegHead(self.policy.representation_dim, config).to(device)
            params += list(self.vicreg.parameters())
        self.optimizer = adamw(params, config.lr)
        self.goal_setter = GoalSetter(config, spec, device)

    @classmethod
    def check_task(cls, config: GCSLIDMConfig, spec: TaskSpec) -> None:
        check_goal_sources(config, spec)

    def attach_dataset(self, sampler: Sampler) -> None:
        self.goal_setter.attach_dataset(sampler)

    # -- training -------------------------------------------------------------------------
    def sample(self, sampler: Sampler) -> dict[str, Any]:
        return {"pairs": sampler.goal_pairs(self.config.batch_size, self.config.max_offset),
                "goal_model": self.goal_setter.sample(sampler)}

    def scale(self, states: torch.Tensor) -> torch.Tensor:
        """Raw-unit states as the IDM reads them: normalized, unless ``normalize_states`` is off."""
        return self.normalize(states) if self.config.normalize_states else states

    def predict(self, states: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        """Normalized actions in [-1, 1] for raw-unit states and goals."""
        return self.policy(self.scale(states), self.scale(goals))

    def update(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        pairs = batch["pairs"]
        target = self.unit_actions(pairs["actions"])
        states = self.scale(self.tensor(pairs["observations"]))
        goals = self.scale(self.tensor(pairs["goals"]))
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
    def eval_conditions(self) -> list[Condition]:
        return self.goal_setter.conditions()

    def initial_state(self, num_envs: int, condition: Condition = DEFAULT) -> GoalState:
        return self.goal_setter.initial_state(num_envs, condition)

    @property
    def uses_task_goals(self) -> bool:  # type: ignore[override]
        return self.goal_setter.uses_task_goals

    @classmethod
    def takes_task_goals(cls, config: Any) -> bool:
        return "task" in (config.goal_source, *config.extra_goal_sources)

    @row_invariant_act
    def act(self, observations: np.ndarray, state: GoalState) -> tuple[np.ndarray, GoalState]:
        observations, task_goals = self.goal_setter.split(observations)
        goals = self.goal_setter.goals(observations, state, task_goals)
        out = self.predict(self.tensor(observations), self.tensor(goals))
        return self.env_actions(out), state

    def observe(self, state: GoalState, actions: np.ndarray, rewards: np.ndarray) -> GoalState:
        return self.goal_setter.observe(state, rewards)
