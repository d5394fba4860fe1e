"""The contract every algorithm implements; the run loop and evaluator only speak this.

Offline algorithms (``@register(..., kind="offline")``) implement ``sample(sampler)`` and
``update(batch)``; online ones (``kind="online"``) ``setup(make_env, seed)``,
``train_iteration()`` and the ``env_steps`` counter. All implement batched ``act`` (many envs at
once), ``state_dict`` / ``load_state_dict`` (everything ``--resume`` needs) and may export a
standalone policy.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from bench.data.sampler import DatasetSpec, Sampler


class Algorithm:
    Config: ClassVar[type]
    # True where an env's actions are bit-for-bit the same whatever other envs share the batch
    # (and however many torch threads run it): only then may evaluation shard the episodes over
    # processes and still return the same numbers (``bench.evaluate``). A plain MLP policy is
    # not: the GEMM kernel, and so the last bits, depend on the batch's row count and the thread
    # count; decorating ``act`` with ``bench.nn.layers.row_invariant_act`` makes it so.
    batch_invariant_act: ClassVar[bool] = False
    # The kinds of observation and action space the algorithm takes (``bench.spaces.space_kind``):
    # a run on data or an env with another kind is refused before anything is written, and the
    # refusal lists the algorithms that declare that kind. Every built-in one takes flat vectors
    # and continuous actions.
    accepts_observations: ClassVar[tuple[str, ...]] = ("vector",)
    accepts_actions: ClassVar[tuple[str, ...]] = ("box",)

    def __init__(self, config: Any, spec: DatasetSpec, device: torch.device) -> None:
        self.config = config
        self.spec = spec
        self.device = device
        self.obs_mean = torch.as_tensor(spec.obs_mean, device=device)
        self.obs_std = torch.as_tensor(spec.obs_std, device=device)
        # Policies learn and act in [-1, 1] per action dimension; ``act_scale`` and
        # ``act_shift`` map that to the env's action box and back.
        self.act_scale = self.tensor((spec.action_high - spec.action_low) / 2)
        self.act_shift = self.tensor((spec.action_high + spec.action_low) / 2)

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
        """Draw the batch this algorithm trains on (transitions, windows or goal pairs)."""
        raise NotImplementedError

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One gradient step; returns scalar losses/metrics."""
        raise NotImplementedError

    # -- training (online) ----------------------------------------------------------------
    env_steps: int = 0  # env steps taken so far: the online loop's unit of progress

    def setup(self, make_env: Any, seed: int) -> None:
        """Make the training envs (``make_env()`` makes one) and reset them from ``seed``."""
        raise NotImplementedError

    def train_iteration(self) -> dict[str, float]:
        """One rollout and its update; advances ``env_steps``; returns scalar metrics."""
        raise NotImplementedError

    # -- acting ---------------------------------------------------------------------------
    def eval_conditions(self) -> list[str]:
        """Named evaluation settings (DT: one per target return); the first is the headline."""
        return ["default"]

    def initial_state(self, num_envs: int, condition: str = "default") -> Any:
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

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------
    def tensor(self, array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(array, dtype=dtype, device=self.device)

    def normalize(self, observations: torch.Tensor) -> torch.Tensor:
        return (observations - self.obs_mean) / self.obs_std
