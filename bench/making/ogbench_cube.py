"""OGBench's ``cube-single-play`` dataset, made here with OGBench's own recipe.

The recipe (Park et al., ICLR 2025, section 6 and appendix; seohongpark/ogbench
``data_gen_scripts/generate_manipspace.py`` and ``commands.sh`` at commit 1d41409, the "play"
datasets): a UR5e arm with a gripper and one cube. A scripted non-Markovian oracle (the
``CubePlanOracle`` that ships in the ``ogbench`` package) plans each pick-and-place as keyframes
(above the cube, grasp, lift, above a random target, release), interpolates them and adds
temporally smoothed noise (``noise`` 0.1, ``noise_smoothing`` 0.5); its action follows the plan,
clipped to [-1, 1]. When a task is done the env draws a new target for the cube
(``set_new_target``, no stacking with one cube) and the oracle plans again. 1,000 episodes of
1,000 steps (OGBench's ``max_episode_steps`` 1,001 rows: 1,001 observations, the last action
unused): 1M transitions. The collection env does not stop at goals (``terminate_at_goal=False``,
``mode="data_collection"``).

What differs from OGBench's files, as for the mazes (``bench.making.ogbench_maze``): OGBench draws
from numpy's unseeded global generator; here episode ``e`` resets with ``seed + e`` and runs with
numpy's global generator seeded with ``[seed, e]`` (the oracle's plans and noise come from it), so
the same seed gives the same bytes whatever the number of worker processes. Each episode stores
its 1,001 observations and 1,000 actions; the validation file is not made. OGBench's own file in
``~/.ogbench/data`` is converted instead when present (``ogbench_maze.read_official``).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from bench.envs.goal_tasks import numpy_global_seed
from bench.making import ogbench_maze

EPISODE_STEPS = 1_000
NOISE = 0.1  # the plan's noise level (OGBench's --noise)
NOISE_SMOOTHING = 0.5  # its temporal smoothing (--noise_smoothing)


def collection_env(dataset_name: str) -> gym.Env:
    import ogbench  # noqa: F401  (registers OGBench's envs with gymnasium)

    return gym.make(ogbench_maze.env_name(dataset_name), terminate_at_goal=False,
                    mode="data_collection",
                    max_episode_steps=EPISODE_STEPS + 1)


def collect_episodes(dataset_name: str, seed: int, episodes: range) -> dict[str, np.ndarray]:
    """Episodes ``episodes`` of the play recipe as arrays: observations (E, 1001, obs), actions
    (E, 1000, act), the number of pick-and-place tasks the oracle finished (E,)."""
    from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle

    env = collection_env(dataset_name)
    oracle = CubePlanOracle(env=env, noise=NOISE, noise_smoothing=NOISE_SMOOTHING)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    observations = np.zeros((len(episodes), EPISODE_STEPS + 1, obs_dim), np.float32)
    actions = np.zeros((len(episodes), EPISODE_STEPS, act_dim), np.float32)
    finished = np.zeros(len(episodes), np.int64)
    for k, e in enumerate(episodes):
        with numpy_global_seed([seed, e]):
            obs, info = env.reset(seed=seed + e)
            oracle.reset(obs, info)
            observations[k, 0] = obs
            for t in range(EPISODE_STEPS):
                action = np.clip(np.asarray(oracle.select_action(obs, info)), -1, 1)
                obs, _, _, _, info = env.step(action)
                observations[k, t + 1], actions[k, t] = obs, action
                if oracle.done:  # a new target for the cube, a new plan (as OGBench's loop)
                    finished[k] += 1
                    task_obs, task_info = env.unwrapped.set_new_target(p_stack=0.0)
                    oracle.reset(task_obs, task_info)
    env.close()
    return {"observations": observations, "actions": actions, "reached": finished}


def collect(dataset_name: str, num_episodes: int, seed: int, workers: int | None = None
            ) -> dict[str, np.ndarray]:
    """All ``num_episodes`` episodes, over worker processes as the mazes' (``ogbench_maze.collect``);
    the result does not depend on how many."""
    return ogbench_maze.collect(dataset_name, num_episodes, seed, workers,
                                episodes_fn=collect_episodes)
