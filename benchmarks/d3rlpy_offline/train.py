"""Train d3rlpy 2.8.1's TD3+BC, IQL or CQL with bench's hyper-parameters on a bench dataset, for
scripts/d3rlpy_referee.py (which runs this under .venv-d3rlpy and evaluates the policy itself:
this venv has no MuJoCo, and the evaluation must be bench's).

    .venv-d3rlpy/bin/python benchmarks/d3rlpy_offline/train.py --algo td3_bc \\
        --config RUN_DIR/config.json --data hopper-medium.npz --action-low ... --action-high ... \\
        --max-episode-steps 1000 --seed 0 --out RUN_DIR

``--config``: a JSON file whose ``config`` object holds bench's resolved config (its
``config.json``); its ``num_updates`` is the number of d3rlpy updates. ``--data``: D4RL-style
flat arrays (``bench.d4rl.qlearning_dataset``'s keys) in an .npz. The algorithm is built by
``mirror.build_config``, the dataset by ``mirror.mdp_dataset``, and trained with d3rlpy's own
``fitter`` (its ``fit`` loop, one epoch per ``log_every`` updates, no logger files) after
``d3rlpy.seed(seed)``; the networks are built first (``mirror.prepare``), so ``train_seconds``
counts the updates only, as bench's does.

Writes into ``--out``: ``metrics.jsonl`` (each epoch's mean losses, the step and the training
seconds so far), ``policy.pt`` (d3rlpy's ``save_policy``: TorchScript of the greedy action with
the observation scaler inside, loadable with plain torch) and, last, ``train.json`` (versions,
d3rlpy's serialized config, the differences from bench that d3rlpy cannot avoid, timings).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mirror  # beside this file


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", choices=mirror.ALGOS, required=True)
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--action-low", type=float, nargs="+", required=True)
    p.add_argument("--action-high", type=float, nargs="+", required=True)
    p.add_argument("--max-episode-steps", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()

    import d3rlpy
    from d3rlpy.logging import NoopAdapterFactory

    mirror.quiet_d3rlpy()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = json.loads(args.config.read_text())["config"]
    arrays = dict(np.load(args.data))
    stats = mirror.data_stats(arrays, np.array(args.action_low), np.array(args.action_high),
                              args.max_episode_steps)
    d3rlpy.seed(args.seed)
    dataset = mirror.mdp_dataset(arrays)
    d3rlpy_config = mirror.build_config(args.algo, config, stats)
    algo = d3rlpy_config.create(device="cpu:0")
    n_steps = int(config["num_updates"])
    per_epoch = math.gcd(n_steps, int(config.get("log_every") or n_steps))

    mirror.prepare(algo, dataset)  # networks built before the clock starts, as bench's are
    args.out.mkdir(parents=True, exist_ok=True)
    metrics_path = args.out / "metrics.jsonl"
    start = time.perf_counter()
    last_report = start
    with metrics_path.open("w") as metrics:
        for epoch, losses in algo.fitter(
                dataset, n_steps=n_steps, n_steps_per_epoch=per_epoch,
                experiment_name=f"d3rlpy_{args.algo}", with_timestamp=False,
                logger_adapter=NoopAdapterFactory(), show_progress=False,
                save_interval=n_steps // per_epoch + 1):
            step, seconds = epoch * per_epoch, time.perf_counter() - start
            metrics.write(json.dumps({"step": step, "train_seconds": seconds,
                                      **{k: float(v) for k, v in losses.items()}}) + "\n")
            metrics.flush()
            if time.perf_counter() - last_report > 30 or step == n_steps:
                last_report = time.perf_counter()
                print(f"[d3rlpy] {args.algo} step {step}/{n_steps}, {step / seconds:.1f} "
                      "updates/s", file=sys.stderr, flush=True)
    train_seconds = time.perf_counter() - start
    with warnings.catch_warnings():  # tracing on a batch of one: a shape check made constant
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        algo.save_policy(str(args.out / "policy.pt"))

    import gymnasium

    summary = {
        "library": "d3rlpy", "mirrors": args.algo, "seed": args.seed, "steps": n_steps,
        "steps_per_epoch": per_epoch, "train_seconds": train_seconds,
        "updates_per_s": n_steps / train_seconds if train_seconds > 0 else None,
        "torch_threads": torch.get_num_threads(),
        "versions": {"python": platform.python_version(), "d3rlpy": d3rlpy.__version__,
                     "torch": torch.__version__, "numpy": np.__version__,
                     "gymnasium": gymnasium.__version__},
        "d3rlpy_config": json.loads(d3rlpy_config.serialize()),
        "differences": mirror.DIFFERENCES[args.algo],
    }
    _write_json(args.out / "train.json", summary)
    print(json.dumps({k: summary[k] for k in ("mirrors", "seed", "steps", "train_seconds",
                                              "updates_per_s")}))


if __name__ == "__main__":
    main()
