"""Environment helpers: exact snapshots of running envs, so online runs resume bit for bit.

A PPO rollout continues episodes across iterations; resuming from a checkpoint must put every env
back where it was. For MuJoCo envs that is the simulator state (qpos, qvel and the rest of
``MjData`` via ``mj_getState``), the ``TimeLimit`` step counter and the env's random generator.
Envs of other kinds fall back to a fresh reset on resume (the run says so in its log).
"""
from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def snapshot(env: gym.Env) -> dict[str, Any] | None:
    """The full state of a MuJoCo env, or None if the env is of another kind."""
    base = env.unwrapped
    if not hasattr(base, "data") or not hasattr(base, "model"):
        return None
    import mujoco

    size = mujoco.mj_stateSize(base.model, mujoco.mjtState.mjSTATE_INTEGRATION)
    state = np.empty(size, dtype=np.float64)
    mujoco.mj_getState(base.model, base.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    limit = _time_limit(env)
    return {"mj_state": state, "elapsed": None if limit is None else limit._elapsed_steps,
            "np_random": copy.deepcopy(base.np_random.bit_generator.state)}


def restore(env: gym.Env, snap: dict[str, Any]) -> None:
    """Put ``env`` (already reset once) back into the state ``snapshot`` recorded."""
    import mujoco

    base = env.unwrapped
    mujoco.mj_setState(base.model, base.data, snap["mj_state"], mujoco.mjtState.mjSTATE_INTEGRATION)
    mujoco.mj_forward(base.model, base.data)
    limit = _time_limit(env)
    if limit is not None and snap["elapsed"] is not None:
        limit._elapsed_steps = snap["elapsed"]
    base.np_random.bit_generator.state = snap["np_random"]
