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
from bench.config import TrainConfig, positive
from bench.data.sampler import DatasetSpec, Sampler, default_target_returns, target_label
from bench.nn import CausalTransformer, FastDropout
from bench.nn.transformer import transformer_problems
from bench.nn.layers import ACT_ROW_MULTIPLE, ScalarEmbedding, row_padded_linear
from bench.nn.optim import adamw
from bench.nn.parallel import sharded_backward
from bench.nn.vicreg import VICRegFields, VICRegHead
from bench.registry import register


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

    UNBOUNDED_OK: ClassVar[tuple[str, ...]] = ("grad_clip",)  # inf: no clipping
    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"num_updates": 10, "batch_size": 8, "context_len": 5, "embed_dim": 32,
                  "n_layers": 1, "warmup_steps": 5, "log_every": 2, "checkpoint_every": 5},
        "quick": {"num_updates": 3_000, "warmup_steps": 300, "log_every": 100,
                  "checkpoint_every": 500},
    }

    def problems(self) -> list[str]:
        return super().problems() + transformer_problems(self) + positive(self, "reward_scale")


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

    def embed(self, states: torch.Tensor, actions: torch.Tensor, returns_to_go: torch.Tensor,
              timesteps: torch.Tensor, pad_rows: int = 0) -> torch.Tensor:
        """(B, K, ·) inputs → the transformer's input tokens (B, K, tokens_per_step, E)."""
        time = self.embed_timestep(timesteps.clamp(0, self.max_timestep))
        state = row_padded_linear(states, self.embed_state.weight, self.embed_state.bias, pad_rows)
        action = row_padded_linear(actions, self.embed_action.weight, self.embed_action.bias,
                                   pad_rows)
        parts = [state + time, action + time]
        if self.use_returns:
            parts.insert(0, self.embed_return(returns_to_go.unsqueeze(-1)) + time)
        return self.embed_dropout(self.embed_ln(torch.stack(parts, dim=2)))

    def forward(self, states: torch.Tensor, actions: torch.Tensor, returns_to_go: torch.Tensor,
                timesteps: torch.Tensor, mask: torch.Tensor | None = None,
                last: int | None = None) -> torch.Tensor:
        """(B, K, ·) inputs → predicted actions (B, K, act_dim) read at the state tokens
        (``last``: only the last ``last`` steps' predictions, (B, last, act_dim))."""
        B, K, _ = states.shape
        n = self.tokens_per_step
        x = self.embed(states, actions, returns_to_go, timesteps).reshape(B, n * K, -1)
        token_mask = None if mask is None else mask.repeat_interleave(n, dim=1)
        state_tokens = torch.arange(self.state_token, n * K, n, device=x.device)
        if last is not None:
            state_tokens = state_tokens[-last:]
        return self.predict_action(self.transformer(x, token_mask, outputs=state_tokens))

    @property
    def state_token(self) -> int:
        """The state token's index within a step's tokens."""
        return 1 if self.use_returns else 0

    def first_qkv(self, tokens: torch.Tensor, pad_rows: int = 0) -> torch.Tensor:
        """The first block's Q/K/V projections of ``tokens`` (each token's depend on it alone)."""
        block = self.transformer.blocks[0]
        qkv = block.attn.qkv
        return row_padded_linear(block.ln1(tokens), qkv.weight, qkv.bias, pad_rows)

    def act_forward(self, tokens: torch.Tensor, qkv: torch.Tensor,
                    token_mask: torch.Tensor | None, pad_rows: int) -> torch.Tensor:
        """The action at the last state token of windows ``tokens`` (B, L, E) whose first-block
        projections ``qkv`` are already known: (B, act_dim) in [-1, 1], not yet scaled to the
        env's action range."""
        L = tokens.shape[1]
        query = torch.tensor([L - self.tokens_per_step + self.state_token], device=tokens.device)
        hidden = self.transformer(tokens, token_mask, outputs=query, first_qkv=qkv,
                                  pad_rows=pad_rows)[:, 0]
        head = self.predict_action[0]
        return self.predict_action[1](row_padded_linear(hidden, head.weight, head.bias, pad_rows))


class _TokenWindow:
    """Each env's transformer input tokens for its last ``context`` steps plus the action token
    before them, with their first-block Q/K/V projections, contiguous so that a window is a
    slice. Acting appends only the tokens that are new each step, which saves embedding and
    projecting the rest of the window again (≈11% of an action's FLOPs). The buffer holds
    ``context + spare`` steps and moves the live window to its front when full (one copy every
    ``spare`` steps)."""

    def __init__(self, n: int, context: int, tokens_per_step: int, embed_dim: int,
                 device: torch.device, spare: int = 256) -> None:
        spare = max(spare, context)  # so a move never overlaps itself
        self.context, self.per_step = context, tokens_per_step
        self.capacity = context + spare
        size = 1 + tokens_per_step * self.capacity  # the leading 1: the action before a window
        # Zeros, not garbage: unfilled slots are padding, hidden from every real query, and a
        # hidden key still multiplies its value by an exact 0, which must not be inf or NaN.
        self.tokens = torch.zeros(n, size, embed_dim, device=device)
        self.qkv = torch.zeros(n, size, 3 * embed_dim, device=device)
        self.base = 0  # the history slot whose first token sits at buffer index 1

    def start(self, j: int) -> int:
        """Buffer index of history slot ``j``'s first token; ``j`` is the newest slot, and the
        window is moved to the buffer's front first if ``j`` is past the end."""
        if j - self.base >= self.capacity:
            first = j - self.context + 1  # the oldest slot that stays in the window
            src = (first - self.base) * self.per_step  # from the action token before it
            width = 1 + (self.context - 1) * self.per_step
            for buf in (self.tokens, self.qkv):
                buf[:, :width] = buf[:, src:src + width]
            self.base = first
        return 1 + (j - self.base) * self.per_step

    def window(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens and projections of the ``context`` steps ending at history slot ``j``."""
        end = self.start(j) + self.per_step
        begin = end - self.context * self.per_step
        return self.tokens[:, begin:end], self.qkv[:, begin:end]


class _History:
    """Per-env episode history for acting; all envs in one evaluation round start together.

    Arrays carry ``pad = context`` zero slots in front, so step t is slot ``t + pad`` and its
    window, slots ``t + 1 .. t + pad``, is left-padded and masked early in the episode exactly
    like training windows; slot ``t`` (the action before the window) always exists.
    """

    def __init__(self, n: int, horizon: int, context: int, obs_dim: int, act_dim: int,
                 target: float, device: torch.device, tokens_per_step: int,
                 embed_dim: int) -> None:
        self.pad = context
        self.states = torch.zeros(n, self.pad + horizon, obs_dim, device=device)
        self.actions = torch.zeros(n, self.pad + horizon, act_dim, device=device)
        self.returns = torch.zeros(n, self.pad + horizon, device=device)
        self.returns[:, self.pad] = target
        self.context = context
        self.t = 0
        self.window = _TokenWindow(n, context, tokens_per_step, embed_dim, device)

    def slot(self) -> int:
        """The current step's slot (the last one, should an episode outrun the arrays)."""
        return min(self.t + self.pad, self.states.shape[1] - 1)


@register("dt", description="Decision Transformer, return-conditioned (Chen et al. 2021)")
@register("dt_noreturn", description="Decision Transformer without return-to-go tokens",
          defaults={"use_returns": False})
@register("dt_vicreg", description="Decision Transformer with temporal VICReg on its state embeddings",
          presets={"vicreg_weight": 0.1})
class DecisionTransformer(Algorithm):
    Config = DTConfig
    batch_invariant_act = True  # see ``act``: ACT_ROW_MULTIPLE

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

    # -- training -------------------------------------------------------------------------
    def sample(self, sampler: Sampler) -> dict[str, np.ndarray]:
        return sampler.windows(self.config.batch_size, self.config.context_len)

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        if not self.net.training:
            self.net.train()
        # The loss is the squared action error summed over real tokens, divided by their count
        # in the whole batch, so its shards' shares add up to it (up to float rounding).
        tokens = float(batch["mask"].sum())
        self.optimizer.zero_grad(set_to_none=True)
        stats: dict[str, float] = {}
        if self.vicreg is None and self.device.type == "cpu":
            mse = sharded_backward(lambda rows: self._action_error(batch, rows)[0] / tokens,
                                   len(batch["mask"]), list(self.net.parameters()))
        else:  # VICReg's batch statistics do not split into shards; accelerators need no shards
            error, states, mask = self._action_error(batch, slice(None))
            mse = loss = error / tokens
            if self.vicreg is not None:
                loss, stats = self._with_vicreg(mse, states, mask)
            loss.backward()
        # The network's gradients only, on purpose: a VICReg projector's would take a share of
        # the published clip norm from the network (Adam scales the projector's steps anyway).
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": mse.item(), **stats, "lr": self.scheduler.get_last_lr()[0]}

    def _action_error(self, batch: dict[str, np.ndarray],
                      rows: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The squared action error (mean over action dimensions) summed over the real tokens of
        the batch's ``rows``, with the normalized states and the mask of those rows."""
        mask = torch.as_tensor(batch["mask"][rows], device=self.device)
        states = self.normalize(self.tensor(batch["states"][rows]))
        actions = (self.tensor(batch["actions"][rows]) - self.act_shift) / self.act_scale
        rtg = self.tensor(batch["returns_to_go"][rows]) * self.config.reward_scale
        timesteps = torch.as_tensor(batch["timesteps"][rows], device=self.device)
        pred = self.net(states, actions, rtg, timesteps, mask)
        err = ((pred - actions) ** 2).mean(-1)
        return (err * mask).sum(), states, mask

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
        return [f"target={target_label(r)}" for r in targets]

    def initial_state(self, num_envs: int, condition: str = "default") -> _History:
        target = float(condition.split("=")[1]) if condition.startswith("target=") else 0.0
        return _History(num_envs, self.spec.max_episode_steps + 1, self.config.context_len,
                        self.spec.obs_dim, self.spec.act_dim, target * self.config.reward_scale,
                        self.device, self.net.tokens_per_step, self.config.embed_dim)

    @torch.inference_mode()
    def act(self, observations: np.ndarray, state: _History) -> tuple[np.ndarray, _History]:
        """The action read at the newest state token of each env's last K steps (padded and
        masked early in the episode, like training windows). Computed incrementally, but the
        same maths as ``net(...)[:, -1]`` on that window: the tokens new since the last step
        (a_{t-1}, R_t, s_t) are embedded and projected for the first block once and kept; the
        trailing a_t slot, which no earlier token reads, is left as it is; the last block
        computes only the one query that is read.

        Products over a few rows per env are padded to ACT_ROW_MULTIPLE rows, so an env's
        action has the same bits whatever the batch (``row_padded_linear``): vectorized,
        sharded and sequential evaluation return identical episodes."""
        K, net, n = state.context, self.net, len(observations)
        j = state.slot()
        state.states[:, j] = self.normalize(self.tensor(observations))
        if net.training:  # switched once per evaluation, not per step (it walks every module)
            net.eval()
        steps = torch.arange(j - 1 - state.pad, j + 1 - state.pad, device=self.device)
        new = net.embed(state.states[:, j - 1:j + 1], state.actions[:, j - 1:j + 1],
                        state.returns[:, j - 1:j + 1], steps.clamp(min=0).expand(n, 2),
                        ACT_ROW_MULTIPLE)
        fresh = torch.cat([new[:, 0, -1:], new[:, 1, :-1]], dim=1)  # a_{t-1}; R_t, s_t
        start = state.window.start(j) - 1  # a_{t-1} sits just before step t's tokens
        state.window.tokens[:, start:start + fresh.shape[1]] = fresh
        state.window.qkv[:, start:start + fresh.shape[1]] = net.first_qkv(fresh, ACT_ROW_MULTIPLE)
        tokens, projections = state.window.window(j)
        token_mask = None
        if j - K + 1 < state.pad:  # the window still reaches into the padding
            real = torch.arange(j - K + 1, j + 1, device=self.device) >= state.pad
            token_mask = real.repeat_interleave(net.tokens_per_step).expand(n, -1)
        pred = net.act_forward(tokens, projections, token_mask, ACT_ROW_MULTIPLE)
        state.actions[:, j] = pred
        state.t += 1
        return (pred * self.act_scale + self.act_shift).cpu().numpy(), state

    def observe(self, state: _History, actions: np.ndarray, rewards: np.ndarray) -> _History:
        j = state.slot()  # the next step's slot (act has advanced t)
        scaled = self.tensor(rewards) * self.config.reward_scale
        state.returns[:, j] = state.returns[:, j - 1] - scaled
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
