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

from bench.algorithm import DEFAULT, Algorithm, Condition, check_condition
from bench.config import TrainConfig, positive
from bench.data.sampler import TaskSpec, Sampler, default_target_returns, target_label
from bench.nn import FastDropout, Transformer
from bench.nn.layers import ScalarEmbedding, row_invariant_act
from bench.nn.optim import adamw
from bench.nn.transformer import transformer_checks
from bench.nn.vicreg import VICRegFields, VICRegHead, vicreg_weight
from bench.registry import register


@dataclass
class DTConfig(TrainConfig):
    num_updates: int = 100_000  # gradient steps
    batch_size: int = 64  # windows per update
    context_len: int = 20  # K: steps per window
    embed_dim: int = 128  # token width
    n_layers: int = 3  # transformer blocks
    n_heads: int = 1  # attention heads per block
    dropout: float = 0.1  # dropout on embeddings, attention weights and residual branches
    activation: Literal["relu", "gelu"] = "relu"  # the DT authors' gym code uses ReLU
    lr: float = 1e-4  # AdamW's peak learning rate
    weight_decay: float = 1e-4  # AdamW's weight decay
    warmup_steps: int = 10_000  # linear learning-rate warm-up
    grad_clip: float = 0.25  # gradient norm clip (inf: none)
    reward_scale: float = 0.001  # returns-to-go are fed times this
    # Evaluation targets; empty = the data's default (bench.data.sampler.default_target_returns:
    # the paper's 3600 and 1800 on Hopper, else the dataset's best episode return and half).
    target_returns: tuple[float, ...] = ()
    use_returns: bool = True  # false: no return-to-go tokens (dt_noreturn)
    log_every: int = 500  # write a metrics line every N updates
    checkpoint_every: int = 5_000  # atomic checkpoint every N updates

    UNBOUNDED_OK: ClassVar[tuple[str, ...]] = ("grad_clip",)  # inf: no clipping
    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"num_updates": 10, "batch_size": 8, "context_len": 5, "embed_dim": 32,
                  "n_layers": 1, "warmup_steps": 5, "log_every": 2, "checkpoint_every": 5},
        "quick": {"num_updates": 3_000, "warmup_steps": 300, "log_every": 100,
                  "checkpoint_every": 500},
    }

    def checks(self) -> list[str]:
        return transformer_checks(self) + positive(self, "reward_scale")


@dataclass
class DTVICRegConfig(DTConfig, VICRegFields):
    """dt_vicreg: temporal VICReg on the state embeddings (``bench.nn.vicreg``)."""


class DecisionTransformerNet(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, config: DTConfig, max_timestep: int) -> None:
        super().__init__()
        E = config.embed_dim
        self.use_returns = config.use_returns
        self.tokens_per_step = 3 if config.use_returns else 2
        self.state_token = 1 if config.use_returns else 0  # its index within a step's tokens
        self.max_timestep = max_timestep
        self.embed_timestep = nn.Embedding(max_timestep + 1, E)
        self.embed_return = ScalarEmbedding(E) if config.use_returns else None
        self.embed_state = nn.Linear(obs_dim, E)
        self.embed_action = nn.Linear(act_dim, E)
        self.embed_ln = nn.LayerNorm(E)
        self.embed_dropout = FastDropout(config.dropout)
        self.transformer = Transformer(E, config.n_layers, config.n_heads, config.dropout,
                                       config.activation, causal=True)
        self.predict_action = nn.Sequential(nn.Linear(E, act_dim), nn.Tanh())

    def forward(self, states: torch.Tensor, actions: torch.Tensor, returns_to_go: torch.Tensor,
                timesteps: torch.Tensor, mask: torch.Tensor | None = None,
                last: int | None = None) -> torch.Tensor:
        """states (B, K, obs), actions (B, K, act), returns_to_go (B, K), timesteps (B, K),
        mask (B, K) real steps → predicted actions (B, K, act) in [-1, 1], read at the state
        tokens (``last``: only the last ``last`` steps', (B, last, act))."""
        B, K, _ = states.shape
        n = self.tokens_per_step
        time = self.embed_timestep(timesteps.clamp(0, self.max_timestep))  # (B, K, E)
        parts = [self.embed_state(states) + time, self.embed_action(actions) + time]
        if self.use_returns:
            parts.insert(0, self.embed_return(returns_to_go.unsqueeze(-1)) + time)
        tokens = torch.stack(parts, dim=2).reshape(B, n * K, -1)  # (B, nK, E): R_0 s_0 a_0 R_1 …
        x = self.embed_dropout(self.embed_ln(tokens))
        token_mask = None if mask is None else mask.repeat_interleave(n, dim=1)  # (B, nK)
        read = torch.arange(self.state_token, n * K, n, device=x.device)  # the s_t tokens
        if last is not None:
            read = read[-last:]
        return self.predict_action(self.transformer(x, token_mask, outputs=read))


@dataclass(frozen=True)
class TargetReturn(Condition):
    """DT's evaluation setting: the return-to-go an episode starts from (reward units)."""

    value: float

    @property
    def label(self) -> str:
        return f"target={target_label(self.value)}"


class History:
    """The current episodes of ``n`` envs that started together: states (normalized), actions
    (in [-1, 1]) and scaled returns-to-go, with ``pad = K`` zero slots in front so that step t
    is slot ``t + pad`` and its window, slots ``t + 1 .. t + pad``, is left-padded early in an
    episode exactly like a training window."""

    def __init__(self, n: int, horizon: int, context: int, obs_dim: int, act_dim: int,
                 target: float, device: torch.device) -> None:
        self.pad = context
        self.states = torch.zeros(n, self.pad + horizon, obs_dim, device=device)
        self.actions = torch.zeros(n, self.pad + horizon, act_dim, device=device)
        self.returns = torch.zeros(n, self.pad + horizon, device=device)
        self.returns[:, self.pad] = target
        self.t = 0

    def slot(self) -> int:
        """The current step's slot (the last one, should an episode outrun the arrays)."""
        return min(self.t + self.pad, self.states.shape[1] - 1)


@register("dt", description="Decision Transformer, return-conditioned (Chen et al. 2021)")
@register("dt_noreturn", description="Decision Transformer without return-to-go tokens",
          defaults={"use_returns": False})
@register("dt_vicreg", description="Decision Transformer with temporal VICReg on its state embeddings",
          config=DTVICRegConfig, presets={"vicreg_weight": 0.1})
class DecisionTransformer(Algorithm):
    Config = DTConfig

    def __init__(self, config: DTConfig, spec: TaskSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.net = DecisionTransformerNet(spec.obs_dim, spec.act_dim, config,
                                          spec.max_episode_steps).to(device)
        params = list(self.net.parameters())
        self.vicreg: VICRegHead | None = None
        if vicreg_weight(config) > 0:
            self.vicreg = VICRegHead(config.embed_dim, config).to(device)
            params += list(self.vicreg.parameters())
        self.optimizer = adamw(params, config.lr, config.weight_decay)
        warmup = max(1, config.warmup_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup))

    # -- training -------------------------------------------------------------------------
    def sample(self, sampler: Sampler) -> dict[str, np.ndarray]:
        return sampler.windows(self.config.batch_size, self.config.context_len)

    def update(self, batch: dict[str, np.ndarray], step: int) -> dict[str, float]:
        if not self.net.training:  # (switched back after an evaluation; it walks every module)
            self.net.train()
        # The squared action error summed over real tokens, divided by their count in the whole
        # batch: a sum over rows, so ``backward`` may split the batch into shards.
        tokens = float(batch["mask"].sum())
        stats: dict[str, float] = {}
        if self.vicreg is None:
            mse = self.backward(lambda rows: self.action_error(batch, rows)[0] / tokens,
                                len(batch["mask"]), list(self.net.parameters()))
        else:  # VICReg's batch statistics do not split into shards
            error, states, mask = self.action_error(batch, slice(None))
            mse = error / tokens
            aux, stats = self.vicreg_loss(states, mask)
            self.optimizer.zero_grad(set_to_none=True)
            (mse + self.config.vicreg_weight * aux).backward()
        # The network's gradients only, on purpose: a VICReg projector's would take a share of
        # the published clip norm from the network (Adam scales the projector's steps anyway).
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": mse.item(), **stats, "lr": self.scheduler.get_last_lr()[0]}

    def action_error(self, batch: dict[str, np.ndarray],
                     rows: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The squared action error (mean over action dimensions) summed over the real tokens of
        the batch's ``rows``, with the normalized states (B, K, obs) and mask (B, K) of those
        rows."""
        mask = torch.as_tensor(batch["mask"][rows], device=self.device)
        states = self.normalize(self.tensor(batch["states"][rows]))
        actions = self.unit_actions(batch["actions"][rows])
        rtg = self.tensor(batch["returns_to_go"][rows]) * self.config.reward_scale
        timesteps = torch.as_tensor(batch["timesteps"][rows], device=self.device)
        pred = self.net(states, actions, rtg, timesteps, mask)  # (B, K, act)
        err = ((pred - actions) ** 2).mean(-1)  # (B, K)
        return (err * mask).sum(), states, mask

    def vicreg_loss(self, states: torch.Tensor,
                    mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Temporal VICReg on the state embeddings: pairs k steps apart inside each window (one
        k per batch, uniform in 1..vicreg_max_offset; windows never cross an episode's end),
        both real tokens. Zero where the batch has too few such pairs."""
        K = states.shape[1]
        if K < 2:
            return states.new_zeros(()), {}
        k = min(int(torch.randint(1, self.config.vicreg_max_offset + 1, ())), K - 1)
        embedded = self.net.embed_state(states)  # (B, K, E)
        both = (mask[:, :-k] > 0) & (mask[:, k:] > 0)
        if int(both.sum()) < 2:
            return states.new_zeros(()), {}
        return self.vicreg(embedded[:, :-k][both], embedded[:, k:][both])

    # -- acting ---------------------------------------------------------------------------
    def eval_conditions(self) -> list[Condition]:
        if not self.config.use_returns:
            return [DEFAULT]
        return [TargetReturn(float(r))
                for r in self.config.target_returns or default_target_returns(self.spec)]

    def initial_state(self, num_envs: int, condition: Condition = DEFAULT) -> History:
        check_condition(condition, TargetReturn)
        target = condition.value if isinstance(condition, TargetReturn) else 0.0
        return History(num_envs, self.spec.max_episode_steps + 1, self.config.context_len,
                       self.spec.obs_dim, self.spec.act_dim, target * self.config.reward_scale,
                       self.device)

    @row_invariant_act
    def act(self, observations: np.ndarray, state: History) -> tuple[np.ndarray, History]:
        """The action read at the newest state token of each env's last K steps, padded and
        masked early in an episode as training windows are. The trailing a_t token is a
        placeholder that the causal state query before it never reads."""
        K, n = self.config.context_len, len(observations)
        j = state.slot()
        state.states[:, j] = self.normalize(self.tensor(observations))
        if self.net.training:  # switched once per evaluation, not per step
            self.net.eval()
        window = slice(j - K + 1, j + 1)
        steps = torch.arange(j - K + 1 - state.pad, j + 1 - state.pad, device=self.device)
        mask = None if steps[0] >= 0 else (steps >= 0).expand(n, K)
        pred = self.net(state.states[:, window], state.actions[:, window],
                        state.returns[:, window], steps.clamp(min=0).expand(n, K), mask,
                        last=1)[:, 0]  # (n, act)
        state.actions[:, j] = pred
        state.t += 1
        return self.env_actions(pred), state

    def observe(self, state: History, actions: np.ndarray, rewards: np.ndarray) -> History:
        j = state.slot()  # the next step's slot (act has advanced t)
        scaled = self.tensor(rewards) * self.config.reward_scale
        state.returns[:, j] = state.returns[:, j - 1] - scaled
        return state
