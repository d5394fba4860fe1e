"""Conservative Q-Learning (Kumar, Zhou, Tucker & Levine, NeurIPS 2020, arXiv:2006.04779): the
continuous, SAC-based CQL(H), as CORL runs it on D4RL locomotion.

SAC (twin critics, a tanh-squashed Gaussian actor, automatic entropy tuning towards an entropy of
−act_dim) with one change to the critics' loss: besides the TD error each critic pushes down a
soft maximum of its Q over actions the data did not take, and pushes up Q of the data's action:

    penalty_i = temp · log Σ_j exp((Q_i(s, a_j) − log μ(a_j)) / temp) − Q_i(s, a)

over 3N actions a_j at each data state s: N uniform in [−1, 1]^A (density μ = 2^−A), N from
π(·|s) and N from π(·|s') (density μ = π's), all of them scored at s (importance-sampled
logsumexp, CQL paper appendix F). The critics' loss adds ``cql_alpha · mean_s penalty_i``; the
Lagrange variant (``cql_lagrange``) scales it by a learned α' ≥ 0 that grows while the mean
penalty exceeds ``cql_target_action_gap`` (off by default, as in CORL's locomotion configs).

Sources (read for this file; facts and numbers only):
- corl-team/CORL, ``algorithms/offline/cql.py`` (TrainConfig, TanhGaussianPolicy,
  FullyConnectedQFunction, ContinuousCQL._q_loss / _policy_loss / train) at commit eeeeef2, and
  the 18 locomotion configs ``configs/offline/cql/{halfcheetah,hopper,walker2d}/*_v2.yaml``:
  batch 256, 1M updates, discount 0.99, policy lr 3e-5, Q lr 3e-4 (Adam, no weight decay),
  soft target update 5e-3 every update, cql_alpha 10, cql_n_actions 10, importance sampling on,
  temperature 1, Lagrange off (target action gap −1, α' starting at e^1 with the Q lr),
  max-target backup off, backup entropy off, clip-diff bounds ±inf, bc_steps 0, orthogonal
  init on, 3 hidden layers of 256 in each Q-network and in the actor, entropy α starting at 1
  (log α = 0) with the policy lr, alpha_multiplier 1, reward scale 1 and bias 0. All 18 set
  normalize_reward false except hopper/medium_v2 (true); this file defaults to false.
- CORL's actor: the hidden layers keep PyTorch's default init even with orthogonal_init (only
  the critics get orthogonal weights, gain √2, output layer gain 1e-2, zero biases); its output
  layer is Xavier-uniform with gain 1e-2; log-std = learned scale · raw + learned shift
  (starting at 1 and −1), clamped to [−20, 2] (``bench.nn.actors.TanhGaussianActor``).
- CORL evaluates all 3N penalty actions at s (those sampled at s' too) and, without importance
  sampling, puts the data action's Q into the plain logsumexp; both are kept here.

Differences from CORL, none changing the maths: the actor runs once per state and its N samples
share that mean and std (CORL repeats each state N times through the network); the data action
and the 3N penalty actions go through both critics in one batched call; one backward pass serves
every loss (the actor's loss sees the critics through detached weights, and α, α' enter the
other losses detached, so each gets the gradient CORL's separate passes give it); reward scale
and bias apply whether or not ``normalize_reward`` is on (CORL applies them only with it; at the
locomotion values 1 and 0 the same). One that does change numbers slightly: observations are
normalized with the suite's statistics (``Algorithm.normalize``: std + 1e-6; CORL adds 1e-3).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from bench.algorithm import Algorithm
from bench.config import TrainConfig, at_least, positive, positive_sizes
from bench.data.sampler import Sampler, TaskSpec
from bench.errors import UsageError
from bench.nn.actors import TanhGaussianActor
from bench.nn.compiled import CompiledLosses
from bench.nn.layers import QEnsemble, row_invariant_act
from bench.nn.optim import adamw, soft_update, target_copy
from bench.registry import register

# -- config -----------------------------------------------------------------------------------

@dataclass
class CQLConfig(TrainConfig):
    num_updates: int = 1_000_000  # gradient steps
    batch_size: int = 256  # transitions per update
    policy_lr: float = 3e-5  # Adam's learning rate for the actor and the entropy temperature α
    qf_lr: float = 3e-4  # Adam's learning rate for the critics and the Lagrange multiplier α'
    gamma: float = 0.99  # discount
    tau: float = 5e-3  # target critics move this fraction of the way at each target update
    target_update_period: int = 1  # move the target critics every N updates
    actor_hidden: tuple[int, ...] = (256, 256, 256)  # hidden layer sizes of the actor's ReLU MLP
    q_hidden: tuple[int, ...] = (256, 256, 256)  # hidden layer sizes of each Q-network
    # Critics start with orthogonal weights (gain √2, output layer 1e-2) and zero biases; false:
    # nn.Linear's default, output layer Xavier-uniform with gain 1e-2
    orthogonal_init: bool = True
    automatic_entropy_tuning: bool = True  # learn α so that the policy's entropy nears −act_dim
    alpha_multiplier: float = 1.0  # α = alpha_multiplier · exp(log α); the fixed α if not tuned
    backup_entropy: bool = False  # TD target minus α · log π(a'|s') (SAC's soft backup)
    bc_steps: int = 0  # for the first N updates the actor maximizes log π(a|s) of data actions
    cql_n_actions: int = 10  # N: uniform, π(·|s) and π(·|s') actions each, per state
    cql_importance_sample: bool = True  # logsumexp of Q minus each sampled action's log-density
    cql_alpha: float = 10.0  # weight of the conservative penalty in the critics' loss
    cql_temp: float = 1.0  # temperature of the penalty's logsumexp
    cql_lagrange: bool = False  # learn a multiplier α' on the penalty (CQL's Lagrange variant)
    cql_target_action_gap: float = -1.0  # cql_lagrange: α' grows while the penalty exceeds this
    cql_max_target_backup: bool = False  # TD target: the best of N policy actions at s', not one
    cql_clip_diff_min: float | None = None  # lower clip of each state's penalty (none: unclipped)
    cql_clip_diff_max: float | None = None  # upper clip of each state's penalty (none: unclipped)
    # Rewards times max_episode_steps / (best − worst episode return in the data), as CORL's
    # normalize_reward (its hopper-medium-v2 config)
    normalize_reward: bool = False
    reward_scale: float = 1.0  # rewards are trained on as reward · reward_scale + reward_bias
    reward_bias: float = 0.0  # (see reward_scale)
    compile_losses: bool = True  # torch.compile the losses (1.13x updates/s on 2 cores; ~20 s once)
    log_every: int = 1000  # write a metrics line every N updates
    checkpoint_every: int = 50_000  # atomic checkpoint every N updates

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"num_updates": 20, "batch_size": 32, "log_every": 5, "checkpoint_every": 10,
                  "compile_losses": False},
        "quick": {"num_updates": 3_000, "log_every": 100, "checkpoint_every": 1_000},
    }

    def checks(self) -> list[str]:
        problems = positive_sizes(self, "actor_hidden", "q_hidden")
        problems += at_least(self, 1, "target_update_period", "cql_n_actions")
        problems += at_least(self, 0, "bc_steps", "alpha_multiplier", "cql_alpha")
        problems += positive(self, "cql_temp")
        if not 0 < self.tau <= 1:
            problems.append(f"tau must be in (0, 1], got {self.tau!r}")
        if not 0 <= self.gamma <= 1:
            problems.append(f"gamma must be in [0, 1], got {self.gamma!r}")
        low, high = self.cql_clip_diff_min, self.cql_clip_diff_max
        if low is not None and high is not None and low > high:
            problems.append(f"cql_clip_diff_min ({low!r}) must not exceed cql_clip_diff_max "
                            f"({high!r})")
        return problems


# -- model ------------------------------------------------------------------------------------

def init_critics(critics: QEnsemble, orthogonal: bool) -> QEnsemble:
    """CORL's critic initialization, on each member's (fan_in, fan_out) weight matrices."""
    last = len(critics.weights) - 1
    with torch.no_grad():
        for k, (weight, bias) in enumerate(zip(critics.weights, critics.biases)):
            for member in weight:  # (fan_in, fan_out), once per critic, at construction only
                if orthogonal:
                    nn.init.orthogonal_(member, gain=1e-2 if k == last else math.sqrt(2))
                elif k == last:
                    nn.init.xavier_uniform_(member, gain=1e-2)
            if orthogonal or k == last:
                bias.zero_()
    return critics


@dataclass
class Draws:
    """Every random number one update uses, drawn up front: the losses are then a function of
    the parameters, the batch and these (B rows, N = cql_n_actions, A action dimensions, K
    target samples: N with the max-target backup, else 1)."""

    uniform: torch.Tensor  # (B, N, A) the penalty's random actions, uniform in [−1, 1]
    eps: torch.Tensor  # (B, 1 + N, A) N(0, 1): π(·|s)'s for the actor, then N for the penalty
    eps_next: torch.Tensor  # (B, K + N, A) N(0, 1): π(·|s')'s K for the target, N for the penalty


@register("cql", description="Conservative Q-Learning (Kumar et al. 2020), SAC-based, as CORL")
class CQL(Algorithm):
    Config = CQLConfig
    training_loss = "td"

    def __init__(self, config: CQLConfig, spec: TaskSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        c, obs_dim, act_dim = config, spec.obs_dim, spec.act_dim
        self.actor = TanhGaussianActor(obs_dim, act_dim, c.actor_hidden).to(device)
        # Twin critics in one module: (B, obs), (B, A) → (B, 2).
        self.critics = init_critics(QEnsemble(obs_dim + act_dim, c.q_hidden, n=2),
                                    c.orthogonal_init).to(device)
        self.critics_target = target_copy(self.critics)
        # log α (SAC's entropy temperature, starting at α = 1) and log α' (the Lagrange
        # multiplier on the penalty, starting at α' = e, as CORL's).
        self.log_alpha = nn.ParameterDict({
            "entropy": nn.Parameter(torch.zeros((), device=device)),
            "cql": nn.Parameter(torch.ones((), device=device))})
        self.target_entropy = -float(act_dim)
        self.actor_optimizer = adamw(self.actor.parameters(), c.policy_lr)
        self.critic_optimizer = adamw(self.critics.parameters(), c.qf_lr)
        self.alpha_optimizer = adamw([self.log_alpha["entropy"]], c.policy_lr)
        self.alpha_prime_optimizer = adamw([self.log_alpha["cql"]], c.qf_lr)
        self.reward_factor = 1.0  # normalize_reward's factor, set from the data (attach_dataset)
        self.compiled_losses = CompiledLosses(self.losses, c.compile_losses, "cql")

    @classmethod
    def check_data(cls, config: CQLConfig, flat: Any) -> None:
        if config.normalize_reward and not np.ptp(flat.episode_returns) > 0:
            raise UsageError("normalize_reward needs episodes with different returns; this "
                             "dataset's are all equal (--set normalize_reward=false).")

    def attach_dataset(self, sampler: Sampler) -> None:
        if self.config.normalize_reward:
            self.check_data(self.config, sampler.flat)
            returns = sampler.flat.episode_returns
            self.reward_factor = self.spec.max_episode_steps / float(np.max(returns) - np.min(returns))

    # -- losses ---------------------------------------------------------------------------

    def draw(self, rows: int) -> Draws:
        """This update's random numbers, from torch's global generator (checkpointed by the run)."""
        n, act_dim = self.config.cql_n_actions, self.spec.act_dim
        k = n if self.config.cql_max_target_backup else 1
        uniform = torch.rand(rows, n, act_dim, device=self.device) * 2 - 1
        eps = torch.randn(rows, 1 + n, act_dim, device=self.device)
        eps_next = torch.randn(rows, k + n, act_dim, device=self.device)
        return Draws(uniform, eps, eps_next)

    def alpha(self) -> torch.Tensor:
        """SAC's entropy temperature α, a constant for the other losses (0-dim)."""
        c = self.config
        if not c.automatic_entropy_tuning:
            return torch.tensor(c.alpha_multiplier, device=self.device)
        return self.log_alpha["entropy"].detach().exp() * c.alpha_multiplier

    def cql_penalty(self, s: torch.Tensor, a: torch.Tensor, ood_actions: torch.Tensor,
                    ood_log_density: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Q(s, a) of the data actions and each state's penalty, every critic in one call:
        s (B, obs), a (B, A), ood_actions (B, M, A), their log-densities under what sampled
        them (B, M) → Q(s, a) (B, 2) and the penalty (B, 2):
        temp · logsumexp_j((Q(s, a_j) − log μ_j) / temp) − Q(s, a), clipped to the clip-diff
        bounds."""
        c, (rows, m, act_dim) = self.config, ood_actions.shape
        actions = torch.cat([a[:, None], ood_actions], 1)  # (B, 1 + M, A): the data action first
        states = s[:, None].expand(rows, 1 + m, s.shape[-1])  # (B, 1 + M, obs)
        q = self.critics(states.reshape(-1, s.shape[-1]), actions.reshape(-1, act_dim))
        q = q.view(rows, 1 + m, 2)  # (B, 1 + M, 2)
        q_data = q[:, 0]  # (B, 2)
        if c.cql_importance_sample:
            logits = q[:, 1:] - ood_log_density[..., None]  # (B, M, 2)
        else:
            logits = q  # (B, 1 + M, 2): as CORL, the data action joins the plain logsumexp
        diff = c.cql_temp * torch.logsumexp(logits / c.cql_temp, dim=1) - q_data  # (B, 2)
        if c.cql_clip_diff_min is not None or c.cql_clip_diff_max is not None:
            diff = diff.clamp(c.cql_clip_diff_min, c.cql_clip_diff_max)
        return q_data, diff

    def losses(self, batch: dict[str, torch.Tensor], draws: Draws, step: int
               ) -> dict[str, torch.Tensor]:
        """Every loss of update ``step`` (0-dim tensors; their sum is what one backward pass
        differentiates) and a few metrics, from a batch of tensors and this update's draws."""
        c, rows, act_dim = self.config, len(batch["actions"]), self.spec.act_dim
        n = c.cql_n_actions
        s = self.normalize(batch["observations"])  # (B, obs)
        s_next = self.normalize(batch["next_observations"])  # (B, obs)
        a = self.unit_actions(batch["actions"])  # (B, A) in [−1, 1], where the actor acts
        r = batch["rewards"] * (self.reward_factor * c.reward_scale) + c.reward_bias  # (B,)
        alpha = self.alpha()

        # The policy at s (with gradients, for the actor) and at s' (without).
        mean, log_std = self.actor(s)  # (B, A) each
        # (B, 1 + N, A) actions and (B, 1 + N) log-probabilities
        pi, log_pi = self.actor.sample(mean[:, None], log_std[:, None], draws.eps)
        with torch.no_grad():
            mean_next, log_std_next = self.actor(s_next)
            pi_next, log_pi_next = self.actor.sample(  # (B, K + N, A), (B, K + N)
                mean_next[:, None], log_std_next[:, None], draws.eps_next)
        k = pi_next.shape[1] - n

        # TD target from the target critics: min over the twins, then the best of K samples.
        with torch.no_grad():
            states_next = s_next[:, None].expand(rows, k, s_next.shape[-1]).reshape(rows * k, -1)
            q_next = self.critics_target(states_next, pi_next[:, :k].reshape(rows * k, act_dim))
            q_next, best = q_next.view(rows, k, 2).min(-1).values.max(1)  # (B,), (B,)
            if c.backup_entropy:
                q_next = q_next - alpha * log_pi_next[:, :k].gather(1, best[:, None])[:, 0]
            y = r + c.gamma * (1 - batch["terminals"]) * q_next  # (B,)

        # The conservative penalty on 3N actions per state: uniform, π(·|s), π(·|s').
        ood = torch.cat([draws.uniform, pi[:, 1:].detach(), pi_next[:, k:]], 1)  # (B, 3N, A)
        ood_log_density = torch.cat([
            torch.full((rows, n), -act_dim * math.log(2.0), device=self.device),  # uniform: 2^−A
            log_pi[:, 1:].detach(), log_pi_next[:, k:]], 1)  # (B, 3N)
        q_data, diff = self.cql_penalty(s, a, ood, ood_log_density)  # (B, 2) each
        td = (q_data - y[:, None]).pow(2).mean(0).sum()  # MSE of critic 1 + MSE of critic 2
        gap = diff.mean(0)  # (2,) each critic's mean penalty
        if c.cql_lagrange:
            alpha_prime = self.log_alpha["cql"].exp().clamp(0.0, 1e6)
            cql = (alpha_prime.detach() * c.cql_alpha * (gap - c.cql_target_action_gap)).sum()
            alpha_prime_loss = -(alpha_prime * c.cql_alpha
                                 * (gap.detach() - c.cql_target_action_gap)).mean()
        else:
            alpha_prime = torch.zeros((), device=self.device)
            cql = c.cql_alpha * gap.sum()
            alpha_prime_loss = torch.zeros((), device=self.device)

        # The actor: maximize min_i Q_i(s, π(s)) − α log π, the critics' weights held fixed
        # (behaviour cloning instead of Q for the first bc_steps updates).
        new_action, new_log_pi = pi[:, 0], log_pi[:, 0]  # (B, A), (B,)
        if step < c.bc_steps:
            actor_loss = (alpha * new_log_pi - self.actor.log_prob(s, a)).mean()
        else:
            q_pi = self.critics.frozen(s, new_action).min(-1).values  # (B,)
            actor_loss = (alpha * new_log_pi - q_pi).mean()

        # α: down while the policy's entropy (−log π) is above −act_dim, up while below.
        if c.automatic_entropy_tuning:
            alpha_loss = -(self.log_alpha["entropy"]
                           * (new_log_pi.detach() + self.target_entropy)).mean()
        else:
            alpha_loss = torch.zeros((), device=self.device)

        return {"td": td, "cql": cql, "actor": actor_loss, "alpha_loss": alpha_loss,
                "alpha_prime_loss": alpha_prime_loss,
                # metrics, not differentiated
                "alpha": alpha, "alpha_prime": alpha_prime.detach(),
                "cql_diff": gap.detach().mean(),
                "q_data": q_data.detach().mean(), "q_target": y.mean(),
                "log_pi": new_log_pi.detach().mean()}

    # -- training -------------------------------------------------------------------------

    LOSSES: ClassVar[tuple[str, ...]] = ("td", "cql", "actor", "alpha_loss", "alpha_prime_loss")

    def update(self, batch: dict[str, np.ndarray], step: int) -> dict[str, float]:
        b = {key: self.tensor(value) for key, value in batch.items()}
        # losses() reads the step only as `step < bc_steps`; passing 0 or bc_steps keeps the
        # compiled losses to two versions instead of one per step of the behaviour-cloning phase.
        phase = 0 if step < self.config.bc_steps else self.config.bc_steps
        out = self.compiled_losses(b, self.draw(len(b["actions"])), phase)
        optimizers = (self.critic_optimizer, self.actor_optimizer, self.alpha_optimizer,
                      self.alpha_prime_optimizer)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        # The losses touch disjoint parameters (critics; actor; log α; log α'): one pass.
        sum(out[name] for name in self.LOSSES).backward()
        for optimizer in optimizers:
            optimizer.step()
        if (step + 1) % self.config.target_update_period == 0:
            soft_update(self.critics_target, self.critics, self.config.tau)
        return dict(zip(out, torch.stack([v.detach().float() for v in out.values()]).tolist()))

    # -- acting ---------------------------------------------------------------------------

    @row_invariant_act
    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """Deterministic: tanh of the Gaussian's mean."""
        unit = self.actor.deterministic(self.normalize(self.tensor(observations)))
        return self.env_actions(unit), state
