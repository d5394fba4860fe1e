"""Goal sources: what tells a goal-conditioned inverse-dynamics model (IDM) which state to reach.

An IDM maps (where I am, where I want to be) to an action; at evaluation something has to supply
"where I want to be". Every IDM in the suite takes its goals from one of these, chosen per run with
``--set goal_source=…`` and recorded in the evaluation condition of the result (``goal=dataset``,
``goal=learned,target=3600``, …):

- ``self``: the current state. Asking to stay put is not a task, so this is a sanity floor (the
  original research notes evaluated IDMs this way).
- ``dataset``: the nearest state (Euclidean, in normalized units) among the dataset's
  highest-return episodes, found with a k-d tree; the goal is that episode's state ``goal_offset``
  steps later (or its last state). The agent follows good trajectories it finds itself near.
- ``gs_ppo``: the mean goal of a goal setter trained online with reward (``bench.algos.gs_ppo``,
  a finished run named by ``goal_setter_run``), in raw state units.
- ``task``: the goal the env gives each episode, on goal tasks (``bench.envs.goal_tasks``:
  OGBench's mazes, whose goals are states). The IDM is asked to reach it directly, however far.
- ``learned``: an offline goal model (s_t, return-to-go) → s_{t+k}, a diagonal Gaussian over the
  normalized state trained on the dataset alongside the IDM. At evaluation a target return asks
  for good goals, as DT's return-to-go asks for good actions; the mean is the goal.

``goal_source`` is the run's headline; ``extra_goal_sources`` evaluates the same trained IDM with
further sources, each its own condition (``--set extra_goal_sources=dataset,self``). That is exact,
not an approximation of separate runs: the goal model draws its initial weights and its batches
from streams of its own, so the IDM trains identically whichever sources are evaluated (tested),
and one training serves every goal source.

``GoalConfig`` holds the fields every IDM config shares; ``GoalSetter`` is the object an IDM owns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from bench.algorithm import Condition, check_condition
from bench.config import TrainConfig, at_least, positive, positive_sizes
from bench.data.sampler import TaskSpec, Sampler, default_target_returns, target_label
from bench.errors import UsageError
from bench.nn import MLP
from bench.nn.optim import adamw

GOAL_SOURCES = ("self", "dataset", "learned", "gs_ppo", "task")


@dataclass
class GoalConfig(TrainConfig):
    # The best source on hopper-medium for every IDM (reports/quick-idm-table/, quick, 3 seeds).
    goal_source: Literal["self", "dataset", "learned", "gs_ppo", "task"] = "learned"
    # Further sources to evaluate the same trained IDM with, each its own result condition.
    extra_goal_sources: tuple[str, ...] = ()
    goal_offset: int = 5  # k: goals are states this many steps ahead of the current one
    goal_top_fraction: float = 0.1  # `dataset`: search the best 10% of episodes by return
    goal_hidden: tuple[int, ...] = (256, 256)  # `learned`: the goal model's MLP
    goal_lr: float = 3e-4  # `learned`: the goal model's Adam learning rate
    goal_batch_size: int = 256  # `learned`: (state, return-to-go, goal) triples per update
    goal_reward_scale: float = 0.001  # `learned`: return-to-go input scale (as DT's)
    # `learned`: evaluation targets; empty = bench.data.sampler.default_target_returns (DT's)
    target_returns: tuple[float, ...] = ()
    # `gs_ppo`: a finished goal-setter run (its directory or checkpoint.pt) that proposes goals
    goal_setter_run: str = ""

    def checks(self) -> list[str]:
        out = (at_least(self, 1, "goal_offset", "goal_batch_size")
               + positive_sizes(self, "goal_hidden") + positive(self, "goal_reward_scale"))
        if self.goal_source not in GOAL_SOURCES:
            out.append(f"goal_source must be one of {', '.join(GOAL_SOURCES)}, got "
                       f"{self.goal_source!r}")
        unknown = [s for s in self.extra_goal_sources if s not in GOAL_SOURCES]
        if unknown:
            out.append(f"unknown goal source(s) {', '.join(map(repr, unknown))} in "
                       f"extra_goal_sources; choose from {', '.join(GOAL_SOURCES)} (e.g. --set "
                       "extra_goal_sources=dataset,self)")
        if not 0.0 < self.goal_top_fraction <= 1.0:
            out.append(f"goal_top_fraction must be in (0, 1], got {self.goal_top_fraction!r}")
        if "gs_ppo" in (self.goal_source, *self.extra_goal_sources) and not self.goal_setter_run:
            out.append("goal source gs_ppo needs a trained goal setter: set goal_setter_run (e.g. "
                       "--set goal_setter_run=results/<dataset>/gs_ppo/<variant>/seed_0)")
        return out


class GoalModel(nn.Module):
    """(normalized s_t, scaled return-to-go) → mean and log-std of normalized s_{t+k}."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.net = MLP(obs_dim + 1, hidden, 2 * obs_dim)

    def forward(self, states: torch.Tensor, returns_to_go: torch.Tensor):
        out = self.net(torch.cat([states, returns_to_go[:, None]], dim=-1))
        mean, log_std = out.split(self.obs_dim, dim=-1)
        return mean, log_std.clamp(-5.0, 2.0)


@dataclass(frozen=True)
class GoalCondition(Condition):
    """An evaluation setting of an IDM: where its goals come from, and for ``learned`` goals
    the target return the goal model is conditioned on."""

    source: str
    target: float | None = None

    @property
    def label(self) -> str:
        return f"goal={self.source}" + ("" if self.target is None
                                        else f",target={target_label(self.target)}")


@dataclass
class GoalState:
    """Per-env state of a goal source during one evaluation round."""

    returns_to_go: np.ndarray | None = None  # `learned`: remaining target return, raw units
    source: str = ""  # the goal source of this round ("" = the run's goal_source)


def check_goal_sources(config: GoalConfig, spec: TaskSpec) -> None:
    """Refuse the ``task`` source on an env whose episodes come without goals that are states."""
    sources = (config.goal_source, *config.extra_goal_sources)
    if "task" in sources and spec.goal_dim != spec.obs_dim:
        raise UsageError(
            "goal source task takes the goal each episode of a goal task comes with, as a "
            "state; " + (f"{spec.env_id or 'this env'} gives no goals (use a goal task such "
                         "as pointmaze-medium-navigate)" if not spec.goal_dim else
                         f"{spec.env_id}'s goals have {spec.goal_dim} numbers, its states "
                         f"{spec.obs_dim}"))


class GoalSetter:
    """The goal source of one IDM: built from its config, fed the dataset, asked for goals."""

    def __init__(self, config: GoalConfig, spec: TaskSpec, device: torch.device) -> None:
        sources = tuple(dict.fromkeys((config.goal_source, *config.extra_goal_sources)))
        self.config = config
        self.spec = spec
        self.source = config.goal_source
        self.sources = sources
        self.device = device
        self.obs_mean = np.asarray(spec.obs_mean, np.float32)
        self.obs_std = np.asarray(spec.obs_std, np.float32)
        self._tree = None
        self.model: GoalModel | None = None
        self._rng: np.random.Generator | None = None
        if "learned" in sources:
            # Own streams for the goal model's weights and batches, derived from the run seed
            # without drawing from the global generators: the IDM's initialisation, dropout and
            # batches are then the same whether or not a goal model trains beside it.
            goal_seed = (torch.initial_seed() + 0x60A1) % 2**63
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(goal_seed)
                self.model = GoalModel(spec.obs_dim, config.goal_hidden).to(device)
            self.optimizer = adamw(self.model.parameters(), config.goal_lr)
            self._rng = np.random.default_rng(goal_seed)
        check_goal_sources(config, spec)
        self._goal_setter = None
        if "gs_ppo" in sources:  # with a goal_setter_run (GoalConfig.checks)
            from bench.algos.gs_ppo import load_goal_setter

            self._goal_setter = load_goal_setter(config.goal_setter_run)
            if self._goal_setter.obs_dim != spec.obs_dim:
                raise UsageError(f"goal_setter_run proposes {self._goal_setter.obs_dim}-d goals but "
                                 f"this dataset's states are {spec.obs_dim}-d")

    @property
    def uses_task_goals(self) -> bool:
        """Whether the IDM acts on a goal task's [observation, goal] rows (``split``)."""
        return "task" in self.sources

    def split(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(observations, task goals) of the rows an IDM acts on: a goal task's [observation,
        goal] rows where the ``task`` source is evaluated, else (rows, None)."""
        if not self.uses_task_goals:
            return rows, None
        return rows[:, :self.spec.obs_dim], rows[:, self.spec.obs_dim:]

    # -- conditions -----------------------------------------------------------------------
    def conditions(self) -> list[GoalCondition]:
        """One per source (``goal=dataset``), per target for ``learned``; the headline first."""
        out: list[GoalCondition] = []
        for source in self.sources:
            if source == "learned":
                out += [GoalCondition(source, float(r)) for r in self.targets()]
            else:
                out.append(GoalCondition(source))
        return out

    def initial_state(self, num_envs: int, condition: Condition) -> GoalState:
        """The state of a round evaluated under ``condition`` (the default condition: the
        run's ``goal_source`` and, for ``learned``, its first target)."""
        check_condition(condition, GoalCondition)
        if not isinstance(condition, GoalCondition):
            condition = GoalCondition(self.source)
        source, target = condition.source, condition.target
        if source not in self.sources:
            raise ValueError(f"condition {condition} names goal source {source!r}, which this "
                             f"run does not evaluate ({', '.join(self.sources)})")
        if source != "learned":
            return GoalState(source=source)
        target = self.targets()[0] if target is None else target
        return GoalState(np.full(num_envs, target, dtype=np.float64), source=source)

    def targets(self) -> tuple[float, ...]:
        return tuple(self.config.target_returns) or default_target_returns(self.spec)

    def observe(self, state: GoalState, rewards: np.ndarray) -> GoalState:
        if state.returns_to_go is not None:
            state.returns_to_go = state.returns_to_go - np.asarray(rewards, np.float64)
        return state

    # -- the dataset ------------------------------------------------------------------------
    def attach_dataset(self, sampler: Sampler) -> None:
        """Index the best episodes for ``dataset`` goals (a no-op for the other sources)."""
        if "dataset" not in self.sources or self._tree is not None:
            return
        from scipy.spatial import cKDTree

        flat = sampler.flat
        n_best = max(1, int(round(self.config.goal_top_fraction * flat.num_episodes)))
        # Highest return first; ties broken by episode index so the choice is deterministic.
        best = np.lexsort((np.arange(flat.num_episodes), -flat.episode_returns))[:n_best]
        starts = flat.episode_starts[best] + best  # first observation row of each episode
        lengths = flat.episode_lengths[best]
        rows = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths)])
        last = np.repeat(starts + lengths, lengths)  # the episode's final observation row
        self._goal_rows = np.minimum(rows + self.config.goal_offset, last)
        self._observations = flat.observations
        self._tree = cKDTree((flat.observations[rows] - self.obs_mean) / self.obs_std)
        self.indexed_episodes, self.indexed_states = int(n_best), int(len(rows))

    # -- goals ------------------------------------------------------------------------------
    def goals(self, observations: np.ndarray, state: GoalState,
              task_goals: np.ndarray | None = None) -> np.ndarray:
        """Raw-unit goal states (n, obs_dim) for raw observations (n, obs_dim) and, on a goal
        task, the episodes' goals (``split``)."""
        source = state.source or self.source
        if source == "task":
            if task_goals is None:
                raise RuntimeError("task goals come from a goal task's rows (GoalSetter.split)")
            return np.asarray(task_goals, np.float32)
        if source == "self":
            return np.asarray(observations, np.float32).copy()
        if source == "gs_ppo":
            return self._goal_setter(observations)
        normalized = (np.asarray(observations, np.float32) - self.obs_mean) / self.obs_std
        if source == "dataset":
            if self._tree is None:
                raise RuntimeError("dataset goals need attach_dataset(sampler) first")
            _, nearest = self._tree.query(normalized, k=1)
            return self._observations[self._goal_rows[nearest]].astype(np.float32)
        with torch.inference_mode():
            mean, _ = self.model(torch.as_tensor(normalized, device=self.device),
                                 torch.as_tensor(state.returns_to_go * self.config.goal_reward_scale,
                                                 dtype=torch.float32, device=self.device))
        return mean.cpu().numpy() * self.obs_std + self.obs_mean

    # -- training (`learned` only) ----------------------------------------------------------
    def sample(self, sampler: Sampler) -> dict[str, np.ndarray] | None:
        if self.model is None:
            return None
        return sampler.goal_pairs(self.config.goal_batch_size, self.config.goal_offset,
                                  fixed_offset=True, rng=self._rng)

    def update(self, batch: dict[str, np.ndarray] | None) -> dict[str, float]:
        """One Gaussian negative-log-likelihood step of the goal model."""
        if batch is None:
            return {}
        t = lambda a: torch.as_tensor((a - self.obs_mean) / self.obs_std, device=self.device)
        rtg = torch.as_tensor(batch["returns_to_go"] * self.config.goal_reward_scale,
                              dtype=torch.float32, device=self.device)
        mean, log_std = self.model(t(batch["observations"]), rtg)
        target = t(batch["goals"])
        nll = (0.5 * ((target - mean) / log_std.exp()) ** 2 + log_std).sum(-1).mean()
        self.optimizer.zero_grad(set_to_none=True)
        nll.backward()
        self.optimizer.step()
        return {"goal_nll": nll.item(), "goal_mse": ((mean.detach() - target) ** 2).mean().item()}

    def state_dict(self) -> dict[str, Any]:
        if self.model is None:
            return {}
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.model is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if "rng" in state:
                self._rng.bit_generator.state = state["rng"]
