"""TD3+BC (Fujimoto & Gu 2021): TD3 whose actor also regresses the dataset's actions.

Twin critics learn Q(s, a) from clipped double-Q targets with target-policy smoothing (TD3:
the target action is the target actor's plus clipped Gaussian noise, and the target is the
smaller of the two target critics). Every ``policy_every`` critic updates the deterministic
actor π takes one step on

    −λ · mean Q1(s, π(s)) + mean (π(s) − a)²,   λ = alpha / mean |Q1(s, π(s))|  (no gradient)

so the behaviour-cloning term keeps π near the data's actions whatever the scale of Q, and the
target networks move ``tau`` of the way to the online ones. Observations are normalized with
the dataset's mean and std, actions learned in [-1, 1] (the env's box mapped there).

``full`` = the D4RL locomotion settings as CORL runs them (corl-team/CORL at commit
eeeeef2671235fcce3a3eb255576a207d78840e6, ``algorithms/offline/td3_bc.py`` and
``configs/offline/td3_bc/{halfcheetah,hopper,walker2d}/*_v2.yaml``, the same for every one of
those datasets; they are the paper's): 1M updates, batch 256, Adam 3e-4 for actor and critics,
γ 0.99, τ 0.005, policy noise 0.2 clipped at 0.5 (times the max action, 1 here), actor every 2nd
update, α 2.5, 256-256 ReLU networks with a tanh actor, no reward scaling. As in CORL the first
actor update comes after ``policy_every`` critic updates (its counter starts at 1).
``quick`` = 20k updates: 261 s of training on hopper-random on a 2-core CPU shared with other
jobs (8-13 ms per update at batch 256); ``smoke`` = 20 updates of 32, for CI.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bench.algorithm import Algorithm
from bench.config import TRANSITION_BUDGETS, TrainConfig, at_least, positive_sizes
from bench.data.sampler import TaskSpec
from bench.nn.layers import MLP, QEnsemble, row_invariant_act
from bench.nn.optim import adamw, gradient_step, soft_update, target_copy
from bench.registry import register


@dataclass
class TD3BCConfig(TrainConfig):
    num_updates: int = 1_000_000  # gradient steps (critic updates)
    batch_size: int = 256  # transitions per update
    lr: float = 3e-4  # Adam's learning rate, actor and critics
    hidden: tuple[int, ...] = (256, 256)  # hidden layer sizes of the actor and of each critic
    gamma: float = 0.99  # discount
    tau: float = 0.005  # target networks move this fraction of the way per actor update
    policy_noise: float = 0.2  # std of the target action's noise (in [-1, 1] action units)
    noise_clip: float = 0.5  # the target action's noise is clipped to ±noise_clip
    policy_every: int = 2  # one actor (and target) update per this many critic updates
    alpha: float = 2.5  # the actor maximizes λ·Q1(s, π(s)) − MSE(π(s), a), λ = alpha / mean|Q1|
    log_every: int = 1000  # write a metrics line every N updates
    checkpoint_every: int = 50_000  # atomic checkpoint every N updates

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = TRANSITION_BUDGETS

    def checks(self) -> list[str]:
        problems = positive_sizes(self, "hidden") + at_least(self, 1, "policy_every")
        problems += at_least(self, 0, "policy_noise", "noise_clip", "alpha")
        if not 0 <= self.gamma <= 1:
            problems.append(f"gamma must be in [0, 1], got {self.gamma!r}")
        if not 0 < self.tau <= 1:
            problems.append(f"tau must be in (0, 1], got {self.tau!r}")
        return problems


@register("td3_bc", description="TD3+BC (Fujimoto & Gu 2021): TD3 with a BC term on the actor")
class TD3BC(Algorithm):
    Config = TD3BCConfig
    training_loss = "critic"

    def __init__(self, config: TD3BCConfig, spec: TaskSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        # π: (B, obs) → (B, act) in [-1, 1]
        self.actor = MLP(spec.obs_dim, config.hidden, spec.act_dim, torch.nn.Tanh()).to(device)
        # Q1, Q2: (B, obs), (B, act) → (B, 2), one batched network
        self.critics = QEnsemble(spec.obs_dim + spec.act_dim, config.hidden, n=2).to(device)
        self.actor_target = target_copy(self.actor)
        self.critics_target = target_copy(self.critics)
        self.actor_optimizer = adamw(self.actor.parameters(), config.lr)
        self.critic_optimizer = adamw(self.critics.parameters(), config.lr)

    def update(self, batch: dict[str, np.ndarray], step: int) -> dict[str, float]:
        c, b = self.config, {k: self.tensor(v) for k, v in batch.items()}
        s, s2 = self.normalize(b["observations"]), self.normalize(b["next_observations"])  # (B, obs)
        a = self.unit_actions(b["actions"])  # (B, act) in [-1, 1], where the actor acts

        # Critics: both regress r + γ (1 − terminal) min(Q1', Q2')(s', π'(s') + clipped noise).
        with torch.no_grad():
            noise = (torch.randn_like(a) * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
            a2 = (self.actor_target(s2) + noise).clamp(-1, 1)  # (B, act)
            q2 = self.critics_target(s2, a2).min(-1).values  # (B,)
            y = b["rewards"] + c.gamma * (1 - b["terminals"]) * q2  # (B,)
        q = self.critics(s, a)  # (B, 2)
        losses = {"critic": (q - y[:, None]).pow(2).mean(0).sum()}  # MSE(Q1) + MSE(Q2)
        gradient_step(self.critic_optimizer, losses["critic"])

        # Delayed actor step on −λ·Q1 + BC, then the targets follow.
        if (step + 1) % c.policy_every == 0:
            pi = self.actor(s)  # (B, act)
            q1 = self.critics.frozen(s, pi, member=0)  # (B,): Q1 only, as TD3 does
            lam = c.alpha / q1.abs().mean().detach()
            losses["actor"] = -lam * q1.mean() + F.mse_loss(pi, a)
            gradient_step(self.actor_optimizer, losses["actor"])
            soft_update(self.actor_target, self.actor, c.tau)
            soft_update(self.critics_target, self.critics, c.tau)
            losses["lambda"] = lam
        # One read of every metric: on a GPU each .item() would wait for the device.
        return dict(zip(losses, torch.stack([v.detach() for v in losses.values()]).tolist()))

    @row_invariant_act
    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        return self.env_actions(self.actor(self.normalize(self.tensor(observations)))), state
