"""The contract every algorithm implements; the run loop and evaluator only speak this.

Offline algorithms (``@register(..., kind="offline")``) implement ``sample(sampler)`` and
``update(batch, step)``; online ones (``kind="online"``) ``setup(make_env, seed)``,
``train_iteration()`` and the ``env_steps`` counter. All implement batched ``act`` (many envs at
once) and may export a standalone policy. Checkpoint state is collected from the attributes
that have one (modules, optimizers, schedulers, running statistics); an algorithm adds what
else ``--resume`` needs by extending ``state_dict`` / ``load_state_dict``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from bench.data.sampler import TaskSpec, Sampler
from bench.nn.parallel import sharded_backward


@dataclass(frozen=True)
class Condition:
    """One evaluation setting of a trained agent. Algorithms with several (DT's target returns,
    an IDM's goal sources) subclass it with typed fields; ``label`` names it in result.json."""

    @property
    def label(self) -> str:
        return "default"

    def __str__(self) -> str:
        return self.label


DEFAULT = Condition()


def check_condition(condition: Condition, *kinds: type) -> None:
    """A TypeError unless ``condition`` is the default or one of ``kinds`` (an algorithm's own
    conditions): a string such as ``"target=3600"`` would otherwise act as the default."""
    if type(condition) is not Condition and not isinstance(condition, kinds):
        raise TypeError(f"evaluation condition {condition!r} is neither the default nor one of "
                        f"{', '.join(k.__name__ for k in kinds)}")


class Algorithm:
    Config: ClassVar[type]
    # The kinds of observation and action space the algorithm takes (``bench.spaces.space_kind``):
    # a run on data or an env with another kind is refused before anything is written, and the
    # refusal lists the algorithms that declare that kind. Every built-in one takes flat vectors
    # and continuous actions.
    accepts_observations: ClassVar[tuple[str, ...]] = ("vector",)
    accepts_actions: ClassVar[tuple[str, ...]] = ("box",)
    # True for goal-conditioned algorithms that act on a goal task's [observation, goal] rows
    # (TaskSpec.goal_dim); the others are given the observation part (bench.run).
    uses_task_goals: ClassVar[bool] = False
    # The metrics.jsonl key of the loss ``bench report`` draws as a run's training curve where
    # the run logged no evaluations (the critics' TD loss for actor-critic methods).
    training_loss: ClassVar[str] = "loss"

    def __init__(self, config: Any, spec: TaskSpec, device: torch.device) -> None:
        self.config = config
        self.spec = spec
        self.device = device
        self.obs_mean = torch.as_tensor(spec.obs_mean, device=device)
        self.obs_std = torch.as_tensor(spec.obs_std, device=device)
        # Policies learn and act in [-1, 1] per action dimension; ``act_scale`` and
        # ``act_shift`` map that to the env's action box and back.
        self.act_scale = self.tensor((spec.action_high - spec.action_low) / 2)
        self.act_shift = self.tensor((spec.action_high + spec.action_low) / 2)

    @property
    def batch_invariant_act(self) -> bool:
        """True where an env's actions are bit-for-bit the same whatever other envs share the
        batch and however many torch threads compute them: only then may evaluation shard the
        episodes over processes and still return the same numbers (``bench.evaluate``). An
        ``act`` decorated with ``bench.nn.layers.row_invariant_act`` is."""
        return getattr(type(self).act, "row_invariant", False)

    @classmethod
    def check_task(cls, config: Any, spec: TaskSpec) -> None:
        """Refuse, with a UsageError naming what it needs, a task this algorithm cannot run (a
        goal-conditioned learner on an env without goals): ``bench run`` asks before it writes
        anything, so a refused run leaves no directory behind."""

    @classmethod
    def check_data(cls, config: Any, flat: Any) -> None:
        """Refuse, with a UsageError naming the fix, data this config cannot train on (``flat``:
        the dataset's arrays, ``bench.data.FlatDataset``); asked before anything is written."""

    @classmethod
    def takes_task_goals(cls, config: Any) -> bool:
        """Whether, with ``config``, the algorithm acts on a goal task's [observation, goal] rows
        (``uses_task_goals``, asked before the algorithm is built)."""
        return bool(cls.uses_task_goals)

    @classmethod
    def dataset_use(cls, config: Any) -> str:
        """Whether an *online* algorithm reads ``--dataset``'s transitions (through
        ``attach_dataset``): "none" (it only uses the dataset's env), "optional" or "required".
        Offline algorithms always do."""
        return "none"

    # -- training (offline) ---------------------------------------------------------------
    def attach_dataset(self, sampler: Sampler) -> None:
        """Called once with the training data before training and evaluation (also on resume):
        for what acting needs from the dataset itself, e.g. an index of goal states."""

    def sample(self, sampler: Sampler) -> dict[str, np.ndarray]:
        """Draw the batch this algorithm trains on: by default ``config.batch_size`` uniformly
        drawn transitions (s, a, r, s', terminal); DT draws windows, the IDMs goal pairs."""
        return sampler.transitions(self.config.batch_size)

    def update(self, batch: dict[str, np.ndarray], step: int) -> dict[str, float]:
        """Gradient step number ``step`` (0, 1, …; resumed runs continue the count); returns
        scalar losses and metrics."""
        raise NotImplementedError

    def backward(self, loss_of_rows: Callable[[slice], torch.Tensor], rows: int,
                 params: list[torch.Tensor]) -> torch.Tensor:
        """Set ``params``' gradients to those of ``loss_of_rows(slice(None))``, the batch's loss,
        and return it (detached). ``loss_of_rows(rows)`` must be the share of the loss that a
        slice of the batch's ``rows`` rows contributes (a sum over rows divided by a whole-batch
        constant): on the CPU the batch is then split into shards computed side by side, one per
        core (``bench.nn.parallel``: 9% faster per DT update on 2 cores, same numbers at 1-3
        threads). A loss with batch statistics does not split: compute it and call
        ``loss.backward()`` instead."""
        if self.device.type == "cpu":
            return sharded_backward(loss_of_rows, rows, params)
        loss = loss_of_rows(slice(None))  # in one piece: the same gradients, only of params
        for param, grad in zip(params, torch.autograd.grad(loss, params, allow_unused=True)):
            param.grad = grad
        return loss.detach()

    # -- training (online) ----------------------------------------------------------------
    env_steps: int = 0  # env steps taken so far: the online loop's unit of progress

    def setup(self, make_env: Any, seed: int) -> None:
        """Make the training envs (``make_env()`` makes one) and reset them from ``seed``."""
        raise NotImplementedError

    def train_iteration(self) -> dict[str, float]:
        """One rollout and its update; advances ``env_steps``; returns scalar metrics."""
        raise NotImplementedError

    # -- acting ---------------------------------------------------------------------------
    def eval_conditions(self) -> list[Condition]:
        """The settings the final evaluation runs (DT: one per target return); the first is
        the headline score."""
        return [DEFAULT]

    def initial_state(self, num_envs: int, condition: Condition = DEFAULT) -> Any:
        """Per-episode policy state for ``num_envs`` envs starting together (None if stateless)."""
        return None

    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """Deterministic actions for a batch of observations (n, obs_dim) -> (n, act_dim)."""
        raise NotImplementedError

    def observe(self, state: Any, actions: np.ndarray, rewards: np.ndarray) -> Any:
        """Tell a stateful policy what its actions earned (DT updates its return-to-go)."""
        return state

    # -- persistence ----------------------------------------------------------------------
    def export_policy(self) -> dict[str, Any]:
        """A standalone, acting-only description of the policy (see ``bench.policies``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot export a standalone policy")

    def stateful_parts(self) -> Iterator[tuple[str, Any]]:
        """The attributes a checkpoint keeps, by name: every one with a ``state_dict`` and a
        ``load_state_dict`` (modules, optimizers, schedulers, running statistics, goal
        setters), in the order they were set; unset (None) ones are skipped."""
        for name, value in vars(self).items():
            if isinstance(value, torch.nn.Parameter):
                raise TypeError(f"{type(self).__name__}.{name} is a bare nn.Parameter, which "
                                "checkpoints would leave out: hold it in a module or an "
                                "nn.ParameterDict")
            # The sampler an online algorithm may hold is the run's, checkpointed by the run.
            if name not in ("config", "spec") and not isinstance(value, Sampler) \
                    and hasattr(value, "state_dict") and hasattr(value, "load_state_dict"):
                yield name, value

    def state_dict(self) -> dict[str, Any]:
        """Everything ``--resume`` needs to continue bit for bit."""
        return {name: part.state_dict() for name, part in self.stateful_parts()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, part in self.stateful_parts():
            part.load_state_dict(state[name])

    # -- helpers --------------------------------------------------------------------------
    def tensor(self, array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(array, dtype=dtype, device=self.device)

    def normalize(self, observations: torch.Tensor) -> torch.Tensor:
        return (observations - self.obs_mean) / self.obs_std

    def unit_actions(self, actions: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Env actions → the [-1, 1] units policies learn in."""
        return (self.tensor(actions) - self.act_shift) / self.act_scale

    def env_actions(self, unit: torch.Tensor) -> np.ndarray:
        """[-1, 1] policy outputs → env actions."""
        return (unit * self.act_scale + self.act_shift).cpu().numpy()
