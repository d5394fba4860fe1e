"""Goal-setter PPO iteration speed relative to plain PPO (pytest-benchmark).

Target (goal-setter issue): each variant's env steps/s relative to plain ``ppo`` in the same run,
and "the IDM decoding must not make a goal-setter iteration more than 1.5× slower than a PPO
iteration". Full PPO settings on Hopper-v5 (2048 steps, 10 epochs, 32 minibatches).

What each variant adds to a PPO iteration:
- ``gs_ppo`` (frozen): decoding every rollout step's goal with the IDM — nothing else. Its whole
  iteration is asserted <= 1.5× PPO's.
- ``gs_ppo_joint``: the same decoding, plus *training* the IDM: 200 GCSL steps on the replay buffer
  (``idm_updates_per_iteration``) of a 256-256 MLP at batch 256, about twice the arithmetic of
  PPO's whole update.
- ``gs_ppo_v0``: no decoding in the rollout (the env executes the action head), plus training: the
  GCSL steps and a closeness step of the IDM on every PPO minibatch.
The IDM's training time is measured inside the iteration (the GCSL steps and the closeness terms'
forward passes and the IDM's own backward/steps; the goal head's closeness gradient flows in PPO's
backward and is counted as PPO's). For every variant the iteration *without* it — what decoding
and the larger policy output cost — is asserted <= 1.5× PPO; the full ratio is reported beside it
and scales with ``idm_updates_per_iteration``. The frozen variant's one-off offline pretraining is
not part of an iteration and is skipped (no dataset is needed to time the iteration).

Run: ``python -m pytest benchmarks/test_gs_ppo_speed.py --benchmark-only -s`` (about 2 minutes).
"""
from __future__ import annotations

import functools
import time

import gymnasium as gym
import numpy as np
import torch

from bench.algos.gs_ppo import GoalSetterPPO, GoalSetterPPOConfig
from bench.algos.ppo import PPO, PPOConfig
from bench.config import make_config
from bench.data.sampler import TaskSpec
from bench.perf import tune_allocator

ITERATIONS = 3  # timed, after one untimed warm-up iteration
VARIANTS = {"gs_ppo": {}, "gs_ppo_joint": {"idm_training": "joint"},
            "gs_ppo_v0": {"idm_training": "joint", "emit_actions": True}}


def _iteration_seconds(cls, config) -> tuple[float, float]:
    """Mean seconds per iteration, and of that the seconds spent training the IDM."""
    torch.manual_seed(0)
    make = functools.partial(gym.make, "Hopper-v5")
    algo = cls(config, TaskSpec.from_env(make()), torch.device("cpu"))
    algo.setup(make, 0)
    idm_training = {"s": 0.0}
    if isinstance(algo, GoalSetterPPO):
        algo.pretrained = True  # timing iterations, not the one-off pretraining

        def timed(method):
            def wrapper(*args, **kwargs):
                t = time.perf_counter()
                try:
                    return method(*args, **kwargs)
                finally:
                    idm_training["s"] += time.perf_counter() - t
            return wrapper

        algo._gcsl_step = timed(algo._gcsl_step)
        if config.emit_actions:
            algo.extra_losses = timed(algo.extra_losses)
    algo.train_iteration()
    idm_training["s"] = 0.0
    start = time.perf_counter()
    for _ in range(ITERATIONS):
        algo.train_iteration()
    return (time.perf_counter() - start) / ITERATIONS, idm_training["s"] / ITERATIONS


def test_goal_setter_iterations_vs_ppo(benchmark):
    tune_allocator()
    # PPO is timed before each variant and the two compared pairwise: this VM's speed drifts by
    # ±20% within minutes, and a single PPO figure up front made the ratios swing.
    ppo_s, variant_s, idm_s = {}, {}, {}

    def measure_all():
        for name, fields in VARIANTS.items():
            ppo_s[name], _ = _iteration_seconds(PPO, make_config(PPOConfig, "full"))
            variant_s[name], idm_s[name] = _iteration_seconds(
                GoalSetterPPO, make_config(GoalSetterPPOConfig, "full", fixed=fields))

    benchmark.pedantic(measure_all, rounds=1, iterations=1)
    steps = make_config(PPOConfig, "full").rollout_steps
    slowdown = {name: variant_s[name] / ppo_s[name] for name in VARIANTS}
    without_training = {name: (variant_s[name] - idm_s[name]) / ppo_s[name] for name in VARIANTS}
    benchmark.extra_info.update(
        ppo_env_steps_per_s={k: steps / v for k, v in ppo_s.items()},
        env_steps_per_s={k: steps / v for k, v in variant_s.items()},
        idm_training_seconds_per_iteration=idm_s, slowdown=slowdown,
        slowdown_without_idm_training=without_training)
    print("\nHopper-v5 iteration env steps/s: " + "; ".join(
        f"{name} {steps / variant_s[name]:.0f} vs ppo {steps / ppo_s[name]:.0f} "
        f"({slowdown[name]:.2f}x slower; IDM training {idm_s[name]:.2f} s of "
        f"{variant_s[name]:.2f} s, without it {without_training[name]:.2f}x)" for name in VARIANTS))
    assert slowdown["gs_ppo"] <= 1.5
    assert max(without_training.values()) <= 1.5
    assert np.isfinite(list(variant_s.values())).all()
