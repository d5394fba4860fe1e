"""Goal-setter PPO iteration speed relative to plain PPO (pytest-benchmark).

Target (goal-setter issue): decoding goals with the IDM must not make a goal-setter iteration more
than 1.5× slower than a PPO iteration; each variant's env steps/s is reported relative to plain
``ppo`` measured in the same run. Full PPO settings on Hopper-v5 (2048 steps, 10 epochs, 32
minibatches); the joint variants add their IDM's GCSL steps on the replay buffer (200 per
iteration), V0 its closeness losses. The frozen variant's one-off offline pretraining is not part
of an iteration and is skipped here (no dataset is needed to time the iteration).

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
from bench.data.sampler import DatasetSpec
from bench.perf import tune_allocator

ITERATIONS = 4  # timed, after one untimed warm-up iteration
VARIANTS = {"gs_ppo": {}, "gs_ppo_joint": {"idm_training": "joint"},
            "gs_ppo_v0": {"idm_training": "joint", "emit_actions": True}}


def _steps_per_s(cls, config) -> float:
    torch.manual_seed(0)
    make = functools.partial(gym.make, "Hopper-v5")
    algo = cls(config, DatasetSpec.for_env(make()), torch.device("cpu"))
    algo.setup(make, 0)
    if isinstance(algo, GoalSetterPPO):
        algo.pretrained = True  # timing iterations, not the one-off pretraining
    algo.train_iteration()
    start = time.perf_counter()
    for _ in range(ITERATIONS):
        algo.train_iteration()
    return ITERATIONS * config.rollout_steps / (time.perf_counter() - start)


def test_goal_setter_iterations_vs_ppo(benchmark):
    tune_allocator()
    # PPO is timed before each variant and the two rates compared pairwise: this VM's speed
    # drifts by ±20% within minutes, and a single PPO figure up front made the ratios swing
    # (joint 1.17x in one run, 1.60x in the next).
    ppo_rates, rates = {}, {}

    def measure_all():
        for name, fields in VARIANTS.items():
            ppo_rates[name] = _steps_per_s(PPO, make_config(PPOConfig, "full"))
            rates[name] = _steps_per_s(GoalSetterPPO,
                                       make_config(GoalSetterPPOConfig, "full", fixed=fields))

    benchmark.pedantic(measure_all, rounds=1, iterations=1)
    slowdown = {name: ppo_rates[name] / rate for name, rate in rates.items()}
    benchmark.extra_info.update(ppo_env_steps_per_s=ppo_rates, env_steps_per_s=rates,
                                slowdown=slowdown)
    print("\nHopper-v5 iteration env steps/s: " + "; ".join(
        f"{name} {rates[name]:.0f} vs ppo {ppo_rates[name]:.0f} ({slowdown[name]:.2f}x slower)"
        for name in VARIANTS))
    assert max(slowdown.values()) <= 1.5
    assert np.isfinite(list(rates.values())).all()
