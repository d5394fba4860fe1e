"""Goal-conditioned evaluation tasks: envs whose every episode comes with a goal to reach, scored
by success.

OGBench's navigation envs (Park et al., ICLR 2025) define five evaluation tasks each, a start and a
goal cell (``reset(options={"task_id": k})``, the goal observation in ``info["goal"]``); an
episode ends with reward 1 when the agent is within the goal tolerance, else runs out at 1,000
steps with return 0. ``GoalTaskEnv`` puts such an env into the form the suite's evaluation loop
steps: an episode started with ``reset(seed=s)`` runs task ``1 + s % num_tasks`` (so the 5 · N
episodes of an evaluation, seeds s₀ … s₀ + 5N − 1, run every task N times), and its observation
is the env's observation followed by the episode's goal, ``[obs, goal]`` (``goal_dim`` numbers).
Goal-conditioned agents split the two; the others see ``obs`` only (``bench.run``). An episode's
return is its success, 0 or 1.

The suite's ids are ``bench/<dataset name>`` (``bench/pointmaze-medium-navigate-v0``), made on
demand from the ``ogbench`` package (``ogbench.make_env_and_datasets(..., env_only=True)``, no
download).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np

# The OGBench tasks the suite evaluates on: its dataset names (the env is the name without the
# dataset kind, as OGBench makes it).
OGBENCH_TASKS = ("pointmaze-medium-navigate-v0", "pointmaze-large-navigate-v0",
                 "cube-single-play-v0")
# Steps an evaluation episode lasts (OGBench's own time limits: navigation 1,000, manipulation 200)
EPISODE_LIMITS = {"pointmaze": 1000, "cube": 200}


@contextlib.contextmanager
def numpy_global_seed(seed: Any) -> Iterator[None]:
    """Within the block numpy's global generator is seeded with ``seed`` (an int or a list of
    ints); afterwards it is back where it was. OGBench's maze env draws its start and goal jitter
    from that generator, not from the env's own, so ``reset(seed=...)`` alone does not fix them."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


def task_of_seed(seed: int, num_tasks: int) -> int:
    """The task (1-based, OGBench's ``task_id``) an episode reset with ``seed`` runs."""
    return 1 + int(seed) % num_tasks


def success_summary(returns: np.ndarray, first_seed: int, num_tasks: int) -> dict[str, Any]:
    """Success rate overall and per task of a goal task's evaluation, whose episode ``i`` reset
    with ``first_seed + i`` (so ran ``task_of_seed``) and returned 1 on success, else 0. The
    overall rate is the mean of the per-task rates (OGBench's ``overall_success``); with the
    same number of episodes per task it equals the mean over episodes."""
    returns = np.asarray(returns, np.float64)
    tasks = np.array([task_of_seed(first_seed + i, num_tasks) for i in range(len(returns))])
    by_task = {f"task{k}": float(returns[tasks == k].mean())
               for k in range(1, num_tasks + 1) if (tasks == k).any()}
    return {"rate": float(np.mean(list(by_task.values()))), "by_task": by_task,
            "episodes_by_task": {f"task{k}": int((tasks == k).sum())
                                 for k in range(1, num_tasks + 1) if (tasks == k).any()}}


class GoalTaskEnv(gym.Wrapper):
    """An OGBench-style goal task as a flat-observation env: ``[obs, goal]`` observations, the
    task chosen by the reset seed (``task_of_seed``), return = success (0 or 1)."""

    def __init__(self, env: gym.Env, num_tasks: int) -> None:
        super().__init__(env)
        obs_space = env.observation_space
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise TypeError(f"GoalTaskEnv needs a flat Box observation space, got {obs_space}")
        self.goal_dim = int(obs_space.shape[0])  # OGBench's goal is an observation
        self.num_tasks = num_tasks
        low = np.concatenate([obs_space.low, obs_space.low]).astype(np.float32)
        high = np.concatenate([obs_space.high, obs_space.high]).astype(np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self._goal = np.zeros(self.goal_dim, np.float32)
        self.task_id = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        if "task_id" not in options and "task_info" not in options:  # task_info: a custom task
            # Unseeded resets (a plain env.reset()) run task 1, as a seed of 0 would.
            options["task_id"] = task_of_seed(seed or 0, self.num_tasks)
        self.task_id = int(options.get("task_id", 0))  # 0: a custom task
        if seed is None:
            obs, info = self.env.reset(options=options)
        else:
            with numpy_global_seed(seed):  # the start and goal jitter (see numpy_global_seed)
                obs, info = self.env.reset(seed=seed, options=options)
        self._goal = np.asarray(info["goal"], np.float32)
        return self._with_goal(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._with_goal(obs), float(info.get("success", reward)), terminated, truncated, info

    def _with_goal(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(obs, np.float32), self._goal])


class DesiredGoalEnv(gym.ObservationWrapper):
    """A gymnasium-robotics goal env (Dict observations ``observation`` / ``achieved_goal`` /
    ``desired_goal``, as D4RL's pointmaze datasets in Minari) as a flat-observation env whose rows
    are ``[observation, desired_goal]``. Rewards, episode ends and goals stay the env's own (its
    datasets are scored by normalized return, with the reference scores of their metadata)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        parts = env.observation_space
        self.goal_dim = int(parts["desired_goal"].shape[0])
        self.num_tasks = 0  # the env draws its goals itself
        low = np.concatenate([parts["observation"].low, parts["desired_goal"].low])
        high = np.concatenate([parts["observation"].high, parts["desired_goal"].high])
        self.observation_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32),
                                                dtype=np.float32)

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(observation["observation"], np.float32).ravel(),
                               np.asarray(observation["desired_goal"], np.float32)])


def make_ogbench_task(name: str) -> gym.Env:
    """OGBench's evaluation env for dataset ``name`` as a ``GoalTaskEnv`` (no download)."""
    try:
        import ogbench
    except ImportError:
        raise ImportError(f"the goal task {name} needs the ogbench package: pip install "
                          "ogbench") from None
    env = ogbench.make_env_and_datasets(name, env_only=True)
    return GoalTaskEnv(env, int(env.unwrapped.num_tasks))


def register() -> None:
    for name in OGBENCH_TASKS:
        env_id = f"bench/{name}"
        if env_id not in gym.registry:
            # The same limit as OGBench's TimeLimit, inside.
            gym.register(id=env_id, entry_point="bench.envs.goal_tasks:make_ogbench_task",
                         kwargs={"name": name},
                         max_episode_steps=EPISODE_LIMITS[name.split("-", 1)[0]])
