"""Proximal Policy Optimization for continuous actions (Schulman et al. 2017), online.

One iteration = a rollout of ``rollout_steps`` per env, generalized advantage estimation, then
``update_epochs`` passes of clipped-objective minibatch updates. Defaults are the standard MuJoCo
settings (2048 steps, 10 epochs, 32 minibatches, Adam 3e-4 annealed to 0, clip 0.2, GAE λ 0.95,
γ 0.99, 64-64 tanh networks, state-independent log-std), as in cleanrl's ``ppo_continuous_action``.

Observation and reward normalization are running statistics kept *in the algorithm* (not env
wrappers) so they are saved with the policy and frozen at evaluation. Truncated episodes are
bootstrapped with the value of their final observation instead of being treated as terminal.

Extension points (used by the goal-setter family, without copying this file):
- ``policy_output_dim`` / ``to_env_action``: what the Gaussian policy emits and how it becomes the
  env action (identity here; a goal state decoded by an IDM there).
- ``ratio_dims``: which output dimensions the PPO ratio and entropy cover (all here; a policy
  with an output that never reaches the env leaves it out).
- ``extra_losses(minibatch)``: auxiliary loss terms added to the PPO loss (VICReg, closeness, …);
  the minibatch holds normalized and raw observations and the policy outputs.
- ``transition_hook``: called with every training transition (replay buffers, dataset recording).
- ``extra_state`` / ``load_extra_state``: anything else a subclass must checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from bench import envs as env_state
from bench.algorithm import Algorithm
from bench.config import OnlineTrainConfig, at_least, positive, positive_sizes
from bench.data.sampler import TaskSpec
from bench.nn.layers import orthogonal_tanh_mlp, row_invariant_act
from bench.perf import torch_threads
from bench.nn.optim import adamw
from bench.nn.vicreg import VICRegFields, VICRegHead, vicreg_weight
from bench.registry import register


@dataclass
class PPOConfig(OnlineTrainConfig):
    total_env_steps: int = 1_000_000  # env steps in total
    num_envs: int = 1  # training envs stepped together
    rollout_steps: int = 2048  # steps per env and iteration
    update_epochs: int = 10  # passes over each rollout
    num_minibatches: int = 32  # minibatches per pass
    lr: float = 3e-4  # Adam's learning rate
    anneal_lr: bool = True  # decay the learning rate linearly to 0 over the budget
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE's lambda
    clip_coef: float = 0.2  # the ratio clip of the surrogate objective
    clip_value_loss: bool = True  # clip the value update around the old value, as cleanrl does
    ent_coef: float = 0.0  # entropy bonus weight
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # gradient norm clip (inf: none)
    hidden: tuple[int, ...] = (64, 64)  # tanh hidden layers of the actor and of the critic
    norm_obs: bool = True  # normalize observations with running statistics
    norm_reward: bool = True  # scale rewards by the running std of the discounted return
    clip_obs: float = 10.0  # clip normalized observations to +-this (inf: none)
    clip_reward: float = 10.0  # clip scaled rewards to +-this (inf: none)

    UNBOUNDED_OK: ClassVar[tuple[str, ...]] = ("max_grad_norm", "clip_obs", "clip_reward")  # inf: no clipping
    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"total_env_steps": 1024, "rollout_steps": 256, "num_minibatches": 4,
                  "update_epochs": 2, "log_every": 256, "checkpoint_every": 512},
        "quick": {"total_env_steps": 200_000},
    }

    def checks(self) -> list[str]:
        out = (at_least(self, 1, "num_envs", "rollout_steps", "update_epochs", "num_minibatches")
               + positive_sizes(self, "hidden")
               # np.clip(r, 10, -10) would turn every reward into -10; a negative clip norm
               # flips the gradient.
               + positive(self, "clip_coef", "max_grad_norm", "clip_obs", "clip_reward")
               + at_least(self, 0, "vf_coef"))
        if self.num_minibatches > self.num_envs * self.rollout_steps:
            out.append(f"num_minibatches ({self.num_minibatches}) must be at most the "
                       f"transitions of a rollout (num_envs x rollout_steps = "
                       f"{self.num_envs * self.rollout_steps})")
        if not 0.0 < self.gamma <= 1.0:
            out.append(f"gamma must be in (0, 1], got {self.gamma!r}")
        if not 0.0 <= self.gae_lambda <= 1.0:
            out.append(f"gae_lambda must be in [0, 1], got {self.gae_lambda!r}")
        return out


@dataclass
class PPOVICRegConfig(PPOConfig, VICRegFields):
    """PPO's fields and VICReg's, which regularizes the actor's last hidden layer (PPOConfig
    refuses an empty ``hidden``)."""


class RunningMeanStd:
    """Streaming mean/variance (Chan et al. parallel update), float64."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.mean = np.zeros(shape)
        self.var = np.ones(shape)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        batch_mean, batch_var, n = x.mean(0), x.var(0), x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.mean, self.var, self.count = np.array(d["mean"]), np.array(d["var"]), float(d["count"])


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, out_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.actor_mean = orthogonal_tanh_mlp(obs_dim, hidden, out_dim, 0.01)
        self.actor_logstd = nn.Parameter(torch.zeros(out_dim))
        self.critic = orthogonal_tanh_mlp(obs_dim, hidden, 1, 1.0)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def dist(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor_mean(obs), self.actor_logstd.expand(obs.shape[0], -1)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Sum over dimensions of independent Gaussian log-densities."""
    return (-0.5 * ((x - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_value: np.ndarray,
        gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and returns; ``dones[t]`` = episode ended after step t (T, N arrays)."""
    T = len(rewards)
    adv = np.zeros_like(rewards)
    last = np.zeros_like(last_value)
    for t in reversed(range(T)):
        next_value = last_value if t == T - 1 else values[t + 1]
        nonterminal = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv, adv + values


@register("ppo", description="PPO, continuous actions (online; the baseline and reference-policy trainer)",
          kind="online")
@register("ppo_vicreg", kind="online", config=PPOVICRegConfig, presets={"vicreg_weight": 0.1},
          description="PPO whose state representation (the actor's hidden layers) gets temporal VICReg")
class PPO(Algorithm):
    Config = PPOConfig

    def __init__(self, config: PPOConfig, spec: TaskSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.net = ActorCritic(spec.obs_dim, self.policy_output_dim(), config.hidden).to(device)
        params = list(self.net.parameters())
        # VICReg on the actor's state representation (built only with a positive weight, so a
        # zero weight is plain PPO, number for number); subclasses may regularize something else.
        self.vicreg: VICRegHead | None = None
        if vicreg_weight(config) > 0 and self.vicreg_on_actor():
            self.vicreg = VICRegHead(config.hidden[-1], config).to(device)
            params += list(self.vicreg.parameters())
        self.optimizer = adamw(params, config.lr)
        self.obs_rms = RunningMeanStd((spec.obs_dim,))
        self.ret_rms = RunningMeanStd(())
        self.env_steps = 0
        self.iteration = 0
        self.envs: list[gym.Env] = []
        self.rng = np.random.default_rng(0)
        # Called as hook(env_index, obs, action, reward, terminated, truncated, next_obs) for
        # every training transition (the medium-replay dataset records training this way).
        self.transition_hook: Callable[..., None] | None = None

    # -- extension points -----------------------------------------------------------------
    def policy_output_dim(self) -> int:
        return self.spec.act_dim

    def to_env_action(self, policy_output: np.ndarray, obs: np.ndarray) -> np.ndarray:
        return np.clip(policy_output, self.spec.action_low, self.spec.action_high)

    def ratio_dims(self) -> slice:
        return slice(None)

    def vicreg_on_actor(self) -> bool:
        return True

    def extra_losses(self, minibatch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        if self.vicreg is None:
            return torch.zeros((), device=self.device), {}
        valid = minibatch["pair_valid"] > 0
        if int(valid.sum()) < 2:
            return torch.zeros((), device=self.device), {}
        hidden = self.net.actor_mean[:-1]  # the actor's state representation
        aux, stats = self.vicreg(hidden(minibatch["obs"][valid]),
                                 hidden(minibatch["pair_obs"][valid]))
        return self.config.vicreg_weight * aux, stats

    def _temporal_pairs(self, obs: np.ndarray, dones: np.ndarray) -> dict[str, np.ndarray]:
        """For each rollout step (t, env), the observation k steps later in the same env and
        episode (k uniform in 1..vicreg_max_offset), and whether such a step exists."""
        T, N = dones.shape
        k = self.rng.integers(1, self.config.vicreg_max_offset + 1, (T, N))
        later = np.arange(T)[:, None] + k
        # An episode end at any step in t..t+k-1 separates t from t+k.
        ends = np.concatenate([np.zeros((1, N)), np.cumsum(dones, axis=0)])
        env = np.arange(N)[None, :]
        inside = later < T
        later = np.minimum(later, T - 1)
        valid = inside & (ends[later, env] == ends[np.arange(T)[:, None], env])
        return {"pair_obs": obs[later, env], "pair_valid": valid.astype(np.float32)}

    def _log_prob(self, outputs: torch.Tensor, mean: torch.Tensor,
                  log_std: torch.Tensor) -> torch.Tensor:
        d = self.ratio_dims()
        return gaussian_log_prob(outputs[:, d], mean[:, d], log_std[:, d])

    # -- environment ----------------------------------------------------------------------
    def setup(self, make_env: Callable[[], gym.Env], seed: int) -> None:
        """Create the training envs; episode k of env i starts from its own seeded generator."""
        self.envs = [make_env() for _ in range(self.config.num_envs)]
        self.rng = np.random.default_rng(seed)
        self._obs = np.stack([env.reset(seed=seed * 1000 + i)[0] for i, env in enumerate(self.envs)])
        self._ret = np.zeros(self.config.num_envs)  # discounted return, for reward scaling
        self._ep_return = np.zeros(self.config.num_envs)
        self._ep_length = np.zeros(self.config.num_envs, dtype=np.int64)

    def _normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        if not self.config.norm_obs:
            return obs.astype(np.float32)
        z = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8)
        return np.clip(z, -self.config.clip_obs, self.config.clip_obs).astype(np.float32)

    # -- training -------------------------------------------------------------------------
    def train_iteration(self) -> dict[str, float]:
        """One rollout + update; returns metrics. Advances ``env_steps``."""
        c = self.config
        T, N = c.rollout_steps, c.num_envs
        if c.anneal_lr:
            # As many iterations as the run makes (it stops at the first whole iteration that
            # reaches total_env_steps), so the last one still learns (lr > 0).
            total_iters = max(1, -(-c.total_env_steps // (T * N)))
            frac = 1.0 - self.iteration / total_iters
            for group in self.optimizer.param_groups:
                group["lr"] = frac * c.lr
        obs_buf = np.zeros((T, N, self.spec.obs_dim), np.float32)
        raw_buf = np.zeros((T, N, self.spec.obs_dim), np.float32)
        out_buf = np.zeros((T, N, self.policy_output_dim()), np.float32)
        logp_buf = np.zeros((T, N), np.float32)
        val_buf = np.zeros((T, N), np.float32)
        rew_buf = np.zeros((T, N), np.float32)
        done_buf = np.zeros((T, N), np.float32)
        finished_returns: list[float] = []
        finished_lengths: list[int] = []
        self.net.eval()
        # One torch thread: the rollout's forwards are N rows at a time (bench.perf.torch_threads).
        with torch_threads(1):
            for t in range(T):
                if c.norm_obs:
                    self.obs_rms.update(self._obs)
                obs_n = self._normalize_obs(self._obs)
                with torch.inference_mode():
                    o = torch.as_tensor(obs_n, device=self.device)
                    mean, log_std = self.net.dist(o)
                    sample = mean + log_std.exp() * torch.randn_like(mean)
                    logp = self._log_prob(sample, mean, log_std)
                    value = self.net.value(o)
                sample_np = sample.cpu().numpy()
                obs_buf[t], out_buf[t], raw_buf[t] = obs_n, sample_np, self._obs
                logp_buf[t], val_buf[t] = logp.cpu().numpy(), value.cpu().numpy()
                actions = self.to_env_action(sample_np, self._obs)
                rewards = np.zeros(N)
                # γ·V(final observation) of episodes cut by a time limit, in the critic's units (it
                # learns returns of scaled rewards): added after scaling, so it is neither clipped
                # like a reward nor counted in the reward-scale statistics.
                bootstrap = np.zeros(N, np.float32)
                for i, env in enumerate(self.envs):
                    next_obs, reward, term, trunc, _ = env.step(actions[i])
                    if self.transition_hook is not None:
                        self.transition_hook(i, self._obs[i].copy(), actions[i], reward, term, trunc, next_obs)
                    self._ep_return[i] += reward
                    self._ep_length[i] += 1
                    rewards[i] = reward
                    if term or trunc:
                        finished_returns.append(float(self._ep_return[i]))
                        finished_lengths.append(int(self._ep_length[i]))
                        self._ep_return[i], self._ep_length[i] = 0.0, 0
                        done_buf[t, i] = 1.0
                        if trunc and not term:  # time limit: bootstrap from the final observation
                            with torch.inference_mode():
                                final = torch.as_tensor(self._normalize_obs(next_obs[None]), device=self.device)
                                bootstrap[i] = c.gamma * float(self.net.value(final)[0])
                        next_obs, _ = env.reset()
                    self._obs[i] = next_obs
                if c.norm_reward:
                    self._ret = self._ret * c.gamma * (1.0 - done_buf[t]) + rewards
                    self.ret_rms.update(self._ret)
                rew_buf[t] = self._scale_reward(rewards) + bootstrap
            with torch.inference_mode():
                last_value = self.net.value(torch.as_tensor(self._normalize_obs(self._obs),
                                                            device=self.device)).cpu().numpy()
        adv, returns = gae(rew_buf, val_buf, done_buf, last_value, c.gamma, c.gae_lambda)
        extras = self._temporal_pairs(obs_buf, done_buf) if self.vicreg is not None else {}
        metrics = self._update(obs_buf, out_buf, logp_buf, val_buf, adv, returns, raw_buf, extras)
        self.env_steps += T * N
        self.iteration += 1
        if finished_returns:
            metrics["train/episode_return"] = float(np.mean(finished_returns))
            metrics["train/episode_length"] = float(np.mean(finished_lengths))
        return metrics

    def _reward_scale(self) -> float:
        return float(np.sqrt(self.ret_rms.var + 1e-8)) if self.config.norm_reward else 1.0

    def _scale_reward(self, rewards: np.ndarray) -> np.ndarray:
        if not self.config.norm_reward:
            return rewards
        return np.clip(rewards / self._reward_scale(), -self.config.clip_reward, self.config.clip_reward)

    def _update(self, obs, outputs, logp, values, adv, returns, raw_obs,
                extras: dict[str, np.ndarray]) -> dict[str, float]:
        c = self.config
        flat = lambda a: torch.as_tensor(a.reshape(-1, *a.shape[2:]), device=self.device)  # noqa: E731
        b_obs, b_out, b_logp, b_raw = flat(obs), flat(outputs), flat(logp), flat(raw_obs)
        b_extras = {k: flat(v) for k, v in extras.items()}
        b_val, b_adv, b_ret = flat(values), flat(adv), flat(returns)
        n = b_obs.shape[0]
        mb_size = n // c.num_minibatches
        self.net.train()
        stats: dict[str, float] = {}
        count = 0
        for _ in range(c.update_epochs):
            order = torch.as_tensor(self.rng.permutation(n), device=self.device)
            for start in range(0, mb_size * c.num_minibatches, mb_size):
                idx = order[start:start + mb_size]
                mean, log_std = self.net.dist(b_obs[idx])
                new_logp = self._log_prob(b_out[idx], mean, log_std)
                entropy = (log_std[:, self.ratio_dims()]
                           + 0.5 * math.log(2 * math.pi * math.e)).sum(-1).mean()
                log_ratio = new_logp - b_logp[idx]
                ratio = log_ratio.exp()
                mb_adv = b_adv[idx]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio,
                                    -mb_adv * ratio.clamp(1 - c.clip_coef, 1 + c.clip_coef)).mean()
                new_value = self.net.value(b_obs[idx])
                if c.clip_value_loss:
                    clipped = b_val[idx] + (new_value - b_val[idx]).clamp(-c.clip_coef, c.clip_coef)
                    v_loss = 0.5 * torch.max((new_value - b_ret[idx]) ** 2,
                                             (clipped - b_ret[idx]) ** 2).mean()
                else:
                    v_loss = 0.5 * ((new_value - b_ret[idx]) ** 2).mean()
                aux, aux_stats = self.extra_losses({"obs": b_obs[idx], "outputs": b_out[idx],
                                                    "raw_obs": b_raw[idx],
                                                    **{k: v[idx] for k, v in b_extras.items()}})
                loss = pg_loss - c.ent_coef * entropy + c.vf_coef * v_loss + aux
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                # The network's gradients only, on purpose: a VICReg projector's would take a
                # share of the published clip norm from the network (Adam scales its steps anyway).
                nn.utils.clip_grad_norm_(self.net.parameters(), c.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - log_ratio).mean()
                    clipfrac = ((ratio - 1).abs() > c.clip_coef).float().mean()
                for k, v in {"loss": loss, "policy_loss": pg_loss, "value_loss": v_loss,
                             "entropy": entropy, "approx_kl": approx_kl, "clipfrac": clipfrac,
                             **aux_stats}.items():
                    stats[k] = stats.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v)
                count += 1
        return {k: v / count for k, v in stats.items()}

    # -- acting ---------------------------------------------------------------------------
    @row_invariant_act
    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        o = torch.as_tensor(self._normalize_obs(observations), device=self.device)
        mean, _ = self.net.dist(o)
        return self.to_env_action(mean.cpu().numpy(), observations), state

    # -- persistence ----------------------------------------------------------------------
    def export_policy(self) -> dict[str, Any]:
        """The Gaussian actor with its frozen observation normalization (``bench.policies``)."""
        c = self.config
        return {
            "format": "bench.gaussian_mlp.v1", "hidden": list(c.hidden),
            "obs_dim": self.spec.obs_dim, "act_dim": self.policy_output_dim(),
            "actor_mean": {k: v.detach().cpu().clone() for k, v in self.net.actor_mean.state_dict().items()},
            "log_std": self.net.actor_logstd.detach().cpu().clone(),
            "obs_mean": self.obs_rms.mean.copy() if c.norm_obs else None,
            "obs_var": self.obs_rms.var.copy() if c.norm_obs else None,
            "clip_obs": c.clip_obs,
            "action_low": np.asarray(self.spec.action_low), "action_high": np.asarray(self.spec.action_high),
            "env_steps": self.env_steps,
        }

    def state_dict(self) -> dict[str, Any]:
        snaps = [env_state.snapshot(env) for env in self.envs]
        return {
            **super().state_dict(),  # net, vicreg, optimizer, obs_rms, ret_rms
            "env_steps": self.env_steps, "iteration": self.iteration,
            "rng": self.rng.bit_generator.state,
            "envs": {"snapshots": snaps, "obs": getattr(self, "_obs", None),
                     "ret": getattr(self, "_ret", None), "ep_return": getattr(self, "_ep_return", None),
                     "ep_length": getattr(self, "_ep_length", None)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.env_steps, self.iteration = state["env_steps"], state["iteration"]
        self.rng.bit_generator.state = state["rng"]
        saved = state.get("envs")
        if saved and self.envs and all(s is not None for s in saved["snapshots"]):
            for env, snap in zip(self.envs, saved["snapshots"]):
                env_state.restore(env, snap)
            self._obs, self._ret = saved["obs"].copy(), saved["ret"].copy()
            self._ep_return, self._ep_length = saved["ep_return"].copy(), saved["ep_length"].copy()
