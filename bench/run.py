"""One run: resolve data, build the algorithm, train with checkpoints, evaluate, write the run dir.

Run directory ``<out>/<dataset>/<algo>/<variant>/seed_<n>/``::

    config.json     resolved config, budget, overrides, command
    dataset.json    dataset id, source, provenance, sha256, reference scores
    env.json        package versions, git commit, device, torch threads
    metrics.jsonl   one line per log interval (losses averaged over the interval, timings)
    checkpoint.pt   latest checkpoint (atomic: temp file + rename)
    snapshots/      standalone policy files every ``snapshot_every`` steps (when set)
    result.json     written last: returns, normalized score, timings
    error.json      only if the run stopped on an error (e.g. a non-finite loss)
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import registry
from bench.algorithm import Algorithm
from bench.config import (DEVICES, EVAL_MODES, check_choice, check_count,
                          check_seed, config_to_dict, config_to_json, make_config)
from bench.data import DatasetSpec, Sampler, load_flat, resolve
from bench.data.resolve import check_dataset_name, make_env
from bench.errors import BenchError, DatasetError, NonFiniteLossError, UsageError, unknown_name
from bench.evaluate import ACTING_THREADS, evaluate, normalized_score
from bench.io import atomic_write_bytes, atomic_write_json
from bench.locks import file_lock
from bench.making.makers import make_on_first_use
from bench.perf import tune_allocator
from bench.progress import progress_bar
from bench.provenance import git_commit, package_versions
from bench.records import (canonical_request_overrides, older_spelling, read_record,
                           variant_name)
from bench.seeding import seed_everything
from bench.spaces import check_spaces


@dataclass
class RunRequest:
    algo: str
    dataset: str | None
    seed: int = 0
    budget: str = "quick"
    overrides: dict[str, str] = field(default_factory=dict)
    out: Path = Path("results")
    resume: bool = False
    device: str = "auto"
    eval_episodes: int = 10
    eval_mode: str = "auto"
    env: str | None = None  # online algorithms may train on a bare gymnasium env id
    stop_after: int | None = None  # testing hook: raise after this many updates (a "kill")


class SimulatedKill(BenchError):
    """Raised by ``stop_after`` to stand in for a killed process in tests."""


EVAL_SEED_BASE = 1_000_000_000


def eval_seed(run_seed: int) -> int:
    """First env seed of an evaluation: the same for every algorithm at a given run seed, and far
    from the seeds that generate datasets (0, 1, 2, … per episode), so no evaluation episode
    replays a start state of the training data."""
    return EVAL_SEED_BASE + 100_000 * run_seed


def run_dir(req: RunRequest) -> Path:
    """``<out>/<dataset>/<algo>/<variant>/seed_<n>`` with the variant named from the canonical
    spelling of ``req.overrides``; where that directory does not exist but one made under an
    older spelling of the same settings does, that one (``records.older_spelling``)."""
    dataset = (req.dataset or req.env or "").replace("/", "__")
    algo_dir = Path(req.out) / dataset / req.algo
    try:
        overrides = canonical_request_overrides(req.algo, req.overrides)
    except UsageError:  # execute reports it before any directory is made
        overrides = req.overrides
    variant = variant_name(req.budget, overrides)
    directory = algo_dir / variant / f"seed_{req.seed}"
    if directory.exists() or not req.overrides:
        return directory
    return older_spelling(algo_dir, req.algo, req.seed, variant) or directory


def pick_device(name: str) -> torch.device:
    check_choice("device", name, DEVICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but torch sees no CUDA device; "
                         "use --device cpu (or auto).")
    return torch.device(name)


def can_export_policy(entry: registry.AlgoEntry) -> bool:
    """Whether the algorithm writes standalone policy files (``snapshot_every``)."""
    return entry.cls.export_policy is not Algorithm.export_policy


def check_snapshots(algo: str, entry: registry.AlgoEntry, config: Any) -> None:
    """``snapshot_every`` only where the algorithm can export a policy: a usage error before
    training, not a crash at the first snapshot."""
    if config.snapshot_every and not can_export_policy(entry):
        exporters = ", ".join(n for n, e in registry.all_algorithms().items() if can_export_policy(e))
        raise UsageError(f"{algo} cannot export a standalone policy, so snapshot_every must stay "
                         f"0 (algorithms with policy snapshots: {exporters}).")


def check_env_id(env_id: str) -> str:
    """``env_id`` if gymnasium knows it, else a usage error naming the close ids."""
    import gymnasium as gym

    try:
        gym.spec(env_id)
    except gym.error.Error:
        raise unknown_name("environment", env_id, [k for k in gym.registry if "-v" in k]) from None
    return env_id


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            break  # a torn last line from a kill (or a damaged one): everything after it is dropped
        rows.append(row)
    return rows


def rng_state(device: torch.device) -> dict[str, Any]:
    """torch's generators a checkpoint keeps: the CPU one, and on CUDA every device's (dropout
    masks and PPO's exploration noise are drawn there), so a resumed run draws what an
    uninterrupted one would."""
    state: dict[str, Any] = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(checkpoint: dict[str, Any], device: torch.device) -> None:
    # torch.load maps every tensor to the run's device; the generators take CPU byte tensors.
    torch.set_rng_state(checkpoint["torch_rng"].cpu())
    if device.type == "cuda" and checkpoint.get("cuda_rng") is not None:
        torch.cuda.set_rng_state_all([s.cpu() for s in checkpoint["cuda_rng"]])


def check_results_root(out: Path) -> None:
    """A usage error when ``--out`` names a file or a path under one, an error when it cannot
    be written (runs and sweeps check it before anything; nothing is created here)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a directory; give a directory for the "
                         "results root (default ./results).")
    there = out  # the nearest folder that exists: where out is, or would be made
    try:
        while not there.exists() and there != there.parent:
            there = there.parent
    except OSError as exc:  # e.g. a parent that may not be searched
        raise BenchError(f"--out {out} cannot be reached ({exc}); give an --out that can be "
                         "written to (default ./results).") from None
    if not there.is_dir():
        raise UsageError(f"--out {out} cannot be made: {there} is a file, not a directory; give "
                         "a directory for the results root (default ./results).")
    if not os.access(there, os.W_OK | os.X_OK):
        what = "is not writable" if there == out else f"cannot be made ({there} is not writable)"
        raise BenchError(f"--out {out} {what}; give an --out that can be written to (default "
                         "./results), or change the folder's permissions.")


def finished_result(path: Path) -> dict[str, Any]:
    """A finished run's result.json, or a clear error when it is damaged. It is judged by the
    checks ``bench results`` and ``bench report`` apply, so that a sweep never counts as
    finished a run they leave out as unreadable."""
    try:
        return read_record(path)
    except (OSError, ValueError) as exc:  # ValueError: also bad JSON and bytes not UTF-8
        problem = str(exc)
    raise BenchError(f"{path} is damaged ({problem}). Nothing was deleted; move it aside and run "
                     "again with --resume to evaluate the final checkpoint again, or move the run "
                     "directory aside to train from scratch.")


def execute(req: RunRequest, log=None) -> dict[str, Any]:
    """Run (or resume, or return the finished result of) one algorithm × dataset × seed."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    tune_allocator()
    entry = registry.get(req.algo)
    config = make_config(entry.config_cls, req.budget, req.overrides, entry.defaults,
                         entry.presets)
    # One spelling per setting (lr=1e-3 and lr=0.0010 are lr=0.001) in the run directory's name,
    # config.json and result.json, whatever was typed.
    req = dataclasses.replace(req, overrides=canonical_request_overrides(req.algo, req.overrides))
    if (req.dataset is None) == (req.env is None):
        raise UsageError("give exactly one of --dataset or --env.")
    if req.dataset is not None:  # before its run directory is looked at: one id, one directory
        check_dataset_name(req.dataset)
    if req.env is not None and entry.kind == "offline":
        raise UsageError(f"{req.algo} learns offline from a dataset: use --dataset, not --env.")
    if req.env is not None and entry.kind == "online" and entry.cls.dataset_use(config) == "required":
        raise UsageError(f"{req.algo} with these settings learns from a dataset: pass "
                         f"--dataset (e.g. --dataset hopper-expert) instead of --env.")
    check_snapshots(req.algo, entry, config)
    check_seed(req.seed)
    check_count("--eval-episodes", req.eval_episodes)
    check_choice("eval mode", req.eval_mode, EVAL_MODES)
    device = pick_device(req.device)
    directory = run_dir(req)
    variant = variant_name(req.budget, req.overrides)
    if directory.parent.name != variant:
        log(f"[bench] this run was found under an older spelling of its settings: {directory} "
            f"(today's name of its variant is {variant}); using that directory.")
    check_results_root(req.out)
    finished = _finished_or_refused(req, directory, log)
    if finished is not None:
        return finished
    # Resolve (and if needed make) the dataset, or check the env id, then check the evaluation
    # env against the data and load the data, before touching the results root, so that bad
    # input leaves nothing behind.
    source = _Source.from_request(req, log)
    source.prepare(entry.kind == "offline" or entry.cls.dataset_use(config) != "none",
                   req.algo)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot make the run directory {directory}: {exc}. Give an --out "
                         "that can be written to.") from None
    with file_lock(directory / ".lock", blocking=False, what=f"run directory {directory}"):
        # Again under the lock: an identical run may have finished (or checkpointed) between the
        # first look and taking the lock; this one must not redo or silently resume it.
        finished = _finished_or_refused(req, directory, log)
        if finished is not None:
            return finished
        return _execute_locked(req, entry, config, device, directory, source, log)


def _finished_or_refused(req: RunRequest, directory: Path, log) -> dict[str, Any] | None:
    """The result of a finished run; a usage error for an unfinished one without --resume;
    None when the run is to go ahead."""
    if (directory / "result.json").exists():
        result = finished_result(directory / "result.json")
        evaluated = len(result.get("episode_returns", []))  # absent: a record not bench's own
        # Evaluation settings are not part of the run directory's name, so a changed
        # --eval-episodes finds the finished run: say so rather than pass its score off as asked.
        note = (f" Note: it was evaluated on {evaluated} episodes, not the {req.eval_episodes} "
                "asked for now; to evaluate it again, move result.json aside and run with "
                "--resume (the final checkpoint is evaluated, not retrained)."
                if req.eval_episodes and evaluated and evaluated != req.eval_episodes else "")
        log(f"[bench] {directory} is already complete; showing its result (delete "
            f"result.json to rerun).{note}")
        return result
    if (directory / "checkpoint.pt").exists() and not req.resume:
        raise UsageError(f"{directory} holds an unfinished run; pass --resume to continue it, "
                         "or choose another --out.")
    return None


@dataclass
class _Source:
    """Where a run's data and evaluation env come from: a dataset, or (online) a bare env id."""

    name: str
    make_env: Any
    ref: Any
    provenance: dict[str, Any]
    dataset: Any = None
    spec: Any = None  # the env's DatasetSpec (``prepare``)
    flat: Any = None  # the dataset's arrays, when the run learns from them (``prepare``)

    def prepare(self, uses_data: bool, algo: str) -> None:
        """Refuse spaces ``algo`` cannot take, make a probe env (its spaces; for a dataset,
        refuse one whose observations are made differently from the data's) and load the data
        if the run uses them."""
        algorithms = {name: entry.cls for name, entry in registry.all_algorithms().items()}
        what, error = ((f"dataset {self.dataset.dataset_id}", DatasetError)
                       if self.dataset is not None else (f"env {self.name}", BenchError))
        if self.dataset is not None:
            # The data's own spaces first: data that no setup could use is refused as such, even
            # where its env cannot be made on this machine.
            check_spaces(algo, algorithms, *self.dataset.recorded_spaces(), what, error)
        probe_env = self.make_env()
        try:
            check_spaces(algo, algorithms, probe_env.observation_space,
                         probe_env.action_space, what, error)
            if self.dataset is not None:
                self.dataset.check_env(probe_env)
            self.spec = DatasetSpec.for_env(probe_env)
        finally:
            probe_env.close()
        if uses_data and self.dataset is not None:
            self.flat = load_flat(self.dataset.dataset_id, self.dataset.sha256)

    @classmethod
    def from_request(cls, req: RunRequest, log) -> "_Source":
        if req.dataset is not None:
            ds = resolve(req.dataset, make=make_on_first_use, log=log)
            return cls(req.dataset, ds.make_env_fn(), ds.ref_scores, ds.provenance(), ds)
        from bench.data.cards import env_reference_scores

        check_env_id(req.env)
        ref = env_reference_scores(req.env)
        return cls(req.env, partial(make_env, req.env), ref,
                   {"env": req.env, "ref_min": ref.ref_min if ref else None,
                    "ref_max": ref.ref_max if ref else None, "ref_source": ref.source if ref else None})


def _execute_locked(req, entry, config, device, directory: Path, source: _Source, log) -> dict[str, Any]:
    wall_start = time.perf_counter()
    ckpt_path = directory / "checkpoint.pt"
    metrics_path = directory / "metrics.jsonl"
    ref = source.ref
    seed_everything(req.seed)
    spec, flat = source.spec, source.flat
    sampler = None
    if flat is not None:
        sampler = Sampler(flat, seed=req.seed)
        spec = sampler.spec(spec.action_low, spec.action_high, spec.max_episode_steps, spec.env_id)
    algo = entry.cls(config, spec, device)
    if sampler is not None:
        algo.attach_dataset(sampler)
    if entry.kind == "online":
        algo.setup(source.make_env, req.seed)

    start_step, train_seconds, window = 0, 0.0, {}
    if ckpt_path.exists():  # --resume (execute() refused otherwise)
        damaged = (f"Nothing was deleted; move {ckpt_path} aside and run again to start this "
                   "run over (its progress is lost), or use another --out.")
        try:
            ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        except Exception as exc:  # truncated, empty or not a torch file: unpickling errors vary
            raise BenchError(f"checkpoint {ckpt_path} cannot be read ({type(exc).__name__}: "
                             f"{exc}). {damaged}") from None
        try:
            algo.load_state_dict(ckpt["algo"])
            if sampler is not None:
                sampler.load_state_dict(ckpt["sampler"])
            restore_rng_state(ckpt, device)
            start_step, train_seconds, window = ckpt["step"], ckpt["train_seconds"], ckpt["window"]
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise BenchError(f"checkpoint {ckpt_path} does not hold this run's state "
                             f"({type(exc).__name__}: {exc}). {damaged}") from None
        kept = [r for r in _read_metrics(metrics_path) if r["step"] <= start_step]
        atomic_write_bytes(metrics_path, "".join(json.dumps(r) + "\n" for r in kept).encode())
        log(f"[bench] resuming {directory} from step {start_step}")
    elif metrics_path.exists():
        metrics_path.unlink()  # a run that died before its first checkpoint starts over

    atomic_write_json(directory / "config.json", {
        "algo": req.algo, "dataset": req.dataset, "env": req.env, "seed": req.seed,
        "budget": req.budget, "overrides": req.overrides, "config": config_to_json(config),
        "kind": entry.kind, "eval_episodes": req.eval_episodes, "command": sys.argv})
    atomic_write_json(directory / "dataset.json", source.provenance)
    atomic_write_json(directory / "env.json", {
        "versions": package_versions(), "git": git_commit(), "device": str(device),
        "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
        "cpu_count": os.cpu_count()})

    def save_checkpoint(step: int) -> None:
        buf = io.BytesIO()
        torch.save({"step": step, "algo": algo.state_dict(),
                    "sampler": sampler.state_dict() if sampler is not None else None,
                    **rng_state(device), "train_seconds": train_seconds,
                    "window": window, "spec": spec.to_dict(), "algo_name": req.algo,
                    "config": config_to_dict(config)}, buf)
        atomic_write_bytes(ckpt_path, buf.getvalue())

    def advance() -> tuple[dict[str, float], int]:
        """One unit of training: an update (offline) or a rollout + update (online)."""
        if entry.kind == "offline":
            return algo.update(algo.sample(sampler)), 1
        before = algo.env_steps
        return algo.train_iteration(), algo.env_steps - before

    def crossed(every: int, before: int, after: int) -> bool:
        return every > 0 and after // every > before // every

    total = config.num_updates
    unit = "upd" if entry.kind == "offline" else "env step"
    rate_key = "updates_per_s" if entry.kind == "offline" else "env_steps_per_s"
    eval_conditions = algo.eval_conditions()
    make_env = source.make_env
    with open(metrics_path, "a") as metrics_file, \
            progress_bar(total=total, initial=start_step, desc=f"{req.algo} on {source.name}",
                         unit=unit) as bar:
        tick = time.perf_counter()
        done = last_logged = start_step
        while done < total:
            before = done
            losses, n_units = advance()
            done += n_units
            bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
            if bad:
                atomic_write_json(directory / "error.json", {
                    "error": "non-finite loss", "step": done,
                    # as text where not finite: error.json is strict JSON, which has no NaN
                    "losses": {k: v if math.isfinite(v) else repr(v) for k, v in losses.items()}})
                raise NonFiniteLossError(
                    f"non-finite loss at step {done} ({bad}); stopped. The last good "
                    f"checkpoint is kept at {ckpt_path} (if one was written). Try a lower "
                    "learning rate (--set lr=...) or check the dataset for NaNs.")
            for k, v in losses.items():
                window[k] = window.get(k, 0.0) + v
                window["_n/" + k] = window.get("_n/" + k, 0) + 1
            bar.update(n_units)
            if crossed(config.log_every, before, done) or done >= total:
                now = time.perf_counter()
                train_seconds += now - tick
                row: dict[str, Any] = {"step": done}
                row.update({k: v / window["_n/" + k] for k, v in window.items()
                            if not k.startswith("_n/")})
                row["time/train_seconds"] = train_seconds
                row[f"time/{rate_key}"] = (done - last_logged) / max(now - tick, 1e-9)
                last_logged = done
                window = {}
                if config.eval_every and crossed(config.eval_every, before, done) and done < total:
                    res = evaluate(algo, make_env, episodes=req.eval_episodes,
                                   seed=eval_seed(req.seed), condition=eval_conditions[0],
                                   mode=req.eval_mode)
                    row["eval/return"] = res.mean_return
                    if ref:
                        row["eval/normalized_score"] = float(normalized_score(res.returns, ref).mean())
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
                tick = time.perf_counter()
            if crossed(config.snapshot_every, before, done) or (config.snapshot_every and done >= total):
                # Standalone policy files (no optimizer), e.g. to pick reference policies from.
                buf = io.BytesIO()
                torch.save({"step": done, **algo.export_policy()}, buf)
                atomic_write_bytes(directory / "snapshots" / f"step_{done:09d}.pt", buf.getvalue())
            if crossed(config.checkpoint_every, before, done) or done >= total:
                save_checkpoint(done)
            if req.stop_after is not None and done >= req.stop_after:
                raise SimulatedKill(f"stopped after {done} steps (stop_after)")

    eval_results = {}
    eval_seconds = 0.0
    for condition in eval_conditions:
        res = evaluate(algo, make_env, episodes=req.eval_episodes, seed=eval_seed(req.seed),
                       condition=condition, mode=req.eval_mode, desc=f"evaluating {condition}")
        eval_seconds += res.seconds
        score = float(normalized_score(res.returns, ref).mean()) if ref else None
        if not np.isfinite(res.returns).all() or (score is not None and not math.isfinite(score)):
            # result.json is strict JSON and a NaN score would poison every table: stop here,
            # before it is written, with the final checkpoint kept.
            raise BenchError(f"evaluating {directory} ({condition}) gave non-finite returns "
                             f"{res.returns.tolist()[:5]} (normalized score {score}); the "
                             "environment or the policy produced NaN or inf. The final "
                             f"checkpoint is kept: --resume evaluates it again.")
        eval_results[condition] = {
            "episode_returns": res.returns.tolist(), "episode_lengths": res.lengths.tolist(),
            "mean_return": res.mean_return,
            "normalized_score": score,
            "seconds": res.seconds,
        }
    headline = eval_results[eval_conditions[0]]
    result = {
        "algo": req.algo, "dataset": source.name, "kind": entry.kind,
        "dataset_id": source.dataset.dataset_id if source.dataset else None,
        "dataset_source": source.dataset.source if source.dataset else None,
        "dataset_sha256": source.dataset.sha256 if source.dataset else None,
        "env": req.env, "seed": req.seed, "budget": req.budget, "overrides": req.overrides,
        "variant": variant_name(req.budget, req.overrides),
        "condition": eval_conditions[0],
        "episode_returns": headline["episode_returns"],
        "mean_return": headline["mean_return"],
        "normalized_score": headline["normalized_score"],
        "ref_min": ref.ref_min if ref else None, "ref_max": ref.ref_max if ref else None,
        "ref_source": ref.source if ref else None,
        "conditions": eval_results,
        # How the episodes were run: episode i of each condition reset with first_seed + i.
        "evaluation": {"first_seed": eval_seed(req.seed), "episodes": req.eval_episodes,
                       "mode": req.eval_mode, "torch_threads": torch.get_num_threads(),
                       "acting_threads": ACTING_THREADS,
                       "batch_invariant_act": bool(getattr(algo, "batch_invariant_act", False))},
        "timings": {
            "train_seconds": train_seconds, "eval_seconds": eval_seconds,
            "wall_seconds_this_session": time.perf_counter() - wall_start,
            "steps": total, "steps_this_session": total - start_step,
            rate_key: total / train_seconds if train_seconds > 0 else None,
        },
        "git": git_commit(),
    }
    atomic_write_json(directory / "result.json", result)
    return result
