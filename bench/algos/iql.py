"""Implicit Q-Learning (Kostrikov, Nair & Levine 2022): Q-learning that never queries an action
outside the dataset.

Three networks learn together, each update on one batch of transitions (s, a, r, s', terminal):

- V(s) regresses an upper expectile (``expectile``, 0.7) of the target Q(s, a) over the data's
  actions, with the asymmetric squared loss |τ − 1(u < 0)| · u², u = Q − V: an estimate of the
  best in-data action's value that needs no policy.
- Twin Q-networks regress r + γ (1 − terminal) V(s') (the mean of their two MSEs); their target
  copy, whose smaller member V regresses, follows by Polyak averaging (``tau``) every update.
- The actor maximizes advantage-weighted log-likelihood of the data's actions,
  mean exp(β·A) · −log π(a|s) with A = min(Q1', Q2')(s, a) − V(s) and exp(β·A) clipped at 100;
  its learning rate decays to 0 on a cosine over ``num_updates``.

The actor is a Gaussian with a tanh-squashed mean and one learned log-std per action dimension,
the same in every state (clamped to [-20, 2]); it acts with the mean. Observations are
normalized with the dataset's mean and std, actions learned in [-1, 1] (the env's box mapped
there), and rewards scaled by 1000 / (max − min episode return of the dataset), as the paper
does for locomotion (computed in ``attach_dataset``, so it is the same on every resume).

``full`` = the D4RL locomotion settings as CORL runs them (corl-team/CORL at commit
eeeeef2671235fcce3a3eb255576a207d78840e6, ``algorithms/offline/iql.py`` and
``configs/offline/iql/{halfcheetah,hopper,walker2d}/*_v2.yaml``): 1M updates, batch 256, Adam
3e-4 for actor, Q and V, γ 0.99, τ 0.005, expectile 0.7, β 3.0, 256-256 ReLU networks, a Gaussian
actor without dropout, the actor's learning rate on a cosine over the run. Where CORL's configs
differ by dataset: hopper-medium and hopper-medium-replay use τ 0.001, a deterministic (MSE)
actor and the reward scaling; hopper-medium-expert uses expectile 0.5, β 6.0 and no scaling;
the other locomotion configs do not scale rewards (``--set normalize_reward=false``), whereas the
paper scales them on every locomotion dataset, which is the default here.
``quick`` = 20k updates: 169 s of training on hopper-random on a 2-core CPU shared with other
jobs (8-11 ms per update at batch 256); ``smoke`` = 20 updates of 32, eager, for CI.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.distributions import Normal
from torch.optim.lr_scheduler import CosineAnnealingLR

from bench.algorithm import Algorithm
from bench.config import TRANSITION_BUDGETS, TrainConfig, at_least, positive_sizes
from bench.data.sampler import Sampler, TaskSpec
from bench.errors import UsageError
from bench.nn.compiled import CompiledLosses
from bench.nn.layers import MLP, QEnsemble, row_invariant_act
from bench.nn.optim import adamw, soft_update, target_copy
from bench.registry import register

EXP_ADV_MAX = 100.0  # the actor's weights exp(β·A) are clipped here
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # the actor's log-std is clamped to this range
REWARD_SCALE_STEPS = 1000.0  # rewards × this / (max − min episode return) (D4RL's episode length)


@dataclass
class IQLConfig(TrainConfig):
    num_updates: int = 1_000_000  # gradient steps (each updates V, both Q-networks and the actor)
    batch_size: int = 256  # transitions per update
    lr: float = 3e-4  # Adam's learning rate of V, Q and the actor (the actor's decays on a cosine)
    hidden: tuple[int, ...] = (256, 256)  # hidden layer sizes of V, each Q-network and the actor
    gamma: float = 0.99  # discount
    tau: float = 0.005  # the target Q-networks move this fraction of the way per update
    expectile: float = 0.7  # V regresses this expectile of Q(s, a) (0.5: the mean; CORL's iql_tau)
    beta: float = 3.0  # inverse temperature: actor weights exp(beta · A), clipped at 100
    deterministic_actor: bool = False  # regress the mean with MSE (CORL's iql_deterministic)
    normalize_reward: bool = True  # rewards × 1000 / (max − min dataset episode return)
    compile_losses: bool = True  # torch.compile the losses (1.22x updates/s on 2 cores; ~15 s once)
    log_every: int = 1000  # write a metrics line every N updates
    checkpoint_every: int = 50_000  # atomic checkpoint every N updates

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        **TRANSITION_BUDGETS, "smoke": {**TRANSITION_BUDGETS["smoke"], "compile_losses": False}}

    def checks(self) -> list[str]:
        problems = positive_sizes(self, "hidden") + at_least(self, 0, "beta")
        if not 0 <= self.gamma <= 1:
            problems.append(f"gamma must be in [0, 1], got {self.gamma!r}")
        if not 0 < self.tau <= 1:
            problems.append(f"tau must be in (0, 1], got {self.tau!r}")
        if not 0 < self.expectile < 1:
            problems.append(f"expectile must be in (0, 1), got {self.expectile!r}")
        return problems


def expectile_loss(u: torch.Tensor, expectile: float) -> torch.Tensor:
    """mean |τ − 1(u < 0)| · u² over residuals u = Q − V: a positive residual (Q above V) weighs
    τ, a negative one 1 − τ; at τ = 0.5 it is half the MSE."""
    return (torch.abs(expectile - (u < 0).float()) * u.pow(2)).mean()


class GaussianActor(nn.Module):
    """π(·|s) = N(tanh(MLP(s)), exp(log_std)²): the mean in [-1, 1], one log-std per action
    dimension shared by every state."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.mean = MLP(obs_dim, hidden, act_dim, nn.Tanh())  # (B, obs) → (B, act)
        self.log_std = nn.Parameter(torch.zeros(act_dim))  # (act,)

    def forward(self, obs: torch.Tensor) -> Normal:
        return Normal(self.mean(obs), self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp())


@register("iql", description="Implicit Q-Learning (Kostrikov et al. 2022): expectile V, AWR actor")
class IQL(Algorithm):
    Config = IQLConfig
    training_loss = "critic"

    def __init__(self, config: IQLConfig, spec: TaskSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.actor = GaussianActor(spec.obs_dim, spec.act_dim, config.hidden).to(device)
        # Q1, Q2: (B, obs), (B, act) → (B, 2), one batched network
        self.critics = QEnsemble(spec.obs_dim + spec.act_dim, config.hidden, n=2).to(device)
        self.critics_target = target_copy(self.critics)
        self.value = MLP(spec.obs_dim, config.hidden, 1).to(device)  # V: (B, obs) → (B, 1)
        self.actor_optimizer = adamw(self.actor.parameters(), config.lr)
        self.critic_optimizer = adamw(self.critics.parameters(), config.lr)
        self.value_optimizer = adamw(self.value.parameters(), config.lr)
        self.actor_schedule = CosineAnnealingLR(self.actor_optimizer, T_max=config.num_updates)
        self.compiled_losses = CompiledLosses(self.losses, config.compile_losses, "iql")
        # Set from the training data by attach_dataset (not checkpointed: it is recomputed there
        # before a resumed run loads its state).
        self.reward_scale: float | None = None if config.normalize_reward else 1.0

    @classmethod
    def check_data(cls, config: IQLConfig, flat: Any) -> None:
        returns = flat.episode_returns  # (E,) undiscounted, one per episode
        if config.normalize_reward and not np.ptp(returns) > 0:
            raise UsageError(f"IQL scales rewards by 1000 / (max - min episode return), but every "
                             f"episode of this dataset returns {float(returns[0]):g}; pass --set "
                             "normalize_reward=false.")

    def attach_dataset(self, sampler: Sampler) -> None:
        if not self.config.normalize_reward:
            return
        self.check_data(self.config, sampler.flat)
        returns = sampler.flat.episode_returns
        self.reward_scale = REWARD_SCALE_STEPS / float(np.max(returns) - np.min(returns))

    def losses(self, s: torch.Tensor, a: torch.Tensor, r: torch.Tensor, s_next: torch.Tensor,
               terminals: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three losses of one update and the mean advantage, from normalized states
        (B, obs), [-1, 1] actions (B, A) and scaled rewards (B,) (compiled when
        ``compile_losses``)."""
        c = self.config
        with torch.no_grad():
            next_v = self.value(s_next).squeeze(-1)  # (B,): V(s'), before this update's V step
            q_target = self.critics_target(s, a).min(-1).values  # (B,): min(Q1', Q2')(s, a)

        # V: the expectile of the target Q over the data's actions.
        advantage = q_target - self.value(s).squeeze(-1)  # (B,): A = Q − V, the residual
        losses = {"value": expectile_loss(advantage, c.expectile)}

        # Q: one-step backup through V(s'), never through an action the data lacks.
        y = r + c.gamma * (1 - terminals) * next_v  # (B,)
        losses["critic"] = (self.critics(s, a) - y[:, None]).pow(2).mean(0).mean()  # mean of 2 MSEs

        # Actor: advantage-weighted regression onto the data's actions.
        weights = torch.exp(c.beta * advantage.detach()).clamp(max=EXP_ADV_MAX)  # (B,)
        if c.deterministic_actor:
            fit = (self.actor.mean(s) - a).pow(2).sum(-1)  # (B,) squared error
        else:
            fit = -self.actor(s).log_prob(a).sum(-1)  # (B,) negative log-likelihood
        losses["actor"] = (weights * fit).mean()
        losses["advantage"] = advantage.detach().mean()
        return losses

    def update(self, batch: dict[str, np.ndarray], step: int) -> dict[str, float]:
        if self.reward_scale is None:
            raise RuntimeError("IQL needs attach_dataset(sampler) before training (reward scale)")
        c, b = self.config, {k: self.tensor(v) for k, v in batch.items()}
        s, s2 = self.normalize(b["observations"]), self.normalize(b["next_observations"])  # (B, obs)
        a = self.unit_actions(b["actions"])  # (B, act) in [-1, 1]
        r = b["rewards"] * self.reward_scale  # (B,)
        losses = self.compiled_losses(s, a, r, s2, b["terminals"])

        # Each loss reaches only its own network (V's target, Q's target and the actor's weights
        # are constants), so one backward pass of their sum gives each network the gradient of
        # its own loss: the same steps as three passes, at one pass's overhead.
        optimizers = (self.value_optimizer, self.critic_optimizer, self.actor_optimizer)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        (losses["value"] + losses["critic"] + losses["actor"]).backward()
        for optimizer in optimizers:
            optimizer.step()
        soft_update(self.critics_target, self.critics, c.tau)
        self.actor_schedule.step()
        # One read of every metric: on a GPU each .item() would wait for the device.
        return dict(zip(losses, torch.stack([v.detach() for v in losses.values()]).tolist()))

    @row_invariant_act
    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        mean = self.actor.mean(self.normalize(self.tensor(observations)))  # (B, act), the mode
        return self.env_actions(mean), state

