"""Decision Transformer (Chen et al. 2021), with and without return-to-go conditioning.

Each step t contributes tokens (R_t, s_t, a_t) — return-to-go, state, action — each embedded
linearly and added to a learned embedding of the episode timestep; a causal transformer reads the
interleaved sequence and the hidden state at each s_t token predicts a_t (MSE, tanh output).

``dt_noreturn`` *removes* the return tokens (the sequence is s_0, a_0, s_1, a_1, …, 2K tokens)
rather than feeding zeros: a zeroed token would still occupy attention and positions, and removing
it is the clean ablation "what does return conditioning buy?". Its evaluation has one condition.

``full`` = the paper's hopper settings: embed 128, 3 layers, 1 head, K = 20, dropout 0.1, batch 64,
ReLU MLPs (as in the authors' gym code), AdamW lr 1e-4 (weight decay 1e-4) with 10k linear warm-up steps, grad-norm clip 0.25, reward
scale 0.001, target returns 3600 and 1800 (the first is the headline score), 100k updates. On other
data the targets default to the dataset's best episode return and half of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from bench.algorithm import Algorithm
from bench.config import TrainConfig
from bench.data.sampler import DatasetSpec, Sampler, default_target_returns
from bench.nn import CausalTransformer, FastDropout
from bench.nn.layers import ScalarEmbedding
from bench.nn.optim import adamw
from bench.nn.vicreg import VICRegFields, VICRegHead
from bench.registry import register


# Rows per env in the last block when acting. MKL picks its matmul kernel by the row count, and
# below a threshold a row's bits depend on how many rows share the call: 4 sufficed on AVX2 (AMD
# EPYC); on AVX-512 (Intel Xeon) the MLP's 512 -> 128 product needs 16.
ACT_QUERY_ROWS = 16

@dataclass
class DTConfig(TrainConfig, VICRegFields):
    num_updates: int = 100_000
    batch_size: int = 64
    context_len: int = 20
    embed_dim: int = 128
    n_layers: int = 3
    n_heads: int = 1
    dropout: float = 0.1
    activation: Literal["relu", "gelu"] = "relu"  # the DT authors' gym code uses ReLU
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 10_000
    grad_clip: float = 0.25
    reward_scale: float = 0.001
    # Evaluation targets; empty = the data's default (bench.data.sampler.default_target_returns:
    # the paper's 3600 and 1800 on Hopper, else the dataset's best episode return and half).
    target_returns: tuple[float, ...] = ()
    use_returns: bool = True
    log_every: int = 500
    checkpoint_every: int = 5_000

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"num_updates": 10, "batch_size": 8, "context_len": 5, "embed_dim": 32,
                  "n_layers": 1, "warmup_steps": 5, "log_every": 2, "checkpoint_every": 5},
        "quick": {"num_updates": 3_000, "warmup_steps": 300, "log_every": 100,
                  "checkpoint_every": 500},
    }


class DecisionTransformerNet(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, config: DTConfig, max_timestep: int) -> None:
        super().__init__()
        E = config.embed_dim
        self.use_returns = config.use_returns
        self.tokens_per_step = 3 if config.use_returns else 2
        self.max_timestep = max_timestep
        self.embed_timestep = nn.Embedding(max_timestep + 1, E)
        self.embed_return = ScalarEmbedding(E) if config.use_returns else None
        self.embed_state = nn.Linear(obs_dim, E)
        self.embed_action = nn.Linear(act_dim, E)
        self.embed_ln = nn.LayerNorm(E)
        self.embed_dropout = FastDropout(config.dropout)
        self.transformer = CausalTransformer(E, config.n_layers, config.n_heads, config.dropout,
                                             config.activation)
        self.predict_action = nn.Sequential(nn.Linear(E, act_dim), nn.Tanh())

    def forward(self, states: torch.Tensor, actions: torch.Tensor, returns_to_go: torch.Tensor,
                timesteps: torch.Tensor, mask: torch.Tensor | None = None,
                last: int | None = None) -> torch.Tensor:
        """(B, K, ·) inputs → predicted actions (B, K, act_dim) read at the state tokens
        (``last``: only the last ``last`` steps' predictions, (B, last, act_dim))."""
        B, K, _ = states.shape
        time = self.embed_timestep(timesteps.clamp(0, self.max_timestep))
        parts = [self.embed_state(states) + time, self.embed_action(actions) + time]
        if self.use_returns:
            parts.insert(0, self.embed_return(returns_to_go.unsqueeze(-1)) + time)
        n = self.tokens_per_step
        x = torch.stack(parts, dim=2).reshape(B, n * K, -1)
        x = self.embed_dropout(self.embed_ln(x))
        token_mask = None if mask is None else mask.repeat_interleave(n, dim=1)
        state_tokens = torch.arange(1 if self.use_returns else 0, n * K, n, device=x.device)
        if last is not None:
            state_tokens = state_tokens[-last:]
        return self.predict_action(self.transformer(x, token_mask, outputs=state_tokens))


class _History:
    """Per-env episode history for acting; all envs in one evaluation round start together.

    Arrays carry ``context - 1`` zero slots in front, so the window at step t is always the
    K slots ``[t, t + K)``: left-padded and masked early in the episode, exactly like training.
    """

    def __init__(self, n: int, horizon: int, context: int, obs_dim: int, act_dim: int,
                 target: float, device: torch.device) -> None:
        pad = context - 1
        self.states = torch.zeros(n, pad + horizon, obs_dim, device=device)
        self.actions = torch.zeros(n, pad + horizon, act_dim, device=device)
        self.returns = torch.zeros(n, pad + horizon, device=device)
        self.returns[:, pad] = target
        self.context = context
        self.t = 0


@register("dt", description="Decision Transformer, return-conditioned (Chen et al. 2021)")
@register("dt_noreturn", description="Decision Transformer without return-to-go tokens",
          defaults={"use_returns": False})
@register("dt_vicreg", description="Decision Transformer with temporal VICReg on its state embeddings",
          presets={"vicreg_weight": 0.1})
class DecisionTransformer(Algorithm):
    Config = DTConfig
    batch_invariant_act = True  # see ``act``: ACT_QUERY_ROWS

    def __init__(self, config: DTConfig, spec: DatasetSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.net = DecisionTransformerNet(spec.obs_dim, spec.act_dim, config,
                                          spec.max_episode_steps).to(device)
        params = list(self.net.parameters())
        self.vicreg: VICRegHead | None = None
        if config.vicreg_weight > 0:
            self.vicreg = VICRegHead(config.embed_dim, config).to(device)
            params += list(self.vicreg.parameters())
        self.optimizer = adamw(params, config.lr, config.weight_decay)
        warmup = max(1, config.warmup_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup))
        self.act_scale = self.tensor((spec.action_high - spec.action_low) / 2)
        self.act_shift = self.tensor((spec.action_high + spec.action_low) / 2)

    # -- training -------------------------------------------------------------------------
    def sample(self, sampler: Sampler) -> dict[str, np.ndarray]:
        return sampler.windows(self.config.batch_size, self.config.context_len)

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        if not self.net.training:
            self.net.train()
        mask = torch.as_tensor(batch["mask"], device=self.device)
        states = self.normalize(self.tensor(batch["states"]))
        actions = (self.tensor(batch["actions"]) - self.act_shift) / self.act_scale
        rtg = self.tensor(batch["returns_to_go"]) * self.config.reward_scale
        timesteps = torch.as_tensor(batch["timesteps"], device=self.device)
        pred = self.net(states, actions, rtg, timesteps, mask)
        err = ((pred - actions) ** 2).mean(-1)
        mse = (err * mask).sum() / mask.sum()
        loss, stats = mse, {}
        if self.vicreg is not None:
            loss, stats = self._with_vicreg(mse, states, mask)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": mse.item(), **stats, "lr": self.scheduler.get_last_lr()[0]}

    def _with_vicreg(self, mse: torch.Tensor, states: torch.Tensor,
                     mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Temporal VICReg on the state embeddings: pairs k steps apart inside each window (one
        k per batch, uniform in 1..vicreg_max_offset; windows never cross an episode's end), both
        real tokens."""
        K = states.shape[1]
        if K < 2:
            return mse, {}
        k = min(int(torch.randint(1, self.config.vicreg_max_offset + 1, ())), K - 1)
        embedded = self.net.embed_state(states)
        both = (mask[:, :-k] > 0) & (mask[:, k:] > 0)
        if int(both.sum()) < 2:
            return mse, {}
        aux, stats = self.vicreg(embedded[:, :-k][both], embedded[:, k:][both])
        return mse + self.config.vicreg_weight * aux, stats

    # -- acting ---------------------------------------------------------------------------
    def eval_conditions(self) -> list[str]:
        if not self.config.use_returns:
            return ["default"]
        targets = self.config.target_returns or default_target_returns(self.spec)
        return [f"target={r:g}" for r in targets]

    def initial_state(self, num_envs: int, condition: str = "default") -> _History:
        target = float(condition.split("=")[1]) if condition.startswith("target=") else 0.0
        return _History(num_envs, self.spec.max_episode_steps + 1, self.config.context_len,
                        self.spec.obs_dim, self.spec.act_dim, target * self.config.reward_scale,
                        self.device)

    @torch.inference_mode()
    def act(self, observations: np.ndarray, state: _History) -> tuple[np.ndarray, _History]:
        K = state.context
        t = min(state.t, state.states.shape[1] - K)
        state.states[:, t + K - 1] = self.normalize(self.tensor(observations))
        # Always a full K-step window (padded + masked early on), the same shapes as training.
        # Only the last state token's action is needed, so the last block computes just a few
        # queries (less work per step); ACT_QUERY_ROWS rather than 1 keeps every matmul at that
        # many rows per env, where MKL's kernels give each row the same bits whatever the batch
        # size (with fewer they do not), so an env's actions never depend on how many envs
        # share the batch: vectorized and sequential evaluation return identical episodes.
        steps = torch.arange(t - K + 1, t + 1, device=self.device)
        n = len(observations)
        mask = (steps >= 0).expand(n, K)
        if self.net.training:  # switched once per evaluation, not per step (it walks every module)
            self.net.eval()
        pred = self.net(state.states[:, t:t + K], state.actions[:, t:t + K],
                        state.returns[:, t:t + K], steps.clamp(min=0).expand(n, K), mask,
                        last=min(K, ACT_QUERY_ROWS))[:, -1]
        state.actions[:, t + K - 1] = pred
        state.t += 1
        return (pred * self.act_scale + self.act_shift).cpu().numpy(), state

    def observe(self, state: _History, actions: np.ndarray, rewards: np.ndarray) -> _History:
        K = state.context
        t = min(state.t, state.returns.shape[1] - K)
        scaled = self.tensor(rewards) * self.config.reward_scale
        state.returns[:, t + K - 1] = state.returns[:, t + K - 2] - scaled
        return state

    # -- persistence ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "vicreg": self.vicreg.state_dict() if self.vicreg is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        if self.vicreg is not None:
            self.vicreg.load_state_dict(state["vicreg"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
