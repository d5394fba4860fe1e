"""Measure d3rlpy's Decision Transformer update speed on CPU.

Run with the isolated venv made by setup_venv.sh (d3rlpy pins gymnasium 1.0.0,
so it is never a dependency of the project):

    bash benchmarks/d3rlpy_dt/setup_venv.sh
    .venv-d3rlpy/bin/python benchmarks/d3rlpy_dt/measure.py

Model: the Hopper setup of d3rlpy's own reproduction script
(reproductions/offline/decision_transformer.py), which matches bench's DT:
batch 64, context 20, embed 128 (VectorEncoderFactory([128])), 1 head,
3 layers, dropouts 0.1, ReLU, AdamW lr 1e-4 / weight decay 1e-4, grad-norm clip
0.25, 10k-step linear warm-up, reward x 0.001, standardised observations.
Data: synthetic Hopper-shaped episodes (obs 11, action 3) in an MDPDataset.

What is timed: ``algo.update(batch)`` -- exactly what ``fit`` calls per step
(numpy -> torch conversion with the scalers, forward, backward, clip, AdamW
step, LR-scheduler step, loss read-back). Batches are sampled from the replay
buffer beforehand with ``sample_trajectory_batch`` (as ``fit`` does), so
sampling is excluded from ``updates_per_s``; it is timed separately and
reported as ``sample_batches_per_s`` and ``steps_per_s`` (sample + update).
Prints one JSON line on stdout.

``--serve``: after the warm-up, print ``{"ready": true}`` and then, for each line ``N`` read from
stdin, time N more updates and print ``{"seconds": [...]}`` (one entry per update). The benchmark
uses it to alternate chunks of d3rlpy's updates with chunks of its own in one process each, so
both sides see the same drift of a shared machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time

import numpy as np
import torch

OBS_DIM = 11
ACT_DIM = 3


def make_dataset(n_episodes: int, episode_len: int, seed: int):
    import d3rlpy

    rng = np.random.default_rng(seed)
    n = n_episodes * episode_len
    observations = rng.standard_normal((n, OBS_DIM)).astype(np.float32)
    actions = rng.uniform(-1.0, 1.0, (n, ACT_DIM)).astype(np.float32)
    rewards = rng.uniform(0.0, 3.0, (n, 1)).astype(np.float32)  # Hopper-like scale
    terminals = np.zeros(n, dtype=np.float32)
    timeouts = np.zeros(n, dtype=np.float32)
    timeouts[episode_len - 1 :: episode_len] = 1.0  # every episode truncated
    return d3rlpy.dataset.MDPDataset(
        observations=observations,
        actions=actions,
        rewards=rewards,
        terminals=terminals,
        timeouts=timeouts,
        action_space=d3rlpy.ActionSpace.CONTINUOUS,
        action_size=ACT_DIM,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-updates", type=int, default=100, help="timed updates (>= 30)")
    p.add_argument("--warmup", type=int, default=10, help="untimed warm-up updates")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--episode-len", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--serve", action="store_true",
                   help="time chunks of updates on request (stdin: a count per line)")
    args = p.parse_args()
    if args.n_updates < 30:
        p.error("--n-updates must be >= 30")

    # d3rlpy logs through structlog to stdout; keep stdout for the JSON line.
    import d3rlpy
    import structlog
    from d3rlpy.algos.utility import build_scalers_with_trajectory_slicer

    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))

    torch.set_num_threads(args.threads)
    d3rlpy.seed(args.seed)

    dataset = make_dataset(args.episodes, args.episode_len, args.seed)

    batch_size, context_size = 64, 20
    cfg = d3rlpy.algos.DecisionTransformerConfig(
        batch_size=batch_size,
        context_size=context_size,
        max_timestep=1000,
        learning_rate=1e-4,
        encoder_factory=d3rlpy.models.VectorEncoderFactory([128], exclude_last_activation=True),
        optim_factory=d3rlpy.optimizers.AdamWFactory(
            weight_decay=1e-4,
            clip_grad_norm=0.25,
            lr_scheduler_factory=d3rlpy.optimizers.WarmupSchedulerFactory(warmup_steps=10_000),
        ),
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(0.001),
        num_heads=1,
        num_layers=3,
        attn_dropout=0.1,
        resid_dropout=0.1,
        embed_dropout=0.1,
        activation_type="relu",
        position_encoding_type=d3rlpy.PositionEncodingType.SIMPLE,
        compile_graph=False,
    )
    algo = cfg.create(device="cpu:0")
    # Same set-up as the start of TransformerAlgoBase.fit, minus the logger.
    build_scalers_with_trajectory_slicer(algo, dataset)
    algo.create_impl((OBS_DIM,), ACT_DIM)
    n_params = sum(p.numel() for p in algo.impl.modules.transformer.parameters())

    total = args.warmup + args.n_updates
    t0 = time.perf_counter()
    batches = [
        dataset.sample_trajectory_batch(batch_size, length=context_size) for _ in range(total)
    ]
    sample_s = time.perf_counter() - t0

    losses = []
    for batch in batches[: args.warmup]:
        losses.append(algo.update(batch)["loss"])

    if args.serve:
        serve(algo, batches[args.warmup :])
        return

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    each = []
    for batch in batches[args.warmup :]:
        t_update = time.perf_counter()
        losses.append(algo.update(batch)["loss"])
        each.append(time.perf_counter() - t_update)
    update_s = time.perf_counter() - t0
    load_after = os.getloadavg()[0]

    per_update = update_s / args.n_updates
    per_sample = sample_s / total
    print(
        json.dumps(
            {
                "library": "d3rlpy",
                "version": d3rlpy.__version__,
                "updates_per_s": round(args.n_updates / update_s, 3),
                # The fastest single update: least disturbed by other load on a shared machine.
                "best_updates_per_s": round(1.0 / min(each), 3),
                "n_updates": args.n_updates,
                "torch": torch.__version__,
                "config": {
                    "algo": "DecisionTransformer",
                    "device": "cpu",
                    "torch_threads": torch.get_num_threads(),
                    "batch_size": batch_size,
                    "context_size": context_size,
                    "embed_size": 128,
                    "num_heads": 1,
                    "num_layers": 3,
                    "max_timestep": 1000,
                    "attn_dropout": 0.1,
                    "resid_dropout": 0.1,
                    "embed_dropout": 0.1,
                    "activation": "relu",
                    "position_encoding": "simple",
                    "optimizer": "AdamW(lr=1e-4, weight_decay=1e-4), clip_grad_norm=0.25, "
                    "warmup 10000 steps",
                    "reward_scaler": "MultiplyRewardScaler(0.001)",
                    "observation_scaler": "StandardObservationScaler",
                    "compile_graph": False,
                    "obs_dim": OBS_DIM,
                    "act_dim": ACT_DIM,
                    "n_params": n_params,
                    "dataset": f"synthetic, {args.episodes} episodes x {args.episode_len} steps",
                    "warmup_updates": args.warmup,
                    "timed": "algo.update(TrajectoryMiniBatch); batch sampling excluded",
                },
                "sample_batches_per_s": round(1.0 / per_sample, 3),
                "steps_per_s": round(1.0 / (per_update + per_sample), 3),
                "final_loss": round(float(losses[-1]), 5),
                "python": platform.python_version(),
                "cpu_count": os.cpu_count(),
                # 1-min load average around the timed loop: > ~threads means
                # something else competed for the CPU and the figure is low.
                "loadavg_1m": [round(load_before, 2), round(load_after, 2)],
            }
        )
    )


def serve(algo, batches: list) -> None:
    """Answer each stdin line N with the seconds of N more updates (batches reused in turn)."""
    import sys

    print(json.dumps({"ready": True}), flush=True)
    turn = 0
    for line in sys.stdin:
        seconds = []
        for _ in range(int(line)):
            batch = batches[turn % len(batches)]
            turn += 1
            t_update = time.perf_counter()
            algo.update(batch)
            seconds.append(time.perf_counter() - t_update)
        print(json.dumps({"seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
