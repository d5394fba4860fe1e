"""Transformer inverse dynamics over (s_0, a_0, s_1, a_1, …, s_K): causal and masked variants.

Both read windows of K + 1 consecutive states and the K actions between them (K = ``context_len``,
20 by default, DT's size: embed 128, 3 layers, 1 head, dropout 0.1); a window ends at a uniformly
drawn action, and s_K is the state it led to (the episode's final observation for its last action). Tokens are linear embeddings
plus a learned embedding of their position in the window (no episode timestep: reaching a state
does not depend on the clock).

``transformer_idm`` (causal): tokens ``[g, s_0, a_0, s_1, a_1, …, s_{K-1}, a_{K-1}]`` with the goal
token ``g = s_K`` in front, causal attention; a_j is predicted at the s_j token, so it sees the goal,
the states up to s_j and the actions before it. Window position j's goal lies K - j steps ahead, so
to act with a goal k steps ahead the current state is placed at position K - k: the model reads
the last K - k + 1 steps of history (left-padded early in an episode, as in training).

``transformer_idm_masked``: tokens ``[s_0, a_0, …, s_{K-1}, a_{K-1}, s_K]`` with *bidirectional*
attention. Each training window draws ``mask_pos`` uniformly in 0..K-1 and replaces every token
from state ``mask_pos`` onward by a learned mask token, except the final state s_K; the loss is
the MSE of the masked actions, predicted at their own tokens. The model must infer the actions
that lead from the visible past to s_K. To act with a goal k steps ahead, the last K - k steps are
the visible past, the next k steps are masked and the goal is s_K; the action is read at the
first masked action token. As in training, the state at ``mask_pos`` — the current state when
acting — is masked: the model infers it from the last visible state and action, which is why the
causal variant (which does see the current state) is the default of the family.
``--set mask_current_state=false`` keeps s_{mask_pos} visible (masking starts at a_{mask_pos}),
so the masked model acts on the current state too; the research notes' variant is the default.
Measured: with the default the masked model acts one step behind and falls
(reports/quick-idm-table/).

The goal comes from a goal source (``bench.goals``: ``dataset``, ``learned`` or ``self``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from bench.algorithm import DEFAULT, Algorithm, Condition
from bench.data.sampler import TaskSpec, Sampler
from bench.goals import GoalConfig, GoalSetter, GoalState, check_goal_sources
from bench.nn import FastDropout, Transformer
from bench.nn.transformer import transformer_checks
from bench.nn.optim import adamw
from bench.registry import register


@dataclass
class TransformerIDMConfig(GoalConfig):
    num_updates: int = 100_000  # gradient steps
    batch_size: int = 64  # windows per update
    context_len: int = 20  # K: windows hold s_0..s_K and a_0..a_{K-1}
    embed_dim: int = 128  # token width
    n_layers: int = 3  # transformer blocks
    n_heads: int = 1  # attention heads per block
    dropout: float = 0.1  # dropout on embeddings, attention weights and residual branches
    activation: Literal["relu", "gelu"] = "relu"  # the blocks' MLP non-linearity
    lr: float = 1e-4  # AdamW's peak learning rate
    weight_decay: float = 1e-4  # AdamW's weight decay
    warmup_steps: int = 10_000  # linear learning-rate warm-up
    grad_clip: float = 0.25  # gradient norm clip (inf: none)
    masked: bool = False  # the masked variant: bidirectional, actions masked up to s_K
    # masked: True masks from s_{mask_pos} (the notes' variant); False from a_{mask_pos}, leaving
    # the state at mask_pos (the current state when acting) visible.
    mask_current_state: bool = True
    log_every: int = 500  # write a metrics line every N updates
    checkpoint_every: int = 5_000  # atomic checkpoint every N updates

    UNBOUNDED_OK: ClassVar[tuple[str, ...]] = ("grad_clip",)  # inf: no clipping
    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"num_updates": 10, "batch_size": 8, "context_len": 6, "embed_dim": 32,
                  "n_layers": 1, "warmup_steps": 5, "log_every": 2, "checkpoint_every": 5,
                  "goal_batch_size": 32, "goal_offset": 3},
        "quick": {"num_updates": 3_000, "warmup_steps": 300, "log_every": 100,
                  "checkpoint_every": 500},
    }

    def checks(self) -> list[str]:
        out = transformer_checks(self)
        if self.goal_offset > self.context_len:  # (>= 1 is GoalConfig's check)
            out.append(f"goal_offset must be in 1..context_len ({self.context_len}) for a "
                       f"transformer IDM, got {self.goal_offset}")
        if not self.masked and not self.mask_current_state:
            out.append("mask_current_state applies to the masked variant only (use --algo "
                       "transformer_idm_masked --set mask_current_state=false)")
        return out


def hidden_steps(mask_pos: torch.Tensor, context: int) -> torch.Tensor:
    """(B,) mask positions → (B, K) bool: step j's state and action are masked iff j >= mask_pos."""
    return torch.arange(context, device=mask_pos.device)[None, :] >= mask_pos[:, None]


def hidden_states(hidden: torch.Tensor, mask_current_state: bool = True) -> torch.Tensor:
    """(B, K) masked steps (their actions) → (B, K) masked states: the same steps, or with
    ``mask_current_state=False`` every step after the first masked one (s_{mask_pos} visible)."""
    if mask_current_state:
        return hidden
    return torch.cat([torch.zeros_like(hidden[:, :1]), hidden[:, :-1]], dim=1)


def masked_token_layout(hidden: torch.Tensor, mask_current_state: bool = True) -> torch.Tensor:
    """(B, K) masked steps → (B, 2K + 1) bool over tokens [s_0, a_0, …, s_{K-1}, a_{K-1}, s_K]:
    True where a token is replaced by the mask token (never the final state)."""
    tokens = torch.stack([hidden_states(hidden, mask_current_state), hidden], dim=2).flatten(1)
    return torch.cat([tokens, torch.zeros_like(hidden[:, :1])], dim=1)


class TransformerIDMNet(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, config: TransformerIDMConfig) -> None:
        super().__init__()
        E, K = config.embed_dim, config.context_len
        self.masked = config.masked
        self.mask_current_state = config.mask_current_state
        self.embed_state = nn.Linear(obs_dim, E)
        self.embed_action = nn.Linear(act_dim, E)
        self.embed_goal = None if config.masked else nn.Linear(obs_dim, E)
        self.mask_state = nn.Parameter(torch.zeros(E)) if config.masked else None
        self.mask_action = nn.Parameter(torch.zeros(E)) if config.masked else None
        self.embed_position = nn.Embedding(2 * K + 1, E)
        self.embed_ln = nn.LayerNorm(E)
        self.embed_dropout = FastDropout(config.dropout)
        self.transformer = Transformer(E, config.n_layers, config.n_heads, config.dropout,
                                       config.activation, causal=not config.masked)
        self.predict_action = nn.Sequential(nn.Linear(E, act_dim), nn.Tanh())

    def forward(self, states: torch.Tensor, actions: torch.Tensor, goals: torch.Tensor,
                step_mask: torch.Tensor, hidden: torch.Tensor | None = None,
                steps: torch.Tensor | None = None) -> torch.Tensor:
        """states (B, J, obs), actions (B, J, act), goals (B, obs), step_mask (B, J) real steps,
        hidden (B, J) masked steps (masked variant) → predicted normalized actions (B, J, act)
        for every step, or (B, len(steps), act) for the window steps listed in ``steps``."""
        B, J, _ = states.shape
        s, a = self.embed_state(states), self.embed_action(actions)
        if self.masked:
            s = torch.where(hidden_states(hidden, self.mask_current_state)[..., None],
                            self.mask_state, s)
            a = torch.where(hidden[..., None], self.mask_action, a)
        x = torch.stack([s, a], dim=2).reshape(B, 2 * J, -1)
        real = step_mask.repeat_interleave(2, dim=1)
        always = torch.ones(B, 1, dtype=torch.bool, device=states.device)
        if self.masked:  # [s_0, a_0, …, s_{J-1}, a_{J-1}, s_K]
            x = torch.cat([x, self.embed_state(goals)[:, None]], dim=1)
            token_mask = torch.cat([real, always], dim=1)
            read = 2 * torch.arange(J, device=x.device) + 1  # each action at its own token
        else:  # [g, s_0, a_0, …, s_{J-1}, a_{J-1}]
            x = torch.cat([self.embed_goal(goals)[:, None], x], dim=1)
            token_mask = torch.cat([always, real], dim=1)
            read = 2 * torch.arange(J, device=x.device) + 1  # each action at its state's token
        x = x + self.embed_position(torch.arange(x.shape[1], device=x.device))
        x = self.embed_dropout(self.embed_ln(x))
        if steps is not None:
            read = read[steps]
        return self.predict_action(self.transformer(x, token_mask, outputs=read))


class _History:
    """Per-env states and actions of the current episodes, with K zero slots in front and behind
    so that every window is a plain slice (left padding early in an episode, masked as in
    training; the masked variant's window reaches k - 1 steps past the present)."""

    def __init__(self, n: int, horizon: int, context: int, obs_dim: int, act_dim: int,
                 goal_state: GoalState, device: torch.device) -> None:
        self.states = torch.zeros(n, context + horizon + context, obs_dim, device=device)
        self.actions = torch.zeros(n, context + horizon + context, act_dim, device=device)
        self.pad = context
        self.horizon = horizon
        self.t = 0
        self.goal_state = goal_state


@register("transformer_idm", description="Transformer inverse dynamics, causal, goal token in front")
@register("transformer_idm_masked", description="Transformer inverse dynamics, masked actions up to s_K",
          defaults={"masked": True})
class TransformerInverseDynamics(Algorithm):
    Config = TransformerIDMConfig

    def __init__(self, config: TransformerIDMConfig, spec: TaskSpec, device: torch.device) -> None:
        super().__init__(config, spec, device)
        self.net = TransformerIDMNet(spec.obs_dim, spec.act_dim, config).to(device)
        self.optimizer = adamw(self.net.parameters(), config.lr, config.weight_decay)
        warmup = max(1, config.warmup_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup))
        self.goal_setter = GoalSetter(config, spec, device)

    @classmethod
    def check_task(cls, config: TransformerIDMConfig, spec: TaskSpec) -> None:
        check_goal_sources(config, spec)

    def attach_dataset(self, sampler: Sampler) -> None:
        self.goal_setter.attach_dataset(sampler)

    # -- training -------------------------------------------------------------------------
    def sample(self, sampler: Sampler) -> dict[str, Any]:
        # K steps and the state after the last one as s_K: every action, the episode's last
        # too, is the last before some goal (s_K can be the final observation s_T).
        return {"windows": sampler.windows(self.config.batch_size, self.config.context_len),
                "goal_model": self.goal_setter.sample(sampler)}

    def update(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        if not self.net.training:
            self.net.train()
        w, K = batch["windows"], self.config.context_len
        states = self.normalize(self.tensor(w["states"]))
        goals = self.normalize(self.tensor(w["next_state"]))
        actions = self.unit_actions(w["actions"])
        real = torch.as_tensor(w["mask"], device=self.device)
        hidden = None
        if self.config.masked:
            mask_pos = torch.randint(0, K, (len(states),), device=self.device)
            hidden = hidden_steps(mask_pos, K)
        pred = self.net(states, actions, goals, real, hidden)
        weight = real if hidden is None else real & hidden
        err = ((pred - actions) ** 2).mean(-1)
        loss = (err * weight).sum() / weight.sum().clamp(min=1)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": loss.item(), "lr": self.scheduler.get_last_lr()[0],
                **self.goal_setter.update(batch["goal_model"])}

    # -- acting ---------------------------------------------------------------------------
    def eval_conditions(self) -> list[Condition]:
        return self.goal_setter.conditions()

    def initial_state(self, num_envs: int, condition: Condition = DEFAULT) -> _History:
        return _History(num_envs, self.spec.max_episode_steps + 1, self.config.context_len,
                        self.spec.obs_dim, self.spec.act_dim,
                        self.goal_setter.initial_state(num_envs, condition), self.device)

    @property
    def uses_task_goals(self) -> bool:  # type: ignore[override]
        return self.goal_setter.uses_task_goals

    @classmethod
    def takes_task_goals(cls, config: Any) -> bool:
        return "task" in (config.goal_source, *config.extra_goal_sources)

    @torch.inference_mode()
    def act(self, observations: np.ndarray, state: _History) -> tuple[np.ndarray, _History]:
        if self.net.training:
            self.net.eval()
        observations, task_goals = self.goal_setter.split(observations)
        K, k = self.config.context_len, self.config.goal_offset
        n, now = len(observations), state.pad + min(state.t, state.horizon - 1)
        state.states[:, now] = self.normalize(self.tensor(observations))
        goals = self.normalize(self.tensor(self.goal_setter.goals(observations, state.goal_state,
                                                                  task_goals)))
        if self.config.masked:
            # Visible past: the K - k steps before now; steps now .. now + k - 1 masked; goal s_K.
            first = now - (K - k)
            slots = torch.arange(first, first + K, device=self.device)
            real = (slots >= state.pad).expand(n, K)
            hidden = (slots >= now).expand(n, K)
            unseen = hidden_states(hidden, self.config.mask_current_state)
            window_states = torch.where(unseen[..., None], 0.0, state.states[:, first:first + K])
            window_actions = torch.where(hidden[..., None], 0.0, state.actions[:, first:first + K])
            read = K - k
        else:
            # The current state at window position K - k (its goal is k steps ahead).
            first = now - (K - k)
            slots = torch.arange(first, now + 1, device=self.device)
            real = (slots >= state.pad).expand(n, len(slots))
            hidden = None
            window_states = state.states[:, first:now + 1]
            window_actions = state.actions[:, first:now + 1]  # the last one is not seen (causal)
            read = K - k
        pred = self.net(window_states, window_actions, goals, real, hidden,
                        steps=torch.tensor([read], device=self.device))[:, 0]
        state.actions[:, now] = pred
        state.t += 1
        return self.env_actions(pred), state

    def observe(self, state: _History, actions: np.ndarray, rewards: np.ndarray) -> _History:
        self.goal_setter.observe(state.goal_state, rewards)
        return state
