"""One run: resolve data, build the algorithm, train with checkpoints, evaluate, write the run dir.

``request`` (what is asked and the checks before anything is written), ``source`` (the data and
evaluation env), ``loop`` (the training loop and its callbacks), ``checkpoint`` (what --resume
reads); this module puts them together in ``execute``.

Run directory ``<out>/<dataset>/<algo>/<variant>/seed_<n>/``::

    config.json     resolved config, budget, overrides, command
    dataset.json    dataset id, source, provenance, sha256, reference scores
    env.json        package versions, git commit, device, torch threads
    metrics.jsonl   one line per log interval (losses averaged over the interval, timings)
    tensorboard/    with --logger tensorboard: the same rows as event files (``loggers``)
    wandb/, wandb_id  with --logger wandb: the W&B run's files and its id (``loggers``)
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
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from bench import registry
from bench.config import (EVAL_MODES, check_choice, check_count, check_seed, config_to_dict,
                          config_to_json, make_config)
from bench.data import Sampler
from bench.data.resolve import check_dataset_name
from bench.errors import BenchError, UsageError
from bench.envs.goal_tasks import success_summary
from bench.evaluate import ACTING_THREADS, WithoutTaskGoal, evaluate, normalized_score
from bench.io import atomic_write_bytes, atomic_write_json
from bench.locks import file_lock
from bench.perf import tune_allocator
from bench.provenance import git_commit, package_versions
from bench.records import canonical_request_overrides, variant_name
from bench.run import checkpoint
from bench.run.checkpoint import restore_rng_state, rng_state
from bench.run.loggers import LOGGERS, Loggers, check_loggers, hyperparameters, parse_logger_names
from bench.run.loop import Callback, Every, MetricsLog, NonFiniteGuard, Progress, train
from bench.run.request import (EVAL_SEED_BASE, RunRequest, can_export_policy, check_env_id,
                               check_results_root, check_snapshots, eval_seed, finished_or_refused,
                               finished_result, pick_device, run_dir)
from bench.run.source import DataSource
from bench.seeding import seed_everything

__all__ = ["Callback", "EVAL_SEED_BASE", "LOGGERS", "Progress", "RunRequest", "can_export_policy",
           "check_env_id", "check_loggers", "check_results_root", "check_snapshots", "eval_seed",
           "execute", "finished_result", "parse_logger_names", "pick_device", "restore_rng_state",
           "rng_state", "run_dir"]


def execute(req: RunRequest, log=None, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Run (or resume, or return the finished result of) one algorithm × dataset × seed.
    ``callbacks`` are called after every unit of training, after the run's own (metrics,
    snapshots, checkpoints): e.g. a logger, or a test's stand-in for a kill."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    tune_allocator()
    entry = registry.get(req.algo)
    config = make_config(entry.config_cls, req.budget, req.overrides, entry.defaults,
                         entry.presets)
    # One spelling per setting (lr=1e-3 and lr=0.0010 are lr=0.001) in the run directory's name,
    # config.json and result.json, whatever was typed.
    overrides = canonical_request_overrides(req.algo, req.overrides, req.budget)
    req = dataclasses.replace(req, overrides=overrides)
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
    # Known loggers, each with its package importable (a missing one: exit 2, nothing written).
    req = dataclasses.replace(req, loggers=check_loggers(parse_logger_names(
        [req.loggers] if isinstance(req.loggers, str) else req.loggers)))
    device = pick_device(req.device)
    directory = run_dir(req)
    variant = variant_name(req.budget, req.overrides)
    if directory.parent.name != variant:
        log(f"[bench] this run was found under an older spelling of its settings: {directory} "
            f"(today's name of its variant is {variant}); using that directory.")
    check_results_root(req.out)
    finished = finished_or_refused(req, directory, log)
    if finished is not None:
        return finished
    # Resolve (and if needed make) the dataset, or check the env id, then check the evaluation
    # env against the data and load the data, before touching the results root, so that bad
    # input leaves nothing behind.
    source = DataSource.from_request(req, log)
    source.prepare(entry.kind == "offline" or entry.cls.dataset_use(config) != "none",
                   req.algo)
    entry.cls.check_task(config, source.spec)
    if source.flat is not None:
        entry.cls.check_data(config, source.flat)
    check_goal_task(req, entry, config, source, log)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot make the run directory {directory}: {exc}. Give an --out "
                         "that can be written to.") from None
    with file_lock(directory / ".lock", blocking=False, what=f"run directory {directory}"):
        # Again under the lock: an identical run may have finished (or checkpointed) between the
        # first look and taking the lock; this one must not redo or silently resume it.
        finished = finished_or_refused(req, directory, log)
        if finished is not None:
            return finished
        loggers = Loggers(log=log)  # opened once the run's first step is known; closed on any exit
        try:
            return _train_and_evaluate(req, entry, config, device, directory, source, log,
                                       callbacks, loggers)
        finally:
            loggers.close()


def check_goal_task(req: RunRequest, entry: registry.AlgoEntry, config: Any,
                    source: DataSource, log) -> None:
    """Refuse an online algorithm on a goal task (it would train on the [observation, goal] rows
    its networks were not sized for); tell an offline one that does not take goals that it will
    not see them; tell an online one given a dataset it does not read what the dataset is for."""
    if source.spec.goal_dim and not entry.cls.takes_task_goals(config):
        # Goal-conditioned throughout, or (the IDMs) with the `task` goal source.
        takers = sorted(name if e.cls.uses_task_goals is True else f"{name} (goal_source=task)"
                        for name, e in registry.all_algorithms().items()
                        if e.cls.uses_task_goals is not False and e.kind == "offline")
        if entry.kind == "online":
            raise UsageError(f"{req.algo} learns online from the env's reward and cannot take "
                             f"{source.name}'s goal tasks (its env shows [observation, goal]); "
                             f"use a goal-conditioned algorithm: {', '.join(takers)}.")
        log(f"[bench] {req.algo} does not condition on goals: it learns from and acts on the "
            f"observation part of {source.name}, so it cannot tell its tasks apart "
            f"(goal-conditioned: {', '.join(takers)}).")
    if entry.kind == "online" and source.dataset is not None \
            and entry.cls.dataset_use(config) == "none":
        log(f"[bench] {req.algo} learns online and reads none of {source.name}'s data: the dataset "
            f"gives the env ({source.spec.env_id}) and the reference scores "
            f"(its results are filed under {source.name}).")


def _train_and_evaluate(req: RunRequest, entry: registry.AlgoEntry, config: Any,
                        device: torch.device, directory: Path, source: DataSource, log,
                        callbacks: Sequence[Callback], loggers: Loggers) -> dict[str, Any]:
    wall_start = time.perf_counter()
    ckpt_path = directory / "checkpoint.pt"
    metrics_path = directory / "metrics.jsonl"
    ref = source.ref
    seed_everything(req.seed)
    spec, sampler = source.spec, None
    if source.flat is not None:
        sampler = Sampler(source.flat, seed=req.seed)
        spec = dataclasses.replace(
            sampler.spec(spec.action_low, spec.action_high, spec.max_episode_steps, spec.env_id),
            goal_dim=spec.goal_dim, num_tasks=spec.num_tasks)
    algo = entry.cls(config, spec, device)
    if sampler is not None:
        algo.attach_dataset(sampler)
    if entry.kind == "online":
        algo.setup(source.make_env, req.seed)

    progress = Progress(step=0, total=config.total_units)
    if ckpt_path.exists():  # --resume (execute() refused otherwise)
        check_same_data(directory, source)

        def restore(saved: dict[str, Any]) -> None:
            algo.load_state_dict(saved["algo"])
            if sampler is not None:
                sampler.load_state_dict(saved["sampler"])

        saved = checkpoint.load(ckpt_path, device, restore)
        progress.step, progress.train_seconds = saved["step"], saved["train_seconds"]
        progress.window = saved["window"]
        checkpoint.trim_metrics(metrics_path, progress.step)
        log(f"[bench] resuming {directory} from step {progress.step}")
    elif metrics_path.exists():
        metrics_path.unlink()  # a run that died before its first checkpoint starts over
    start_step = progress.step
    code = write_run_records(req, entry, config, device, directory, source)  # git at start
    loggers.open(req.loggers, directory, first_step=start_step, wandb_project=req.wandb_project,
                 hparams=hyperparameters({"algo": req.algo, "dataset": source.name,
                                          "seed": req.seed, "budget": req.budget,
                                          "variant": directory.parent.name, "kind": entry.kind},
                                         config_to_json(config)))

    def advance() -> tuple[dict[str, float], int]:
        """One unit of training: an update (offline) or a rollout + update (online)."""
        if entry.kind == "offline":
            return algo.update(algo.sample(sampler), progress.step), 1
        before = algo.env_steps
        return algo.train_iteration(), algo.env_steps - before

    eval_conditions = algo.eval_conditions()
    # On a goal task (an env showing [observation, goal]) an algorithm that does not take task
    # goals acts on the observation part.
    agent = algo if not spec.goal_dim or algo.uses_task_goals else WithoutTaskGoal(algo, spec.obs_dim)

    def evaluate_headline() -> dict[str, float]:
        res = evaluate(agent, source.make_env, episodes=req.eval_episodes,
                       seed=eval_seed(req.seed), condition=eval_conditions[0], mode=req.eval_mode)
        row = {"eval/return": res.mean_return}
        if ref:
            row["eval/normalized_score"] = float(normalized_score(res.returns, ref).mean())
        return row

    def snapshot(step: int) -> None:
        # Standalone policy files (no optimizer), e.g. to pick reference policies from.
        buf = io.BytesIO()
        torch.save({"step": step, **algo.export_policy()}, buf)
        atomic_write_bytes(directory / "snapshots" / f"step_{step:09d}.pt", buf.getvalue())

    def save_checkpoint(step: int) -> None:
        checkpoint.save(ckpt_path, {
            "step": step, "algo": algo.state_dict(),
            "sampler": sampler.state_dict() if sampler is not None else None,
            **checkpoint.rng_state(device), "train_seconds": progress.train_seconds,
            "window": progress.window, "spec": spec.to_dict(), "algo_name": req.algo,
            "config": config_to_dict(config)})

    offline = entry.kind == "offline"
    rate_key = "updates_per_s" if offline else "env_steps_per_s"
    train(advance, progress, [
        NonFiniteGuard(directory, ckpt_path),
        MetricsLog(metrics_path, config.log_every, config.eval_every, rate_key, evaluate_headline,
                   on_row=[loggers.log_row]),
        Every(config.snapshot_every, snapshot, at_end=config.snapshot_every > 0),
        Every(config.checkpoint_every, save_checkpoint),
        *callbacks,
    ], desc=f"{req.algo} on {source.name}", unit="upd" if offline else "env step")

    eval_results, eval_seconds = {}, 0.0
    for condition in eval_conditions:
        res = evaluate(agent, source.make_env, episodes=req.eval_episodes,
                       seed=eval_seed(req.seed), condition=condition, mode=req.eval_mode,
                       desc=f"evaluating {condition.label}")
        eval_seconds += res.seconds
        score = float(normalized_score(res.returns, ref).mean()) if ref else None
        if not np.isfinite(res.returns).all() or (score is not None and not math.isfinite(score)):
            # result.json is strict JSON and a NaN score would poison every table: stop here,
            # before it is written, with the final checkpoint kept.
            raise BenchError(f"evaluating {directory} ({condition.label}) gave non-finite returns "
                             f"{res.returns.tolist()[:5]} (normalized score {score}); the "
                             "environment or the policy produced NaN or inf. The final "
                             f"checkpoint is kept: --resume evaluates it again.")
        eval_results[condition.label] = {
            "episode_returns": res.returns.tolist(), "episode_lengths": res.lengths.tolist(),
            "mean_return": res.mean_return, "normalized_score": score, "seconds": res.seconds,
        }
        if spec.num_tasks:  # a goal task: each return is a success (1) or not (0)
            eval_results[condition.label]["success"] = success_summary(
                res.returns, eval_seed(req.seed), spec.num_tasks)
    total, train_seconds = progress.total, progress.train_seconds
    headline = eval_results[eval_conditions[0].label]
    result = {
        "algo": req.algo, "dataset": source.name, "kind": entry.kind,
        "dataset_id": source.dataset.dataset_id if source.dataset else None,
        "dataset_source": source.dataset.source if source.dataset else None,
        "dataset_sha256": source.dataset.sha256 if source.dataset else None,
        "env": req.env, "seed": req.seed, "budget": req.budget, "overrides": req.overrides,
        "variant": variant_name(req.budget, req.overrides),
        "condition": eval_conditions[0].label,
        "episode_returns": headline["episode_returns"],
        "mean_return": headline["mean_return"],
        "normalized_score": headline["normalized_score"],
        "success": headline.get("success"),  # goal tasks: success rate overall and per task
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
        # The code this process loaded, not HEAD at the end (a commit made meanwhile is not it).
        "git": code,
    }
    atomic_write_json(directory / "result.json", result)
    loggers.finish(result)  # after result.json: a logger's failure cannot lose the result
    return result


def check_same_data(directory: Path, source: DataSource) -> None:
    """Refuse to resume a checkpoint trained on other data than the dataset here (a run carried
    to another machine whose self-made dataset came out different): its rest would train on a
    mixture. A run without a dataset, or from before dataset.json kept a checksum, passes."""
    if source.dataset is None or not (directory / "dataset.json").is_file():
        return
    try:
        trained_on = json.loads((directory / "dataset.json").read_text()).get("sha256")
    except (OSError, ValueError):
        return  # written atomically, so unreadable only if edited by hand: the checkpoint decides
    if trained_on and trained_on != source.dataset.sha256:
        raise UsageError(
            f"{directory} was trained on {source.name} with sha256 {trained_on[:12]}…, but the "
            f"dataset here has {source.dataset.sha256[:12]}…: resuming would mix the two. Move "
            "the run directory away (and a copy carried in reports/*/unfinished/) to start it "
            "over, or resume it where its dataset was made.")


def write_run_records(req: RunRequest, entry: registry.AlgoEntry, config: Any,
                      device: torch.device, directory: Path, source: DataSource) -> dict[str, Any]:
    """config.json, dataset.json and env.json: what was asked, on what data, with what code
    (returned: the git commit, for result.json)."""
    atomic_write_json(directory / "config.json", {
        "algo": req.algo, "dataset": req.dataset, "env": req.env, "seed": req.seed,
        "budget": req.budget, "overrides": req.overrides, "config": config_to_json(config),
        "kind": entry.kind, "eval_episodes": req.eval_episodes, "command": sys.argv})
    atomic_write_json(directory / "dataset.json", source.provenance)
    code = git_commit()
    atomic_write_json(directory / "env.json", {
        "versions": package_versions(), "git": code, "device": str(device),
        "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
        "cpu_count": os.cpu_count()})
    return code
