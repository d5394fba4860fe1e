"""Time d3rlpy 2.8.1's TD3+BC, IQL or CQL training steps on CPU, for benchmarks/test_offline_speed.py.

Runs under the isolated venv (``bash benchmarks/d3rlpy_dt/setup_venv.sh`` makes it; d3rlpy pins
gymnasium 1.0.0, so it is never a dependency of the project):

    .venv-d3rlpy/bin/python benchmarks/d3rlpy_offline/measure.py --algo td3_bc [--config JSON]

The model: d3rlpy's ``TD3PlusBC``, ``IQL`` or ``CQL`` built by ``mirror.build_config`` from
bench's config for the algorithm (``--config``: a JSON object of its fields, as
``bench.config.config_to_json`` writes it; the benchmark passes bench's own, so the two cannot
drift; without it the values of ``DEFAULTS`` below). The data: ``--data``, an .npz of D4RL-style
flat arrays (``bench.d4rl.qlearning_dataset``'s keys), else synthetic Hopper-shaped episodes made
as benchmarks/test_speed.py's ``_hopper_shaped_flat`` makes them (50 episodes x 200 steps, all
time-limited, observation 11, action 3).

What one timed step is: what d3rlpy's ``fit`` loop does per step, no less -- draw a
``TransitionMiniBatch`` (``dataset.sample_transition_batch``), ``algo.update(batch)`` (numpy ->
torch with the scalers, every loss, backward pass, optimizer and target step) and hand the
losses to a metrics buffer, as fit's logger does. Its logger's file writes and progress bar
are left out (off the per-step path at the default logging strategy). ``seconds`` are those
steps; ``sample_seconds`` the sampling part of each.

``--serve``: after the warm-up print ``{"ready": true}``, then for each line ``N`` read from stdin
time N more steps and print ``{"seconds": [...], "sample_seconds": [...]}`` (one JSON line), so
the benchmark can alternate chunks of d3rlpy's steps with chunks of its own. Without
``--serve``: time ``--n-updates`` steps and print one JSON line of figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mirror  # beside this file

# bench's `full` values (bench/algos/{td3_bc,iql,cql}.py) at the benchmark size (batch
# 256, 256-256 networks), for runs without --config; the benchmark always passes bench's own.
DEFAULTS = {
    "td3_bc": {"num_updates": 1_000_000, "batch_size": 256, "lr": 3e-4, "hidden": [256, 256],
               "gamma": 0.99, "tau": 0.005, "policy_noise": 0.2, "noise_clip": 0.5,
               "policy_every": 2, "alpha": 2.5},
    "iql": {"num_updates": 1_000_000, "batch_size": 256, "lr": 3e-4, "hidden": [256, 256],
            "gamma": 0.99, "tau": 0.005, "expectile": 0.7, "beta": 3.0,
            "deterministic_actor": False, "normalize_reward": True},
    "cql": {"num_updates": 1_000_000, "batch_size": 256, "policy_lr": 3e-5, "qf_lr": 3e-4,
            "gamma": 0.99, "tau": 5e-3, "target_update_period": 1, "actor_hidden": [256, 256],
            "q_hidden": [256, 256], "orthogonal_init": True, "automatic_entropy_tuning": True,
            "alpha_multiplier": 1.0, "backup_entropy": False, "bc_steps": 0,
            "cql_n_actions": 10, "cql_importance_sample": True, "cql_alpha": 10.0,
            "cql_temp": 1.0, "cql_lagrange": False, "cql_target_action_gap": -1.0,
            "cql_max_target_backup": False, "cql_clip_diff_min": None,
            "cql_clip_diff_max": None, "normalize_reward": False, "reward_scale": 1.0,
            "reward_bias": 0.0},
}


def synthetic_arrays(episodes: int = 50, length: int = 200) -> dict[str, np.ndarray]:
    """The episodes of test_speed.py's ``_hopper_shaped_flat`` (same generator, same draws) as
    D4RL-style flat arrays."""
    rng = np.random.default_rng(0)
    n = episodes * length
    observations = rng.normal(size=(n + episodes, 11)).astype(np.float32)  # L + 1 per episode
    actions = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    rewards = rng.uniform(0, 3, n).astype(np.float32)
    obs_index = np.arange(n) + np.repeat(np.arange(episodes), length)
    return {"observations": observations[obs_index],
            "next_observations": observations[obs_index + 1], "actions": actions,
            "rewards": rewards, "terminals": np.zeros(n, bool),
            "timeouts": np.tile(np.arange(length) == length - 1, episodes)}


class Steps:
    """d3rlpy's fit-loop step: sample a batch, update, buffer the losses."""

    def __init__(self, algo, dataset) -> None:
        self.algo, self.dataset = algo, dataset
        self.batch_size = algo.config.batch_size
        self.losses: dict[str, list[float]] = defaultdict(list)

    def run(self, n: int) -> tuple[list[float], list[float]]:
        seconds, sample_seconds = [], []
        for _ in range(n):
            start = time.perf_counter()
            batch = self.dataset.sample_transition_batch(self.batch_size)
            sampled = time.perf_counter()
            for name, value in self.algo.update(batch).items():
                self.losses[name].append(value)
            end = time.perf_counter()
            seconds.append(end - start)
            sample_seconds.append(sampled - start)
        return seconds, sample_seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", choices=mirror.ALGOS, required=True)
    p.add_argument("--config", help="bench's config as a JSON object (default: DEFAULTS)")
    p.add_argument("--data", help=".npz of D4RL-style flat arrays (default: synthetic Hopper)")
    p.add_argument("--n-updates", type=int, default=100, help="timed steps without --serve")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--serve", action="store_true",
                   help="time chunks of steps on request (stdin: a count per line)")
    args = p.parse_args()

    import d3rlpy

    mirror.quiet_d3rlpy()
    torch.set_num_threads(args.threads)
    d3rlpy.seed(args.seed)
    config = json.loads(args.config) if args.config else DEFAULTS[args.algo]
    arrays = dict(np.load(args.data)) if args.data else synthetic_arrays()
    act_dim = arrays["actions"].shape[1]
    stats = mirror.data_stats(arrays, -np.ones(act_dim), np.ones(act_dim), 1000)
    dataset = mirror.mdp_dataset(arrays)
    algo = mirror.build_config(args.algo, config, stats).create(device="cpu:0")
    mirror.prepare(algo, dataset)
    steps = Steps(algo, dataset)
    steps.run(args.warmup)

    if args.serve:
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            seconds, sample_seconds = steps.run(int(line))
            print(json.dumps({"seconds": seconds, "sample_seconds": sample_seconds}), flush=True)
        return

    load_before = os.getloadavg()[0]
    seconds, sample_seconds = steps.run(args.n_updates)
    print(json.dumps({
        "library": "d3rlpy", "version": d3rlpy.__version__, "algo": args.algo,
        "updates_per_s": round(len(seconds) / sum(seconds), 3),
        "update_only_per_s": round(len(seconds) / (sum(seconds) - sum(sample_seconds)), 3),
        "sample_share": round(sum(sample_seconds) / sum(seconds), 4),
        "n_updates": args.n_updates, "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "config": config,
        "d3rlpy_config": json.loads(algo.config.serialize()),
        "differences": mirror.DIFFERENCES[args.algo], "python": platform.python_version(),
        "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}))


if __name__ == "__main__":
    main()
