"""OGBench's ``pointmaze-{medium,large}-navigate`` datasets, made here with OGBench's own recipe.

The recipe (Park et al., ICLR 2025, section 6 and appendix; seohongpark/ogbench
``data_gen_scripts/generate_locomaze.py`` at commit 4b94ac7 and ``commands.sh`` at ba4e99b): a
noisy scripted expert navigates the maze. Each episode starts in a uniformly drawn free cell with
a goal in a uniformly drawn "vertex" cell (a free cell that is not the middle of a straight
corridor); at every step the expert heads for the centre of the next cell on a breadth-first
shortest path to the goal cell (the oracle subgoal OGBench's maze env computes), its action the
unit vector towards it plus Gaussian noise of std 0.5, clipped to [-1, 1]; when it reaches the
goal a new vertex cell is drawn. 1,000 episodes of 1,000 steps: 1M transitions. The collection
env does not stop at goals (``terminate_at_goal=False``).

What differs from OGBench's files: OGBench draws from numpy's unseeded global generator, so its
files cannot be reproduced; here episode ``e`` draws its cells and noise from
``numpy.random.default_rng([seed, e])`` and resets with ``seed + e``, so the same seed gives
the same bytes whatever the number of worker processes. OGBench's files also keep a 1,001st row
per episode whose action is never used; here each episode stores its 1,001 observations and
1,000 actions. Its separate validation file (100 more episodes) is not made.

When OGBench's own files are in its data directory (``~/.ogbench/data/<name>.npz``, where
``ogbench.download_datasets`` puts them), ``convert_official`` makes the dataset from them
instead, once, with provenance ``official``.

Next-cell lookups use breadth-first distance maps computed once per goal cell (the env's own
oracle runs a breadth-first search at every call: 3x slower here); ``test_ogbench_maze.py``
checks they pick the env's oracle subgoal everywhere.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from bench.envs.goal_tasks import numpy_global_seed
from bench.progress import progress_bar

EPISODE_STEPS = 1_000
NOISE_STD = 0.5
# Neighbour order of OGBench's oracle (ties go to the first neighbour with the smallest distance)
NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1))


def env_name(dataset_name: str) -> str:
    """OGBench's env id for a dataset name: ``pointmaze-medium-navigate-v0`` →
    ``pointmaze-medium-v0``, ``cube-single-play-v0`` → ``cube-single-v0``."""
    parts = dataset_name.split("-")
    return "-".join(parts[:2] + parts[-1:])


def collection_env(dataset_name: str) -> gym.Env:
    import ogbench  # noqa: F401  (registers OGBench's envs with gymnasium)

    return gym.make(env_name(dataset_name), terminate_at_goal=False,
                    max_episode_steps=EPISODE_STEPS)


class MazeOracle:
    """OGBench's oracle subgoal (``get_oracle_subgoal``) from distance maps cached per goal cell."""

    def __init__(self, maze: Any) -> None:
        self.maze = maze  # the env's unwrapped maze env: maze_map, xy_to_ij, ij_to_xy
        self.free = np.asarray(maze.maze_map) == 0
        self._distances: dict[tuple[int, int], np.ndarray] = {}

    def distances(self, goal_ij: tuple[int, int]) -> np.ndarray:
        """Breadth-first steps from every free cell to ``goal_ij`` (-1: wall or unreachable)."""
        if goal_ij not in self._distances:
            dist = np.full(self.free.shape, -1, np.int64)
            dist[goal_ij] = 0
            queue = deque([goal_ij])
            while queue:
                i, j = queue.popleft()
                for di, dj in NEIGHBOURS:
                    n = (i + di, j + dj)
                    if (0 <= n[0] < dist.shape[0] and 0 <= n[1] < dist.shape[1]
                            and self.free[n] and dist[n] == -1):
                        dist[n] = dist[i, j] + 1
                        queue.append(n)
            self._distances[goal_ij] = dist
        return self._distances[goal_ij]

    def subgoal(self, xy: np.ndarray, goal_xy: np.ndarray) -> np.ndarray:
        """The centre of the free neighbour of ``xy``'s cell nearest the goal's cell (the cell
        itself when none is nearer), as (x, y)."""
        start = tuple(int(v) for v in self.maze.xy_to_ij(xy))
        dist = self.distances(tuple(int(v) for v in self.maze.xy_to_ij(goal_xy)))
        best = start
        for di, dj in NEIGHBOURS:
            n = (start[0] + di, start[1] + dj)
            if (0 <= n[0] < dist.shape[0] and 0 <= n[1] < dist.shape[1] and self.free[n]
                    and dist[n] < dist[best]):
                best = n
        return np.asarray(self.maze.ij_to_xy(best))


def vertex_cells(free: np.ndarray) -> list[tuple[int, int]]:
    """Free cells that are not the middle of a straight corridor (open on exactly the two
    opposite sides, up-down or left-right)."""
    cells = []
    for i, j in zip(*np.nonzero(free)):
        up, down = free[i - 1, j], free[i + 1, j]
        left, right = free[i, j - 1], free[i, j + 1]
        if (up and down and not left and not right) or (left and right and not up and not down):
            continue
        cells.append((int(i), int(j)))
    return cells


def collect_episodes(dataset_name: str, seed: int, episodes: range) -> dict[str, np.ndarray]:
    """Episodes ``episodes`` of the recipe as arrays: observations (E, 1001, 2), actions
    (E, 1000, 2), the number of goals reached (E,)."""
    env = collection_env(dataset_name)
    maze = env.unwrapped
    oracle = MazeOracle(maze)
    cells = [(int(i), int(j)) for i, j in zip(*np.nonzero(oracle.free))]
    goals = vertex_cells(oracle.free)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    observations = np.zeros((len(episodes), EPISODE_STEPS + 1, obs_dim), np.float32)
    actions = np.zeros((len(episodes), EPISODE_STEPS, act_dim), np.float32)
    reached = np.zeros(len(episodes), np.int64)
    for k, e in enumerate(episodes):
        rng = np.random.default_rng([seed, e])
        start, goal = cells[rng.integers(len(cells))], goals[rng.integers(len(goals))]
        # The maze jitters starts and goals with numpy's global generator: seeded per episode.
        with numpy_global_seed([seed, e]):
            obs, _ = env.reset(seed=seed + e,
                               options={"task_info": {"init_ij": start, "goal_ij": goal}})
            observations[k, 0] = obs
            noise = rng.normal(0.0, NOISE_STD, (EPISODE_STEPS, act_dim))
            for t in range(EPISODE_STEPS):
                xy = maze.get_xy()
                direction = oracle.subgoal(xy, maze.cur_goal_xy) - xy
                action = np.clip(direction / (np.linalg.norm(direction) + 1e-6) + noise[t], -1, 1)
                obs, _, _, _, info = env.step(action)
                observations[k, t + 1], actions[k, t] = obs, action
                if info["success"]:
                    reached[k] += 1
                    maze.set_goal(goal_ij=goals[rng.integers(len(goals))])
    env.close()
    return {"observations": observations, "actions": actions, "reached": reached}


def collect(dataset_name: str, num_episodes: int, seed: int, workers: int | None = None,
            episodes_fn: Callable[[str, int, range], dict[str, np.ndarray]] | None = None
            ) -> dict[str, np.ndarray]:
    """All ``num_episodes`` episodes, in blocks over ``workers`` processes (default: the CPU
    count, at most 8); the result does not depend on how many. ``episodes_fn`` (a module-level
    function, as ``collect_episodes``: this module's, the default, or another recipe's) makes a
    block of episodes."""
    episodes_fn = episodes_fn or collect_episodes
    workers = max(1, min(workers or os.cpu_count() or 1, 8, num_episodes))
    block = 25
    blocks = [range(a, min(a + block, num_episodes)) for a in range(0, num_episodes, block)]
    parts: dict[int, dict[str, np.ndarray]] = {}
    with progress_bar(total=num_episodes * EPISODE_STEPS, desc=dataset_name, unit="step") as bar:
        if workers == 1:
            for i, r in enumerate(blocks):
                parts[i] = episodes_fn(dataset_name, seed, r)
                bar.update(len(r) * EPISODE_STEPS)
        else:
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = {pool.submit(episodes_fn, dataset_name, seed, r): i
                           for i, r in enumerate(blocks)}
                for future in concurrent.futures.as_completed(futures):
                    parts[futures[future]] = future.result()
                    bar.update(len(blocks[futures[future]]) * EPISODE_STEPS)
    return {key: np.concatenate([parts[i][key] for i in range(len(blocks))]) for key in parts[0]}


def episode_buffers(observations: np.ndarray, actions: np.ndarray, first_seed: int | None) -> list:
    """Minari episode buffers of (E, T + 1, obs) observations and (E, T, act) actions; every
    episode ends at the time limit (truncated), with reward 0 throughout (the navigate datasets
    carry no task reward: goal-conditioned learners relabel goals)."""
    from minari.data_collector import EpisodeBuffer

    steps = actions.shape[1]
    ends = np.zeros(steps, bool)
    ends[-1] = True
    return [EpisodeBuffer(id=e, seed=None if first_seed is None else first_seed + e,
                          observations=observations[e], actions=actions[e],
                          rewards=np.zeros(steps, np.float64), terminations=np.zeros(steps, bool),
                          truncations=ends)
            for e in range(len(actions))]


def official_file(dataset_name: str) -> Path:
    """Where ``ogbench.download_datasets`` keeps dataset ``dataset_name`` (it may not exist)."""
    return Path(os.path.expanduser("~/.ogbench/data")) / f"{dataset_name}.npz"


def read_official(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """OGBench's npz file as (E, T + 1, obs) observations and (E, T, act) actions: each
    trajectory's rows run to a terminal row, whose action is never used (as ``ogbench.load_dataset``
    reads them)."""
    with np.load(path) as data:
        obs, act, terminals = data["observations"], data["actions"], data["terminals"]
    ends = np.flatnonzero(terminals) + 1
    starts = np.concatenate([[0], ends[:-1]])
    lengths = set((ends - starts).tolist())
    if len(lengths) != 1:
        raise ValueError(f"{path}: trajectories of different lengths {sorted(lengths)[:5]}")
    rows = lengths.pop()
    observations = obs[:ends[-1]].reshape(len(ends), rows, -1).astype(np.float32)
    actions = act[:ends[-1]].reshape(len(ends), rows, -1)[:, :-1].astype(np.float32)
    return observations, actions
