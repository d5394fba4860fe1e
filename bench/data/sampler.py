"""Batches for training, drawn from flat arrays with numpy fancy indexing (no per-item Python).

Three shapes of batch: transitions (BC, Q-learning), windows of K steps ending at a uniformly drawn
step (sequence models; left-padded with a mask where the window crosses the episode start, exactly
as at evaluation time), and goal-relabelled pairs (s_t, s_{t+k}) with 1 <= k <= K inside one episode.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.data.storage import FlatEpisodes
from bench.errors import BenchError
from bench.spaces import describe, space_kind


@dataclass(frozen=True)
class TaskSpec:
    """What an algorithm is built for: observation and action sizes, action bounds, episode
    length, and normalization statistics — from a dataset (``Sampler.spec``) or, for an online
    algorithm without one, from its env (``TaskSpec.from_env``)."""

    obs_dim: int
    act_dim: int
    obs_mean: np.ndarray
    obs_std: np.ndarray
    action_low: np.ndarray
    action_high: np.ndarray
    max_episode_steps: int
    env_id: str = ""
    best_return: float | None = None  # the highest episode return in the dataset
    # A goal task's env shows [observation, goal] (bench.envs.goal_tasks): goal_dim numbers
    # after the obs_dim of the observation; 0 for envs without task goals.
    goal_dim: int = 0
    num_tasks: int = 0  # a goal task's evaluation goals (episode seeds cycle through them)

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_env(cls, env: Any) -> "TaskSpec":
        """Sizes and action bounds of ``env``, identity normalization (online algorithms keep
        their own running statistics)."""
        for role, space in (("observations", env.observation_space), ("actions", env.action_space)):
            # The arrays below exist for Box spaces only; runs check spaces first (bench.spaces).
            if space_kind(space, role) not in ("vector", "image", "box"):
                raise BenchError(f"{env.spec.id if env.spec else 'the env'} has {describe(space)} "
                                 f"{role}; only Box observations and actions are supported.")
        low = np.asarray(env.action_space.low, np.float32)
        try:
            goal_dim, num_tasks = (int(env.get_wrapper_attr("goal_dim")),
                                   int(env.get_wrapper_attr("num_tasks")))
        except AttributeError:
            goal_dim = num_tasks = 0
        obs_dim = int(np.prod(env.observation_space.shape)) - goal_dim
        max_steps = env.spec.max_episode_steps if env.spec else None
        return cls(obs_dim, int(np.prod(low.shape)), np.zeros(obs_dim, np.float32),
                   np.ones(obs_dim, np.float32), low,
                   np.asarray(env.action_space.high, np.float32), max_steps or 1000,
                   env.spec.id if env.spec else "", goal_dim=goal_dim, num_tasks=num_tasks)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TaskSpec":
        arrays = ("obs_mean", "obs_std", "action_low", "action_high")
        return cls(**{k: (np.asarray(v, dtype=np.float32) if k in arrays else v) for k, v in d.items()})


class Sampler:
    """Random batches from episodes held once as contiguous flat arrays: ``transitions``,
    K-step ``windows`` (left-padded and masked at episode starts, with returns-to-go and
    timesteps) and goal-relabelled ``goal_pairs``. Its random stream (``seed``) is saved with a
    run's checkpoints (``state_dict``), so a resumed run draws the batches it would have drawn."""

    def __init__(self, flat: FlatEpisodes, seed: int = 0) -> None:
        self.flat = flat
        self.rng = np.random.default_rng(seed)
        # Per-transition index of its episode's first transition, for window masks.
        self._ep_start_of = flat.episode_starts[flat.episode_of]
        self._ep_len_of = flat.episode_lengths[flat.episode_of]

    # -- reproducibility ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    # -- statistics -----------------------------------------------------------------------
    def spec(self, action_low: np.ndarray, action_high: np.ndarray,
             max_episode_steps: int, env_id: str = "") -> TaskSpec:
        obs = self.flat.state_observations()
        mean = obs.mean(0, dtype=np.float64).astype(np.float32)
        std = (obs.std(0, dtype=np.float64) + 1e-6).astype(np.float32)
        return TaskSpec(obs.shape[1], self.flat.actions.shape[1], mean, std,
                           np.asarray(action_low, np.float32), np.asarray(action_high, np.float32),
                           int(max_episode_steps), env_id,
                           float(np.max(self.flat.episode_returns)))

    # -- batches --------------------------------------------------------------------------
    def transitions(self, batch_size: int) -> dict[str, np.ndarray]:
        f = self.flat
        idx = self.rng.integers(0, f.num_transitions, batch_size)
        oi = f.obs_index[idx]
        return {
            "observations": f.observations[oi],
            "actions": f.actions[idx],
            "rewards": f.rewards[idx],
            "next_observations": f.observations[oi + 1],
            "terminals": f.terminations[idx].astype(np.float32),
        }

    def windows(self, batch_size: int, context: int) -> dict[str, np.ndarray]:
        """K-step windows ending at a uniformly drawn step; padding on the left (episode start).

        ``mask[b, j]`` is True for real steps; padded steps hold zeros and timestep 0.
        ``next_state[b]`` is the observation after the window's last step (the state its last
        action led to; the episode's final observation s_T when that step is the last).
        """
        f = self.flat
        end = self.rng.integers(0, f.num_transitions, batch_size)
        idx = end[:, None] + np.arange(-context + 1, 1)[None, :]  # (B, K)
        mask = idx >= self._ep_start_of[end][:, None]
        idx = np.where(mask, idx, end[:, None])  # any valid index; zeroed below
        oi = f.obs_index[idx]
        states = f.observations[oi]
        actions = f.actions[idx]
        states[~mask] = 0.0
        actions[~mask] = 0.0
        return {
            "states": states,
            "actions": actions,
            "returns_to_go": np.where(mask, f.returns_to_go[idx], 0.0).astype(np.float32),
            "timesteps": np.where(mask, f.timesteps[idx], 0).astype(np.int64),
            "mask": mask,
            "next_state": f.observations[f.obs_index[end] + 1],
        }

    def goal_pairs(self, batch_size: int, max_offset: int, fixed_offset: bool = False,
                   rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """(s_t, a_t, s_{t+k}) with k uniform in 1..min(K, steps left), never past the episode's
        last observation s_T (which may itself be the goal). ``fixed_offset``: k = min(K, steps
        left), the goal K steps ahead (or the episode's end), e.g. for a goal model. ``rng``: draw
        from this generator instead of the sampler's (a second model's own stream)."""
        f, rng = self.flat, self.rng if rng is None else rng
        idx = rng.integers(0, f.num_transitions, batch_size)
        left = self._ep_len_of[idx] - f.timesteps[idx]  # >= 1: s_{t+left} is the final obs
        reach = np.minimum(left, max_offset)
        if fixed_offset:
            k = reach.astype(np.int64)
        else:
            k = 1 + np.floor(rng.random(batch_size) * reach).astype(np.int64)
        oi = f.obs_index[idx]
        return {
            "observations": f.observations[oi],
            "actions": f.actions[idx],
            "goals": f.observations[oi + k],
            "offsets": k,
            "returns_to_go": f.returns_to_go[idx].astype(np.float32),
        }

    def goal_mixture(self, batch_size: int, p_current: float, p_future: float,
                     p_random: float, geometric: float | None = None,
                     rng: np.random.Generator | None = None,
                     transitions: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Transitions (s_t, a_t, s_{t+1}) with a goal each, drawn as OGBench's goal-conditioned
        learners draw them (``GCDataset.sample_goals``): with probability ``p_current`` the state
        s_t itself, ``p_future`` a later state of the same episode, ``p_random`` a state of any
        episode (the three sum to 1). A later state is s_{t+k}, k uniform in 1..(steps left), or
        with ``geometric`` = γ, k ~ Geometric(1 − γ) capped at the steps left; the episode's final
        observation counts as a state. ``goal_is_current`` marks goals that are s_t (OGBench's
        success: reward 0 instead of −1, no bootstrap). ``transitions``: these transition
        indices instead of fresh ones (a second set of goals for the same transitions, as the
        returned ``transitions`` gives them)."""
        if not np.isclose(p_current + p_future + p_random, 1.0):
            raise ValueError(f"goal probabilities must sum to 1, got {p_current} + {p_future} + "
                             f"{p_random}")
        f, rng = self.flat, self.rng if rng is None else rng
        idx = rng.integers(0, f.num_transitions, batch_size) if transitions is None \
            else np.asarray(transitions)
        batch_size = len(idx)
        oi = f.obs_index[idx]
        left = self._ep_len_of[idx] - f.timesteps[idx]  # >= 1: s_{t+left} is the final obs
        if geometric is None:
            k = 1 + np.floor(rng.random(batch_size) * left).astype(np.int64)
        else:
            k = np.minimum(rng.geometric(1.0 - geometric, batch_size), left)
        random_goal = f.obs_index[rng.integers(0, f.num_transitions, batch_size)]
        u = rng.random(batch_size)
        current = u < p_current
        goal_index = np.where(current, oi, np.where(u < p_current + p_future, oi + k, random_goal))
        return {
            "observations": f.observations[oi],
            "actions": f.actions[idx],
            "next_observations": f.observations[oi + 1],
            "goals": f.goal_states[goal_index],
            "goal_is_current": goal_index == oi,
            "transitions": idx,
            # steps from s_t to the goal: k for a later state, 0 for s_t, −1 for a random state
            "offsets": np.where(current, 0, np.where(u < p_current + p_future, k, -1)),
        }

    def states_ahead(self, transitions: np.ndarray, steps: int | np.ndarray) -> np.ndarray:
        """The states ``steps`` after the states of ``transitions`` (indices), never past their
        episodes' final observations: s_{t + min(steps, steps left)}."""
        f = self.flat
        left = self._ep_len_of[transitions] - f.timesteps[transitions]
        return f.observations[f.obs_index[transitions] + np.minimum(steps, left)]


# The DT paper's evaluation targets for Hopper (Chen et al. 2021; the authors' gym code evaluates
# hopper at 3600 and 1800).
PUBLISHED_TARGET_RETURNS = {"Hopper": (3600.0, 1800.0)}


def target_label(target: float) -> str:
    """A target return as its evaluation condition writes it (``target=3600``): short, and read
    back (``float``) as exactly the configured value (``:g`` alone turned 12345.67 into 12345.7,
    and the agent was evaluated at that)."""
    short = f"{target:g}"
    return short if float(short) == target else repr(float(target))


def default_target_returns(spec: TaskSpec) -> tuple[float, ...]:
    """Return-to-go targets for return-conditioned acting when a config leaves them empty: the
    DT paper's for Hopper, otherwise the dataset's best episode return and half of it (targets
    far outside the data's returns ask the model for returns it has never seen)."""
    family = spec.env_id.split("-")[0]
    if family in PUBLISHED_TARGET_RETURNS:
        return PUBLISHED_TARGET_RETURNS[family]
    if spec.best_return is None:
        raise ValueError("no target returns configured and no dataset to derive them from; "
                         "pass --set target_returns=...")
    best = float(np.round(spec.best_return))
    return (best, float(np.round(best / 2)))
