#!/usr/bin/env python
"""d3rlpy 2.8.1 as a referee for bench's TD3+BC, IQL and CQL (issue 26): for each algorithm x
dataset x seed, bench's run (``bench run``) and d3rlpy's with the same hyper-parameters and
number of updates, evaluated alike, recorded side by side; then a table of both means with 95%
t-intervals, "agree" where each mean lies in the other's interval.

Run from the repository root with the project's venv (d3rlpy lives in .venv-d3rlpy, made by
benchmarks/d3rlpy_dt/setup_venv.sh on first use, and is driven through
benchmarks/d3rlpy_offline/train.py)::

    scripts/d3rlpy_referee.py                      # 3 algos x hopper-medium, -medium-replay x 3 seeds, quick
    scripts/d3rlpy_referee.py --dry-run            # what is done, what is left
    scripts/d3rlpy_referee.py --table-only         # only the README table, from the records

Each side of a run lands in ``--out`` (a results root, default ``results/d3rlpy-referee``):
bench's at ``<dataset>/<algo>/<variant>/seed_<n>/`` as ``bench run`` writes it, d3rlpy's at
``<dataset>/d3rlpy_<algo>/<variant>/seed_<n>/`` with the same records (result.json, config.json,
dataset.json, env.json, metrics.jsonl; plus train.json and d3rlpy's TorchScript policy.pt), so
``bench results --out DIR`` and ``bench report`` show both as algorithms of their own. The
variant is bench's name for the budget and ``--set`` overrides, the same on both sides. Each
finished run's records (``*.json``, ``*.jsonl``) are copied into ``--records`` (default
``reports/d3rlpy-referee/records``), from which the table in ``--report`` is written between its
``referee-table`` markers.

d3rlpy's side: bench's resolved config (``bench.config.make_config`` at ``--budget`` with the
``--set`` overrides) goes to d3rlpy's TD3PlusBC / IQL / CQL through
benchmarks/d3rlpy_offline/mirror.py (which refuses what d3rlpy cannot express and lists what it
does differently); the data are the suite's dataset (``bench.d4rl.qlearning_dataset``, exported
once per dataset file to ``<out>/_d3rlpy_data/``); the evaluation is bench's: the same env
(``ResolvedDataset.make_env_fn``), episodes and first seed (``bench.run.eval_seed``), d3rlpy's
greedy action (its ``save_policy``), scores normalized with the dataset's reference returns.

Resumable: a run with a result.json is skipped on either side; bench's unfinished runs resume
from their checkpoint; a d3rlpy run whose training finished (train.json) is only evaluated, one
that did not is trained again from the start.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import registry
from bench.algorithm import DEFAULT
from bench.config import config_to_json, make_config, parse_overrides
from bench.data.resolve import resolve
from bench.data.sampler import TaskSpec
from bench.errors import BenchError
from bench.evaluate import ACTING_THREADS, evaluate, normalized_score
from bench.io import atomic_write_json
from bench.making.makers import make_on_first_use
from bench.provenance import git_commit, package_versions
from bench.records import canonical_request_overrides, variant_name
from bench.results import load_results, t_interval
from bench.run.request import eval_seed

ALGOS = ("td3_bc", "iql", "cql")
DATASETS = ("hopper-medium", "hopper-medium-replay")
PREFIX = "d3rlpy_"  # d3rlpy's runs are recorded as algorithm d3rlpy_<algo>
D3RLPY_PYTHON = ROOT / ".venv-d3rlpy" / "bin" / "python"
SETUP_VENV = ROOT / "benchmarks" / "d3rlpy_dt" / "setup_venv.sh"
TRAIN = ROOT / "benchmarks" / "d3rlpy_offline" / "train.py"
TABLE_START, TABLE_END = "<!-- referee-table:start -->", "<!-- referee-table:end -->"


def log(msg: str) -> None:
    print(f"[referee] {msg}", file=sys.stderr, flush=True)


# -- the runs ---------------------------------------------------------------------------------

class Plan:
    """The settings both sides share for one algorithm: bench's resolved config and the variant
    (bench's directory name for the budget and the canonical overrides)."""

    def __init__(self, algo: str, budget: str, overrides: dict[str, str]) -> None:
        entry = registry.get(algo)
        if entry.kind != "offline":
            raise SystemExit(f"{algo} is not an offline algorithm")
        self.algo, self.budget = algo, budget
        self.overrides = canonical_request_overrides(algo, overrides, budget)
        self.config = make_config(entry.config_cls, budget, self.overrides, entry.defaults,
                                  entry.presets)
        self.variant = variant_name(budget, self.overrides)

    def run_dir(self, out: Path, dataset: str, seed: int, d3rlpy: bool) -> Path:
        algo = PREFIX + self.algo if d3rlpy else self.algo
        return out / dataset.replace("/", "__") / algo / self.variant / f"seed_{seed}"


class Data:
    """One dataset as both sides see it: resolved (made on first use), its evaluation env, its
    reference returns and, for d3rlpy, its arrays exported once per data file."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ds = resolve(name, make=make_on_first_use, log=log)
        self.make_env = self.ds.make_env_fn()
        probe = self.make_env()
        try:
            self.ds.check_env(probe)
            self.spec = TaskSpec.from_env(probe)
        finally:
            probe.close()

    def arrays_file(self, out: Path) -> Path:
        path = out / "_d3rlpy_data" / f"{self.ds.sha256[:16]}.npz"
        if not path.exists():
            from bench.d4rl import qlearning_dataset

            path.parent.mkdir(parents=True, exist_ok=True)
            arrays = qlearning_dataset(self.name)
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # np.savez adds .npz
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
            log(f"exported {self.name} ({len(arrays['actions'])} transitions) to {path}")
        return path


def run_ours(plan: Plan, data: Data, seed: int, args: argparse.Namespace) -> Path:
    directory = plan.run_dir(args.out, data.name, seed, d3rlpy=False)
    if (directory / "result.json").exists():
        return directory
    command = [sys.executable, "-m", "bench", "run", "--algo", plan.algo, "--dataset", data.name,
               "--seed", str(seed), "--budget", plan.budget, "--out", str(args.out),
               "--eval-episodes", str(args.eval_episodes)]
    command += [a for k, v in plan.overrides.items() for a in ("--set", f"{k}={v}")]
    if (directory / "checkpoint.pt").exists():
        command.append("--resume")
    log(f"bench {plan.algo} on {data.name}, seed {seed}: {' '.join(command[2:])}")
    subprocess.run(command, check=True, cwd=ROOT)
    return directory


class TorchScriptAgent:
    """d3rlpy's exported greedy policy (observations in, env actions out) as an agent for
    ``bench.evaluate.evaluate``: stateless, not declared batch-invariant (so one process)."""

    batch_invariant_act = False

    def __init__(self, path: Path) -> None:
        import torch

        self.torch = torch
        self.policy = torch.jit.load(str(path), map_location="cpu").eval()

    def initial_state(self, num_envs: int, condition: Any = DEFAULT) -> None:
        return None

    def act(self, observations: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        with self.torch.no_grad():
            obs = self.torch.as_tensor(observations, dtype=self.torch.float32)
            return self.policy(obs).numpy(), state

    def observe(self, state: Any, actions: np.ndarray, rewards: np.ndarray) -> Any:
        return state


def run_d3rlpy(plan: Plan, data: Data, seed: int, args: argparse.Namespace) -> Path:
    directory = plan.run_dir(args.out, data.name, seed, d3rlpy=True)
    if (directory / "result.json").exists():
        return directory
    name = PREFIX + plan.algo
    wall_start = time.perf_counter()
    if not ((directory / "train.json").exists() and (directory / "policy.pt").exists()):
        if not D3RLPY_PYTHON.exists():
            subprocess.run(["bash", str(SETUP_VENV)], check=True, cwd=ROOT)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in ("train.json", "policy.pt", "metrics.jsonl"):
            (directory / stale).unlink(missing_ok=True)
        atomic_write_json(directory / "config.json", {
            "algo": name, "mirrors": plan.algo, "dataset": data.name, "env": None, "seed": seed,
            "budget": plan.budget, "overrides": plan.overrides,
            "config": config_to_json(plan.config), "kind": "offline",
            "eval_episodes": args.eval_episodes, "command": sys.argv})
        atomic_write_json(directory / "dataset.json", data.ds.provenance())
        command = [str(D3RLPY_PYTHON), str(TRAIN), "--algo", plan.algo,
                   "--config", str(directory / "config.json"),
                   "--data", str(data.arrays_file(args.out)),
                   "--action-low", *map(repr, data.spec.action_low.tolist()),
                   "--action-high", *map(repr, data.spec.action_high.tolist()),
                   "--max-episode-steps", str(data.spec.max_episode_steps),
                   "--seed", str(seed), "--out", str(directory)]
        log(f"d3rlpy {plan.algo} on {data.name}, seed {seed}: {plan.config.num_updates} updates")
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    train = json.loads((directory / "train.json").read_text())
    config = json.loads((directory / "config.json").read_text())
    config["d3rlpy_config"], config["differences"] = train["d3rlpy_config"], train["differences"]
    atomic_write_json(directory / "config.json", config)

    log(f"evaluating d3rlpy {plan.algo} on {data.name}, seed {seed}: {args.eval_episodes} "
        "episodes")
    import torch

    res = evaluate(TorchScriptAgent(directory / "policy.pt"), data.make_env,
                   episodes=args.eval_episodes, seed=eval_seed(seed), mode="auto",
                   desc=f"evaluating {name}")
    ref = data.ds.ref_scores
    score = float(normalized_score(res.returns, ref).mean()) if ref else None
    if not np.isfinite(res.returns).all() or (score is not None and not math.isfinite(score)):
        raise BenchError(f"evaluating {directory} gave non-finite returns {res.returns[:5]}")
    condition = {"episode_returns": res.returns.tolist(),
                 "episode_lengths": res.lengths.tolist(), "mean_return": res.mean_return,
                 "normalized_score": score, "seconds": res.seconds}
    atomic_write_json(directory / "env.json", {
        "versions": {"training": train["versions"], "evaluation": package_versions()},
        "git": git_commit(), "device": "cpu", "torch_threads": train["torch_threads"],
        "platform": platform.platform(), "cpu_count": os.cpu_count()})
    atomic_write_json(directory / "result.json", {
        "algo": name, "dataset": data.name, "kind": "offline",
        "dataset_id": data.ds.dataset_id, "dataset_source": data.ds.source,
        "dataset_sha256": data.ds.sha256, "env": None, "seed": seed, "budget": plan.budget,
        "overrides": plan.overrides, "variant": plan.variant, "condition": DEFAULT.label,
        "episode_returns": condition["episode_returns"], "mean_return": res.mean_return,
        "normalized_score": score, "ref_min": ref.ref_min if ref else None,
        "ref_max": ref.ref_max if ref else None, "ref_source": ref.source if ref else None,
        "conditions": {DEFAULT.label: condition},
        "evaluation": {"first_seed": eval_seed(seed), "episodes": args.eval_episodes,
                       "mode": "auto", "torch_threads": torch.get_num_threads(),
                       "acting_threads": ACTING_THREADS, "batch_invariant_act": False},
        "timings": {"train_seconds": train["train_seconds"], "eval_seconds": res.seconds,
                    "wall_seconds_this_session": time.perf_counter() - wall_start,
                    "steps": train["steps"], "steps_this_session": train["steps"],
                    "updates_per_s": train["updates_per_s"]},
        "referee": {"library": "d3rlpy", "version": train["versions"]["d3rlpy"],
                    "mirrors": plan.algo},
        "git": git_commit()})
    return directory


def save_records(directory: Path, out: Path, records: Path | None) -> None:
    """A finished run's records (*.json, *.jsonl; no checkpoint, no policy) into ``records``."""
    if records is None or not (directory / "result.json").exists():
        return
    dest = records / directory.relative_to(out)
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(directory.iterdir()):
        if path.is_file() and re.search(r"\.jsonl?$", path.name):
            shutil.copy2(path, dest / path.name)


# -- the comparison ---------------------------------------------------------------------------

def _cell(scores: np.ndarray) -> tuple[str, float, float]:
    if len(scores) == 0:
        return "—", math.nan, math.nan
    mean, half = float(scores.mean()), t_interval(scores)
    ci = "" if math.isnan(half) else f" ± {half:.1f}"
    return f"{mean:.1f}{ci} (n={len(scores)})", mean, half


def comparison_table(root: Path, algos: list[str], datasets: list[str], variant: str) -> str:
    """Markdown: per algorithm and dataset, bench's and d3rlpy's normalized score, mean ± 95%
    t-interval half-width over seeds, and whether each mean lies in the other's interval."""
    runs = load_results(root) if root.is_dir() else None
    lines = ["| algorithm | dataset | bench | d3rlpy 2.8.1 | agree |",
             "|---|---|---|---|---|"]
    for algo in algos:
        for dataset in datasets:
            cells, stats = [], []
            for name in (algo, PREFIX + algo):
                scores = np.array([])
                if runs is not None and len(runs):
                    rows = runs[(runs["algo"] == name) & (runs["dataset"] == dataset)
                                & (runs["variant"] == variant)]
                    scores = rows["normalized_score"].dropna().to_numpy(float)
                text, mean, half = _cell(scores)
                cells.append(text)
                stats.append((mean, half))
            (m1, h1), (m2, h2) = stats
            if any(math.isnan(x) for x in (m1, h1, m2, h2)):
                agree = "—"
            else:
                agree = "yes" if abs(m1 - m2) <= min(h1, h2) else "no"
            lines.append(f"| {algo} | {dataset} | {cells[0]} | {cells[1]} | {agree} |")
    note = (f"\nNormalized score (0 = random, 100 = expert) at variant `{variant}`: mean ± 95% "
            "Student-t interval over seeds (n = seeds). *agree*: each mean lies inside the "
            "other's interval; — where a side has fewer than 2 seeds.")
    return "\n".join(lines) + "\n" + note


def write_table(report: Path, table: str) -> None:
    text = report.read_text() if report.exists() else ""
    block = f"{TABLE_START}\n{table}\n{TABLE_END}"
    if TABLE_START in text and TABLE_END in text:
        head, rest = text.split(TABLE_START, 1)
        text = head + block + rest.split(TABLE_END, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text)


# -- main ---------------------------------------------------------------------------------------

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--budget", default="quick", choices=("smoke", "quick", "full"))
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override a config field on both sides (repeatable)")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--side", choices=("both", "ours", "d3rlpy"), default="both")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "d3rlpy-referee",
                   help="results root the runs are made in")
    p.add_argument("--records", default=str(ROOT / "reports" / "d3rlpy-referee" / "records"),
                   help="where finished runs' records are copied and the table is read from "
                        "('' : neither; the table is then read from --out)")
    p.add_argument("--report", type=Path,
                   default=ROOT / "reports" / "d3rlpy-referee" / "README.md",
                   help="markdown file whose referee-table block is (re)written")
    p.add_argument("--table-only", action="store_true",
                   help="run nothing; write the table from the records")
    p.add_argument("--dry-run", action="store_true", help="list each run's state; run nothing")
    args = p.parse_args()
    args.out = args.out.resolve()
    records = Path(args.records).resolve() if args.records else None
    overrides = parse_overrides(args.overrides)
    for algo in args.algos:
        if algo not in registry.all_algorithms():
            raise SystemExit(f"{algo} is not registered (bench/algos/{algo}.py)")
    plans = [Plan(algo, args.budget, overrides) for algo in args.algos]
    variants = {plan.variant for plan in plans}
    if len(variants) > 1:  # an override that only some algorithms' configs set away from budget
        raise SystemExit(f"the algorithms' variants differ ({', '.join(sorted(variants))}); run "
                         "them separately")
    variant = variants.pop()

    failed: list[str] = []
    if not args.table_only:
        sides = {"both": (False, True), "ours": (False,), "d3rlpy": (True,)}[args.side]
        datasets: dict[str, Data] = {}
        for dataset in args.datasets:
            for seed in args.seeds:
                for plan in plans:
                    for d3rlpy in sides:
                        directory = plan.run_dir(args.out, dataset, seed, d3rlpy)
                        if args.dry_run:
                            state = ("finished" if (directory / "result.json").exists() else
                                     "trained, to evaluate" if (directory / "train.json").exists()
                                     else "to resume" if (directory / "checkpoint.pt").exists()
                                     else "to run")
                            print(f"{state}\t{directory}")
                            continue
                        if (directory / "result.json").exists():
                            save_records(directory, args.out, records)
                            continue
                        try:
                            if dataset not in datasets:
                                datasets[dataset] = Data(dataset)
                            run = run_d3rlpy if d3rlpy else run_ours
                            save_records(run(plan, datasets[dataset], seed, args), args.out,
                                         records)
                        # One failed run (a subprocess's exit status, bad data, a usage error):
                        # say so and go on with the rest.
                        except (subprocess.CalledProcessError, BenchError, OSError,
                                ValueError) as exc:
                            failed.append(f"{directory}: {type(exc).__name__}: {exc}")
                            log(f"FAILED {failed[-1]}")
        if args.dry_run:
            return 0
    # Every algorithm's rows, whichever --algos this invocation ran (runs may be split).
    table = comparison_table(records or args.out, list(ALGOS), args.datasets, variant)
    print(table)
    write_table(args.report, table)
    log(f"wrote the table into {args.report}")
    if failed:
        log(f"{len(failed)} run(s) failed (run the same command again to retry them):\n  "
            + "\n  ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
