"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications",
arXiv:1812.05905), online, with automatic entropy tuning.

The agent maximizes reward plus α times the policy's entropy. Three things learn at once from
one replay batch (s, a, r, s', terminated):

- twin critics Q₁, Q₂ regress the soft TD target
      y = r + γ · (1 − terminated) · (min_i Q'_i(s', a') − α · log π(a'|s')),   a' ~ π(·|s'),
  where Q' are the target critics (Polyak averages of the critics, τ per gradient step);
- the actor π (a tanh-squashed Gaussian, ``bench.nn.actors.TanhGaussianActor``) minimizes
      mean_s [α · log π(ã|s) − min_i Q_i(s, ã)],   ã = tanh(μ(s) + σ(s) ε) (reparameterized),
  through the critics held constant;
- the temperature, learned as log α, minimizes −log α · mean_s (log π(ã|s) + target entropy),
  with target entropy −act_dim: α falls while the policy's entropy (−log π) is above the target
  and rises while it is below.

Time limits are not terminal: a transition cut by the env's TimeLimit (``truncated``) is stored
with terminated = 0, so its target bootstraps from the true final observation (kept as s'
before the env is reset); only ``terminated`` stops the bootstrap.

One training iteration (the online loop's unit) is one env step followed by one gradient step.
The first ``learning_starts`` steps act uniformly at random in the action box and do not
update; every later step acts with a sample of π and then updates. All three losses are
computed from the same parameters and batch and minimized by one backward pass and one Adam
step (they touch disjoint parameters: critics; actor, through the critics' detached weights;
log α), as the authors' implementation runs its critic, policy and temperature training ops
in one session step (rail-berkeley/softlearning, ``SAC._do_training``). SB3 and CleanRL step
the critics first and let the actor read the updated critics instead, a small difference.

Observations are used as the env gives them (no normalization, as the paper, SB3 and CleanRL);
actions are learned in [-1, 1] and mapped to the env's box (``Algorithm.env_actions``).

``full`` = the paper's hyper-parameters (its Table 1, the same as Stable-Baselines3's SAC
defaults): Adam 3e-4 for actor, critics and α; γ 0.99; τ 0.005; batch 256; replay buffer 10⁶;
two hidden layers of 256 ReLU units in the actor and in each critic; one gradient step and one
target update per env step; target entropy −dim(A); α starting at 1 (log α = 0, as
softlearning and SB3's ``ent_coef="auto"``); 1M env steps. ``learning_starts`` = 10,000 random
steps: rl-baselines3-zoo's ``hyperparams/sac.yml`` MuJoCo entries (HalfCheetah, Hopper,
Walker2d, Ant: ``learning_starts: 10000`` on SB3's defaults; SB3's own default is 100,
CleanRL's ``sac_continuous_action`` 5,000). ``quick`` = 50k env steps with 5,000 random ones
(CleanRL's warm-up); ``smoke`` = 256 steps of batch 32 with 64-unit networks, updating from the
second step on, for CI.

The actor is the shared ``TanhGaussianActor`` (CORL's form, also CQL's): one ReLU MLP gives the
mean and a raw log-std, the log-std is a learned scalar affine map of the raw one clamped to
[−20, 2] (SB3's bounds), and its output layer starts near zero. Here the affine map starts at
the identity (multiplier 1, offset 0: σ ≈ 1 at the start, as SB3's log-std head near 0); SB3
has no learned scalars there. Critics are one ``QEnsemble`` of two members (one batched product
per layer). The critics' loss is ½ (MSE₁ + MSE₂), as SB3 and softlearning.

Reproducibility: every random number (warm-up actions, exploration noise, batch indices, the
actor's and target's reparameterization noise) comes from torch's global generator, which the
run seeds and checkpoints; the env is reset once from the run's seed and its state (simulator,
time limit, generator: ``bench.envs``) is checkpointed with the replay buffer's filled rows, so
a killed run resumes bit for bit (MuJoCo envs; other envs restart their episode on resume).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from bench import envs as env_state
from bench.algorithm import Algorithm
from bench.config import OnlineTrainConfig, at_least, positive, positive_sizes
from bench.data.sampler import TaskSpec
from bench.nn.actors import TanhGaussianActor
from bench.nn.layers import QEnsemble, row_invariant_act
from bench.nn.optim import adamw, soft_update, target_copy
from bench.registry import register

# -- config -----------------------------------------------------------------------------------


@dataclass
class SACConfig(OnlineTrainConfig):
    total_env_steps: int = 1_000_000  # env steps in total (one gradient step follows each)
    buffer_size: int = 1_000_000  # replay buffer capacity in transitions (the oldest go first)
    learning_starts: int = 10_000  # env steps of uniformly random actions before the first update
    batch_size: int = 256  # transitions per gradient step
    lr: float = 3e-4  # Adam's learning rate for the actor, the critics and log α
    gamma: float = 0.99  # discount
    tau: float = 0.005  # target critics move this fraction of the way after every gradient step
    hidden: tuple[int, ...] = (256, 256)  # ReLU hidden layers of the actor and of each critic
    auto_alpha: bool = True  # learn α so that the policy's entropy nears target_entropy
    init_alpha: float = 1.0  # α at the start (the fixed α when auto_alpha is off)
    target_entropy: float | None = None  # the entropy α steers the policy to (none: −act_dim)
    log_every: int = 1_000  # write a metrics line every N env steps
    # keep the env actions, rewards and episode ends of the first N env steps in the checkpoint
    # (TrainingRecord): a reference run's medium-replay dataset replays them (bench.reference)
    record_steps: int = 0
    # atomic checkpoint every N env steps (it holds the replay buffer's filled rows: up to
    # buffer_size × (2·obs_dim + act_dim + 2) floats, 168 MB for HalfCheetah's 1M)
    checkpoint_every: int = 50_000

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        # learning_starts 1: even a 6-step run (tests/test_every_algorithm.py) updates from step 2
        "smoke": {"total_env_steps": 256, "learning_starts": 1, "batch_size": 32,
                  "hidden": (64, 64), "buffer_size": 10_000, "log_every": 64,
                  "checkpoint_every": 128},
        "quick": {"total_env_steps": 50_000, "learning_starts": 5_000,
                  "checkpoint_every": 10_000},
    }

    def checks(self) -> list[str]:
        problems = at_least(self, 1, "buffer_size", "batch_size")
        problems += at_least(self, 0, "learning_starts", "record_steps")
        problems += positive_sizes(self, "hidden") + positive(self, "init_alpha")
        if self.learning_starts >= self.total_env_steps:
            problems.append(f"learning_starts ({self.learning_starts}) must be below "
                            f"total_env_steps ({self.total_env_steps}), or nothing is trained")
        if self.buffer_size < self.batch_size:
            problems.append(f"buffer_size ({self.buffer_size}) must hold at least one batch "
                            f"(batch_size {self.batch_size})")
        if not 0 < self.tau <= 1:
            problems.append(f"tau must be in (0, 1], got {self.tau!r}")
        if not 0 <= self.gamma <= 1:
            problems.append(f"gamma must be in [0, 1], got {self.gamma!r}")
        return problems


# -- replay buffer ----------------------------------------------------------------------------


class ReplayBuffer:
    """The last ``capacity`` transitions in one preallocated (capacity, width) float32 tensor on
    the algorithm's device, a row each: s | a | r | s' | terminated (a in [-1, 1] units). One
    row is written per env step (one copy), a batch is one gather of rows; once full, the
    oldest row is overwritten. Its checkpoint state is the filled rows only."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: torch.device) -> None:
        self.capacity = capacity
        self.widths = (obs_dim, act_dim, 1, obs_dim, 1)  # s, a, r, s', terminated
        self.rows = torch.zeros(capacity, sum(self.widths), device=device)
        self.size = 0  # rows filled
        self.cursor = 0  # the row the next transition goes to

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminated: bool) -> None:
        row = np.concatenate([obs, action, (reward,), next_obs, (float(terminated),)],
                             dtype=np.float32)  # (width,)
        self.rows[self.cursor] = torch.from_numpy(row)
        self.cursor = (self.cursor + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rows: int) -> dict[str, torch.Tensor]:
        """``rows`` transitions drawn uniformly with replacement (torch's global generator)."""
        picked = self.rows[torch.randint(self.size, (rows,), device=self.rows.device)]
        s, a, r, s_next, terminated = picked.split(self.widths, dim=1)
        return {"observations": s, "actions": a, "rewards": r[:, 0],
                "next_observations": s_next, "terminated": terminated[:, 0]}

    def state_dict(self) -> dict[str, Any]:
        # A clone: a slice would save the whole preallocated storage.
        return {"rows": self.rows[:self.size].clone(), "size": self.size, "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.cursor = int(state["size"]), int(state["cursor"])
        self.rows.zero_()
        self.rows[:self.size] = state["rows"].to(self.rows.device)


class TrainingRecord:
    """What the training env was given and gave back over the first ``capacity`` env steps: the
    env action of each step (exactly as passed to ``env.step``), its reward and how it ended the
    episode (0 no, 1 terminated, 2 truncated), and the seed of the first reset. From these a
    simulator replays every transition of the training (D4RL's medium-replay is a SAC run's
    replay buffer up to the medium policy); 52 bytes per step for Walker2d."""

    def __init__(self, capacity: int, act_dim: int, reset_seed: int) -> None:
        self.actions = np.zeros((capacity, act_dim), np.float32)
        self.rewards = np.zeros(capacity, np.float64)
        self.ends = np.zeros(capacity, np.int8)
        self.reset_seed = reset_seed
        self.size = 0

    def add(self, env_action: np.ndarray, reward: float, terminated: bool, truncated: bool) -> None:
        if self.size < len(self.actions):
            self.actions[self.size] = env_action
            self.rewards[self.size] = reward
            self.ends[self.size] = 1 if terminated else 2 if truncated else 0
            self.size += 1

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {"actions": self.actions[:n].copy(), "rewards": self.rewards[:n].copy(),
                "ends": self.ends[:n].copy(), "reset_seed": self.reset_seed, "size": n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = self.size = int(state["size"])
        self.actions[:n], self.rewards[:n], self.ends[:n] = state["actions"], state["rewards"], state["ends"]
        self.reset_seed = int(state["reset_seed"])


# -- model ------------------------------------------------------------------------------------


class Temperature(nn.Module):
    """SAC's entropy temperature, learned as log α (so α = exp(log α) stays positive)."""

    def __init__(self, initial: float) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(initial)))  # 0-dim


METRICS = ("critic_loss", "actor_loss", "alpha_loss", "alpha", "q", "entropy")


@register("sac", kind="online",
          description="Soft Actor-Critic with automatic entropy tuning (Haarnoja et al. 2018), online")
class SAC(Algorithm):
    Config = SACConfig

    def __init__(self, config: SACConfig, spec: TaskSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        c, obs_dim, act_dim = config, spec.obs_dim, spec.act_dim
        # π(a|s): (B, obs) → mean, log-std (B, A); a = tanh(mean + σ ε) in (−1, 1)
        self.actor = TanhGaussianActor(obs_dim, act_dim, c.hidden, log_std_bounds=(-20.0, 2.0),
                                       log_std_multiplier=1.0, log_std_offset=0.0).to(device)
        # Twin critics in one module: (B, obs), (B, A) → (B, 2); their targets start equal.
        self.critics = QEnsemble(obs_dim + act_dim, c.hidden, n=2).to(device)
        self.critics_target = target_copy(self.critics)
        self.temperature = Temperature(c.init_alpha).to(device)
        self.target_entropy = -float(act_dim) if c.target_entropy is None else c.target_entropy
        # One Adam for all three (Adam is per parameter: the same steps as three optimizers).
        params = [*self.actor.parameters(), *self.critics.parameters()]
        if c.auto_alpha:
            params.append(self.temperature.log_alpha)
        self.optimizer = adamw(params, c.lr)
        self.buffer = ReplayBuffer(c.buffer_size, obs_dim, act_dim, device)
        self.env_steps = 0
        self.env: gym.Env | None = None
        self.record: TrainingRecord | None = None  # made by setup when record_steps > 0
        self._obs = np.zeros(obs_dim, np.float32)  # the env's current observation
        self._episode = [0.0, 0]  # return and length of the episode under way
        self._finished: list[tuple[float, int]] = []  # episodes ended since the last metrics line
        # METRICS summed over the gradient steps since the last metrics line, on the device (no
        # synchronization per step), and how many steps that is.
        self._metric_sums = torch.zeros(len(METRICS), device=device)
        self._updates_since_log = 0

    # -- losses ---------------------------------------------------------------------------

    def alpha(self) -> torch.Tensor:
        """α as a constant for the critics' and actor's losses (0-dim)."""
        return self.temperature.log_alpha.detach().exp()

    def td_target(self, rewards: torch.Tensor, next_observations: torch.Tensor,
                  terminated: torch.Tensor, eps_next: torch.Tensor) -> torch.Tensor:
        """y = r + γ (1 − terminated)(min_i Q'_i(s', a') − α log π(a'|s')), a' = tanh(μ(s') +
        σ(s') eps_next): rewards (B,), next observations (B, obs), terminated (B,) 0/1,
        standard-normal eps_next (B, A) → (B,), without gradients."""
        with torch.no_grad():
            mean, log_std = self.actor(next_observations)  # (B, A) each
            a_next, log_pi_next = self.actor.sample(mean, log_std, eps_next)  # (B, A), (B,)
            q_next = self.critics_target(next_observations, a_next).min(-1).values  # (B,)
            soft_value = q_next - self.alpha() * log_pi_next  # (B,)
            return rewards + self.config.gamma * (1.0 - terminated) * soft_value

    def losses(self, batch: dict[str, torch.Tensor], eps: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three losses of one gradient step (0-dim; their sum is what the one backward
        pass differentiates) and metrics, from a batch of B transitions (actions in [-1, 1])
        and standard-normal draws eps (2, B, A): eps[0] for the actor's action at s, eps[1]
        for the target's at s'."""
        s, a = batch["observations"], batch["actions"]  # (B, obs), (B, A)
        alpha = self.alpha()
        y = self.td_target(batch["rewards"], batch["next_observations"], batch["terminated"],
                           eps[1])  # (B,)
        q = self.critics(s, a)  # (B, 2)
        critic_loss = 0.5 * (q - y[:, None]).pow(2).mean(0).sum()  # ½ (MSE₁ + MSE₂)

        mean, log_std = self.actor(s)  # (B, A) each
        pi, log_pi = self.actor.sample(mean, log_std, eps[0])  # (B, A), (B,)
        q_pi = self.critics.frozen(s, pi).min(-1).values  # (B,): gradients reach π only
        actor_loss = (alpha * log_pi - q_pi).mean()

        if self.config.auto_alpha:
            alpha_loss = -(self.temperature.log_alpha
                           * (log_pi.detach() + self.target_entropy)).mean()
        else:
            alpha_loss = torch.zeros((), device=self.device)
        return {"critic_loss": critic_loss, "actor_loss": actor_loss, "alpha_loss": alpha_loss,
                # metrics, not differentiated
                "alpha": alpha, "q": q.detach().mean(), "entropy": -log_pi.detach().mean()}

    def train_on(self, batch: dict[str, torch.Tensor], eps: torch.Tensor) -> dict[str, torch.Tensor]:
        """One gradient step of critics, actor and α on ``batch``, then the targets' τ-step."""
        out = self.losses(batch, eps)
        self.optimizer.zero_grad(set_to_none=True)
        (out["critic_loss"] + out["actor_loss"] + out["alpha_loss"]).backward()
        self.optimizer.step()
        soft_update(self.critics_target, self.critics, self.config.tau)
        return out

    # -- environment and training ---------------------------------------------------------

    def setup(self, make_env: Callable[[], gym.Env], seed: int) -> None:
        """One training env, reset from ``seed`` (later episodes go on with its generator)."""
        self.env = make_env()
        self._obs = np.asarray(self.env.reset(seed=seed * 1000)[0], np.float32)
        self._episode = [0.0, 0]
        if self.config.record_steps:
            self.record = TrainingRecord(self.config.record_steps, self.spec.act_dim, seed * 1000)

    def explore(self, obs: np.ndarray) -> np.ndarray:
        """The training action in [-1, 1] units (act_dim,): uniform for the first
        learning_starts steps, then a sample of π(·|obs)."""
        if self.env_steps < self.config.learning_starts:
            unit = torch.rand(self.spec.act_dim, device=self.device) * 2 - 1
        else:
            with torch.inference_mode():
                mean, log_std = self.actor(torch.as_tensor(obs, device=self.device))
                unit, _ = self.actor.sample(mean, log_std, torch.randn_like(mean))
        return unit.cpu().numpy()

    def train_iteration(self) -> dict[str, float]:
        """One env step, stored, then (after learning_starts) one gradient step. Metrics come
        back only where a metrics line is due (every log_every env steps and at the end): the
        averages since the last line, read from the device once."""
        c = self.config
        if self.env is None:
            raise RuntimeError("SAC.setup(make_env, seed) must be called before training")
        unit = self.explore(self._obs)
        low, high = self.spec.action_low, self.spec.action_high
        env_action = np.clip(unit * (high - low) / 2 + (high + low) / 2, low, high)
        next_obs, reward, terminated, truncated, _ = self.env.step(env_action)
        next_obs = np.asarray(next_obs, np.float32)
        if self.record is not None:
            self.record.add(env_action, float(reward), bool(terminated), bool(truncated))
        # s' is the true next observation even at a time limit; only termination ends bootstrapping
        self.buffer.add(self._obs, unit, float(reward), next_obs, bool(terminated))
        self._episode[0] += float(reward)
        self._episode[1] += 1
        if terminated or truncated:
            self._finished.append((self._episode[0], self._episode[1]))
            self._episode = [0.0, 0]
            next_obs = np.asarray(self.env.reset()[0], np.float32)
        self._obs = next_obs
        before, self.env_steps = self.env_steps, self.env_steps + 1

        if self.env_steps > c.learning_starts:
            batch = self.buffer.sample(c.batch_size)
            eps = torch.randn(2, c.batch_size, self.spec.act_dim, device=self.device)
            out = self.train_on(batch, eps)
            self._metric_sums += torch.stack([out[k].detach() for k in METRICS])
            self._updates_since_log += 1

        every = c.log_every
        if (every > 0 and self.env_steps // every > before // every) \
                or self.env_steps >= c.total_env_steps:
            return self._metrics_since_last_line()
        return {}

    def _metrics_since_last_line(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self._updates_since_log:
            sums = self._metric_sums.tolist()
            metrics = {k: v / self._updates_since_log for k, v in zip(METRICS, sums)}
        if self._finished:
            returns, lengths = zip(*self._finished)
            metrics["train/episode_return"] = float(np.mean(returns))
            metrics["train/episode_length"] = float(np.mean(lengths))
        self._metric_sums.zero_()
        self._updates_since_log = 0
        self._finished = []
        return metrics

    # -- acting ---------------------------------------------------------------------------

    @row_invariant_act
    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """Deterministic: tanh of the Gaussian's mean, in the env's action box."""
        return self.env_actions(self.actor.deterministic(self.tensor(observations))), state

    # -- persistence ----------------------------------------------------------------------

    def export_policy(self) -> dict[str, Any]:
        """The actor as a standalone policy file (``bench.policies.TanhGaussianMLPPolicy``)."""
        return {
            "format": "bench.tanh_gaussian_mlp.v1", "hidden": list(self.config.hidden),
            "obs_dim": self.spec.obs_dim, "act_dim": self.spec.act_dim,
            "log_std_bounds": list(self.actor.log_std_bounds),
            "actor": {k: v.detach().cpu().clone() for k, v in self.actor.state_dict().items()},
            "action_low": np.asarray(self.spec.action_low),
            "action_high": np.asarray(self.spec.action_high),
            "env_steps": self.env_steps,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            # actor, critics, critics_target, temperature, optimizer, buffer, record
            **super().state_dict(),
            "env_steps": self.env_steps,
            "env": None if self.env is None else {
                "snapshot": env_state.snapshot(self.env), "obs": self._obs.copy(),
                "episode": list(self._episode)},
            "since_log": {"sums": self._metric_sums.clone(), "updates": self._updates_since_log,
                          "finished": list(self._finished)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.env_steps = int(state["env_steps"])
        since = state["since_log"]
        self._metric_sums.copy_(since["sums"])
        self._updates_since_log, self._finished = int(since["updates"]), list(since["finished"])
        saved = state.get("env")
        if saved and self.env is not None and saved["snapshot"] is not None:
            env_state.restore(self.env, saved["snapshot"])
            self._obs, self._episode = saved["obs"].copy(), list(saved["episode"])
