"""Goal-conditioned implicit V-learning (GCIVL), as OGBench runs it (Park et al., ICLR 2025,
section 5 and appendix; its ``impls/agents/gcivl.py`` at commit 85bdd21 and the defaults of
``impls/main.py``).

A goal-conditioned value V(s, g) learns how many steps (discounted, negative) the data's
behaviour takes to get from s to g, with IQL's expectile regression but without a Q-function:
the reward is 0 when the goal is the state itself and −1 otherwise, and each of two value heads
V_k regresses

    y_k = r + γ (1 − [g = s]) V'_k(s', g)

with weight |τ − 1(A < 0)|, A = r + γ (1 − [g = s]) min_k V'_k(s', g) − mean_k V'_k(s, g)
(V' the target heads, Polyak-averaged): an upper expectile of the one-step backup, which an
in-sample optimistic value needs. Its goals mix the state itself (0.2), a later state of the
same episode at a geometric offset (0.5) and any dataset state (0.3). The policy π(a | s, g), a
unit-σ Gaussian, is advantage-weighted regression on the data's actions with the value's
one-step advantage V(s', g) − V(s, g) (no Q: hence "implicit V"):

    −mean_batch min(exp(α · (V̄(s', g) − V̄(s, g))), 100) · log π(a | s, g)

with goals from later states of the episode (uniform). Both losses are summed and minimized by
one Adam step; the target heads then move τ of the way.

``full`` = OGBench's settings for pointmaze navigate (``impls/hyperparameters.sh``): expectile
0.9, α 10, γ 0.99, τ 0.005, Adam 3e-4, batch 1024, 1M updates, 512-512-512 GELU networks with
layer norm in the value heads (not the policy), Glorot-uniform weights, the policy's mean layer
scaled by 1e-2; no observation normalization. ``quick`` = 50k updates of batch 256 with 256-256
networks (13 minutes on one core; 60% success on pointmaze-medium-navigate's tasks after 30k).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.algorithm import Algorithm
from bench.algos.gcbc import goal_policy_mlp, require_task_goals
from bench.config import TrainConfig, at_least, positive_sizes
from bench.data.sampler import Sampler, TaskSpec
from bench.nn.layers import row_invariant_act
from bench.nn.optim import adamw, soft_update, target_copy
from bench.registry import register


@dataclass
class GoalValueConfig(TrainConfig):
    """The fields OGBench's value-based goal-conditioned learners share (GCIVL's, HIQL's)."""

    num_updates: int = 1_000_000  # gradient steps
    batch_size: int = 1024  # transitions per update (each with a value goal and a policy goal)
    lr: float = 3e-4  # Adam's learning rate, every network
    hidden: tuple[int, ...] = (512, 512, 512)  # GELU hidden layers of every network
    gamma: float = 0.99  # discount
    tau: float = 0.005  # target value networks move this fraction of the way per update
    expectile: float = 0.9  # the value regresses this expectile of its one-step backup
    value_p_current: float = 0.2  # value goals: the state itself
    value_p_future: float = 0.5  # value goals: a later state of the episode, geometric offset
    value_p_random: float = 0.3  # value goals: any state of the dataset
    log_every: int = 1000  # write a metrics line every N updates
    checkpoint_every: int = 50_000  # atomic checkpoint every N updates

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"num_updates": 20, "batch_size": 32, "hidden": (64, 64), "log_every": 5,
                  "checkpoint_every": 10},
        "quick": {"num_updates": 50_000, "batch_size": 256, "hidden": (256, 256), "log_every": 500,
                  "checkpoint_every": 5_000},
    }

    def checks(self) -> list[str]:
        problems = positive_sizes(self, "hidden")
        problems += at_least(self, 0, "value_p_current", "value_p_future", "value_p_random")
        if not 0 < self.expectile < 1:
            problems.append(f"expectile must be in (0, 1), got {self.expectile!r}")
        if not 0 <= self.gamma < 1:
            problems.append(f"gamma must be in [0, 1), got {self.gamma!r}")
        if not 0 < self.tau <= 1:
            problems.append(f"tau must be in (0, 1], got {self.tau!r}")
        total = self.value_p_current + self.value_p_future + self.value_p_random
        if not math.isclose(total, 1.0):
            problems.append(f"value_p_current + value_p_future + value_p_random must be 1, got "
                            f"{total!r}")
        return problems

    def value_goals(self, sampler: Sampler) -> dict[str, np.ndarray]:
        """A batch of transitions with the value's goals (the mixture above, geometric offsets)
        and, for the same transitions, the policies' goals: later states, uniform."""
        batch = sampler.goal_mixture(self.batch_size, self.value_p_current, self.value_p_future,
                                     self.value_p_random, geometric=self.gamma)
        policy = sampler.goal_mixture(self.batch_size, 0.0, 1.0, 0.0,
                                      transitions=batch["transitions"])
        return {**batch, "policy_goals": policy["goals"], "policy_offsets": policy["offsets"]}


@dataclass
class GCIVLConfig(GoalValueConfig):
    alpha: float = 10.0  # AWR inverse temperature: weights exp(alpha * advantage), capped at 100

    def checks(self) -> list[str]:
        return at_least(self, 0, "alpha")


# Batch entries that are indices into the dataset, not inputs.
INDICES = ("transitions", "offsets", "policy_offsets")


def goal_value_mlp(in_dim: int, hidden: tuple[int, ...]) -> nn.Sequential:
    """OGBench's value MLP as one network (HIQL's goal representation φ uses its body): GELU
    layers (exact, as ``goal_policy_mlp``'s) each followed by layer norm (ε 1e-6, flax's),
    Glorot-uniform weights, zero biases, a linear output."""
    layers: list[nn.Module] = []
    for h in hidden:
        layer = nn.Linear(in_dim, h)
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
        layers += [layer, nn.GELU(), nn.LayerNorm(h, eps=1e-6)]
        in_dim = h
    head = nn.Linear(in_dim, 1)
    nn.init.xavier_uniform_(head.weight)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, head)


class ValueEnsemble(nn.Module):
    """``n`` value MLPs of ``goal_value_mlp``'s shape and initialization, computed together: one
    batched product per layer instead of ``n`` small ones: (R, in) → (R, n)."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], n: int = 2) -> None:
        super().__init__()
        sizes = [in_dim, *hidden, 1]
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        self.norm_weights, self.norm_biases = nn.ParameterList(), nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot-uniform, per member
            self.weights.append(nn.Parameter(torch.empty(n, fan_in, fan_out).uniform_(-bound,
                                                                                     bound)))
            self.biases.append(nn.Parameter(torch.zeros(n, 1, fan_out)))
        for width in hidden:
            self.norm_weights.append(nn.Parameter(torch.ones(n, 1, width)))
            self.norm_biases.append(nn.Parameter(torch.zeros(n, 1, width)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.expand(len(self.weights[0]), *x.shape)  # (n, R, in)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)  # (n, R, fan_out)
            if i < len(self.norm_weights):
                h = F.layer_norm(F.gelu(h), h.shape[-1:], eps=1e-6)
                h = torch.addcmul(self.norm_biases[i], h, self.norm_weights[i])
        return h.squeeze(-1).T


class GoalValues(ValueEnsemble):
    """``n`` value heads V_k(s, g): (B, obs), (B, goal) → (B, n)."""

    def forward(self, states: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.cat([states, goals], -1))


def paired(values: nn.Module, *pairs: tuple[torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
    """``values(s, g)`` for several (s, g) pairs of B rows each, in one call of k·B rows (a third
    of the per-call overhead of HIQL's six value reads): a list of (B, n)."""
    out = values(torch.cat([s for s, _ in pairs]), torch.cat([g for _, g in pairs]))
    return list(out.split(len(pairs[0][0])))


def expectile_weights(advantage: torch.Tensor, expectile: float) -> torch.Tensor:
    """|τ − 1(A < 0)|: τ where the advantage is non-negative, 1 − τ where it is negative."""
    return torch.where(advantage >= 0, expectile, 1.0 - expectile)


def implicit_value_loss(values: nn.Module, values_target: nn.Module, s: torch.Tensor,
                        s_next: torch.Tensor, g: torch.Tensor, success: torch.Tensor,
                        gamma: float, expectile: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The goal-conditioned value's loss (GCIVL's and HIQL's) and its values V(s, g) (B, 2):
    reward −1 until the goal (0 and no bootstrap where ``success``: the goal is s itself), each
    head regressing its own one-step backup r + γ (1 − success) V'_k(s', g) with weight
    |τ − 1(A < 0)|, A = r + γ (1 − success) min_k V'_k(s', g) − mean_k V'_k(s, g)."""
    reward, mask = success - 1.0, 1.0 - success  # (B,)
    with torch.no_grad():
        next_target, target = paired(values_target, (s_next, g), (s, g))  # (B, 2) each
        advantage = reward + gamma * mask * next_target.min(-1).values - target.mean(-1)
        backup = reward[:, None] + gamma * mask[:, None] * next_target  # (B, 2)
    v = values(s, g)  # (B, 2)
    weight = expectile_weights(advantage, expectile)[:, None]  # (B, 1)
    return (weight * (backup - v).pow(2)).mean(0).sum(), v


def goal_value_step(algo: Any, batch: dict[str, np.ndarray],
                    loss_names: tuple[str, ...]) -> dict[str, float]:
    """One update of a goal-value learner (GCIVL, HIQL): its ``losses`` on the batch, one Adam
    step down the sum of ``loss_names`` (they touch disjoint parameters or share the value's),
    then the target value moves τ; every loss and metric read in one stack."""
    b = {k: algo.tensor(v) for k, v in batch.items() if k not in INDICES}
    b["actions"] = algo.unit_actions(batch["actions"])
    out = algo.losses(b)
    algo.optimizer.zero_grad(set_to_none=True)
    total = out[loss_names[0]]
    for name in loss_names[1:]:
        total = total + out[name]
    total.backward()
    algo.optimizer.step()
    soft_update(algo.values_target, algo.values, algo.config.tau)
    return dict(zip(out, torch.stack([v.detach() for v in out.values()]).tolist()))


def unit_gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """log N(a; μ, I) per row: (B, A), (B, A) → (B,)."""
    return -0.5 * (actions - mean).pow(2).sum(-1) - 0.5 * actions.shape[-1] * math.log(2 * math.pi)


@register("gcivl", description="Goal-conditioned implicit V-learning (OGBench's GCIVL)")
class GCIVL(Algorithm):
    Config = GCIVLConfig
    training_loss = "value_loss"
    uses_task_goals = True

    def __init__(self, config: GCIVLConfig, spec: TaskSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.check_task(config, spec)
        inputs = spec.obs_dim + spec.goal_dim
        self.values = GoalValues(inputs, config.hidden).to(device)  # (B, 2)
        self.values_target = target_copy(self.values)
        self.policy = goal_policy_mlp(inputs, config.hidden, spec.act_dim).to(device)  # μ(s, g)
        self.optimizer = adamw([*self.values.parameters(), *self.policy.parameters()], config.lr)

    @classmethod
    def check_task(cls, config: GCIVLConfig, spec: TaskSpec) -> None:
        require_task_goals("gcivl", spec)

    def sample(self, sampler: Sampler) -> dict[str, np.ndarray]:
        return self.config.value_goals(sampler)

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        s, s_next, a = batch["observations"], batch["next_observations"], batch["actions"]
        g, g_policy = batch["goals"], batch["policy_goals"]
        success = batch["goal_is_current"]  # (B,) 1.0 where the goal is s itself
        value_loss, v = implicit_value_loss(self.values, self.values_target, s, s_next, g,
                                            success, c.gamma, c.expectile)

        # Policy: advantage-weighted regression with the one-step advantage V(s', g) − V(s, g).
        with torch.no_grad():
            v_next, v_now = paired(self.values, (s_next, g_policy), (s, g_policy))
            policy_advantage = v_next.mean(-1) - v_now.mean(-1)  # (B,)
            exp_advantage = torch.exp(c.alpha * policy_advantage).clamp(max=100.0)
        mean = self.policy(torch.cat([s, g_policy], -1))  # (B, A)
        actor_loss = -(exp_advantage * unit_gaussian_log_prob(a, mean)).mean()
        return {"value_loss": value_loss, "actor_loss": actor_loss,
                "v": v.detach().mean(), "advantage": policy_advantage.mean(),
                "weight": exp_advantage.mean()}

    def update(self, batch: dict[str, np.ndarray], step: int) -> dict[str, float]:
        return goal_value_step(self, batch, ("value_loss", "actor_loss"))

    @row_invariant_act
    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """Rows [observation, goal] (a goal task's): the clipped mean action."""
        return self.env_actions(self.policy(self.tensor(observations)).clamp(-1, 1)), state
