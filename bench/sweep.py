"""Sweeps: every algorithm × dataset (or env) × seed combination, run by a local process pool or
by Ray, with finished runs skipped and interrupted ones resumed.

A sweep is stateless: what is done is read from the run directories (``result.json`` means
finished, ``checkpoint.pt`` means resumable), so a killed sweep started again loses at most the
runs that were in flight, and those continue from their last checkpoint. A run that fails writes
``error.json`` into its run directory and a line into the sweep summary
(``<out>/sweeps/<timestamp>-<pid>.json``); the other runs go on.

Sweep file (TOML), every key optional except ``algo`` and one of ``dataset`` / ``env``
(``[[grid]]`` tables, each with any of these keys, make one sweep of several grids)::

    algo = ["bc", "dt"]
    dataset = ["hopper-medium", "hopper-medium-replay"]
    env = []                    # bare gymnasium envs, paired with online algorithms only
    seed = [0, 1, 2]
    budget = "quick"
    eval_episodes = 10
    logger = ["tensorboard"]    # as --logger (default none); wandb_project = "..." as --wandb-project
    [set]                       # --set overrides applied to every run
    eval_every = "5000"
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterator

from bench.errors import BenchError, LockBusyError, Terminated, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib
from bench.config import DEVICES, EVAL_MODES, check_choice, check_count, check_seed
from bench.data.resolve import check_dataset_name
from bench.environ import environ
from bench.io import atomic_write_json
from bench.locks import file_lock
from bench.making.makers import make_on_first_use
from bench.processes import terminate_workers
from bench.progress import progress_bar
from bench.records import canonical_request_overrides
from bench.run import (RunRequest, check_env_id, check_loggers, check_results_root,
                       check_snapshots, finished_result, parse_logger_names, pick_device, run_dir)

SWEEP_KEYS = {"algo", "dataset", "env", "seed", "budget", "set", "eval_episodes", "eval_mode",
              "device", "logger", "wandb_project"}
BACKENDS = ("local", "ray")
# A fresh worker process per run (below); Python 3.10's pool cannot, and reuses its workers.
ONE_RUN_PER_WORKER = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
STATUSES = ("done", "resumed", "skipped", "failed", "busy")


@dataclass
class SweepSpec:
    """What to run: the grid's axes and the settings every run shares."""

    algo: list[str]
    dataset: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    seed: list[int] = field(default_factory=lambda: [0])
    budget: str = "quick"
    overrides: dict[str, str] = field(default_factory=dict)
    eval_episodes: int = 10
    eval_mode: str = "auto"
    device: str = "auto"
    logger: list[str] = field(default_factory=list)  # experiment loggers of every run
    wandb_project: str | None = None


@dataclass
class Outcome:
    """What happened to one run of the sweep (one line of the summary)."""

    run_dir: str
    algo: str
    source: str
    seed: int
    # "done", "resumed", "skipped" (finished before), "failed", "busy" (another process is
    # running it now)
    status: str
    seconds: float = 0.0
    normalized_score: float | None = None
    error: str | None = None


def _override_text(value: Any) -> str:
    # TOML gives typed values; --set values are strings parsed against the config field's type,
    # so turn them into the same text a user would type (a list becomes "a,b").
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_override_text(v) for v in value)
    return str(value)


def _as_list(key: str, value: Any, kind: type) -> list[Any]:
    """``value`` or a list of values, each of type ``kind`` (a str or an int)."""
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
        raise UsageError(f"sweep key {key!r} must be a {kind.__name__} or a list of "
                         f"{kind.__name__}s, got {value!r}.")
    return values


def load_sweep_file(path: Path) -> list[dict[str, Any]]:
    """Read a TOML sweep file into one dict of ``SweepSpec`` keyword arguments per grid.

    Without ``[[grid]]`` tables the file is one grid. With them, each ``[[grid]]`` is a grid whose
    keys replace the top-level ones (its ``set`` table adds to the top-level ``set``), e.g. to give
    each algorithm its own ``eval_every``.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"sweep file {path} " + ("is a directory, not a file."
                                                  if path.is_dir() else "does not exist."))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"sweep file {path} is not UTF-8 text ({exc.reason} at byte "
                         f"{exc.start}); TOML files are UTF-8.") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"sweep file {path} is not valid TOML: {exc}") from None
    grids = raw.pop("grid", [{}])
    if not isinstance(grids, list) or not all(isinstance(g, dict) for g in grids):
        raise UsageError(f"sweep file {path}: `grid` must be [[grid]] tables.")
    if not grids:  # `grid = []` would silently drop the top-level grid: 0 runs
        raise UsageError(f"sweep file {path}: `grid` is empty; remove it to sweep the top-level "
                         "keys, or add [[grid]] tables.")
    top = _grid_values(raw, path)
    out = []
    for grid in grids:
        values = {**top, **_grid_values(grid, path)}
        if "overrides" in top and "overrides" in values:
            values["overrides"] = {**top["overrides"], **values["overrides"]}
        out.append(values)
    return out


def _grid_values(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    unknown = set(raw) - SWEEP_KEYS
    if unknown:
        raise UsageError(f"sweep file {path}: unknown key(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(SWEEP_KEYS | {'grid'}))}.")
    out: dict[str, Any] = {}
    try:
        for key in ("algo", "dataset", "env"):
            if key in raw:
                out[key] = _as_list(key, raw[key], str)
        if "seed" in raw:
            out["seed"] = [check_seed(s) for s in _as_list("seed", raw["seed"], int)]
        if "logger" in raw:  # a name, "a,b", or a list of them
            out["logger"] = list(parse_logger_names(_as_list("logger", raw["logger"], str)))
    except UsageError as exc:
        raise UsageError(f"sweep file {path}: {exc}") from None
    if "set" in raw:
        if not isinstance(raw["set"], dict):
            raise UsageError(f"sweep file {path}: `set` must be a table of key = value.")
        out["overrides"] = {k: _override_text(v) for k, v in raw["set"].items()}
    for key in ("budget", "eval_episodes", "eval_mode", "device", "wandb_project"):
        if key in raw:
            out[key] = raw[key]
    return out


def make_spec(file_values: dict[str, Any], flag_values: dict[str, Any]) -> SweepSpec:
    """A spec from a sweep file's values with command-line values on top (a flag that was given
    replaces the file's value for that key, so `--budget smoke` tries a sweep file quickly).
    Every shared setting is checked here, so a bad one fails before any run starts."""
    values = {**file_values, **{k: v for k, v in flag_values.items() if v is not None}}
    if not values.get("algo"):
        raise UsageError("a sweep needs at least one algorithm (`algo = [...]` in the sweep "
                         "file or --algo).")
    if not values.get("dataset") and not values.get("env"):
        raise UsageError("a sweep needs at least one dataset or env (`dataset = [...]` / "
                         "`env = [...]` in the sweep file, or --dataset / --env).")
    spec = SweepSpec(**values)
    check_count("eval_episodes", spec.eval_episodes)  # (the budget: make_config, in expand)
    check_choice("eval mode", spec.eval_mode, EVAL_MODES)
    check_choice("device", spec.device, DEVICES)  # whether CUDA is there: see run_sweep
    check_loggers(spec.logger)  # known names, their packages installed (here, not per run)
    if spec.wandb_project is not None and not isinstance(spec.wandb_project, str):
        raise UsageError(f"sweep key 'wandb_project' must be a str, got {spec.wandb_project!r}.")
    return spec


def expand_all(specs: list[SweepSpec], out: Path) -> list[RunRequest]:
    """The runs of every grid, each run directory once (the first grid that names it wins)."""
    runs: dict[Path, RunRequest] = {}
    for spec in specs:
        for req in expand(spec, out):
            runs.setdefault(run_dir(req), req)
    return list(runs.values())


def expand(spec: SweepSpec, out: Path) -> list[RunRequest]:
    """Every run of the sweep, in a stable order (datasets, then envs; algorithms; seeds).

    Unknown algorithms, dataset names and envs and bad ``--set`` values are usage errors raised
    here, before anything runs (a missing alias is made by its first run; a Minari id missing
    where a run resolves it fails that run). Envs pair only with online algorithms: an offline algorithm cannot train without data.
    """
    from bench import registry
    from bench.config import make_config

    kinds, overrides = {}, {}
    for algo in dict.fromkeys(spec.algo):
        entry = registry.get(algo)
        config = make_config(entry.config_cls, spec.budget, spec.overrides, entry.defaults,
                             entry.presets)
        check_snapshots(algo, entry, config)
        kinds[algo] = entry.kind
        # Per algorithm (a key's type is its config's): lr=1e-3 and lr=0.001 are one run.
        overrides[algo] = canonical_request_overrides(algo, spec.overrides, spec.budget)
    for dataset in dict.fromkeys(spec.dataset):
        check_dataset_name(dataset)
    for env in dict.fromkeys(spec.env):
        check_env_id(env)
    common = dict(budget=spec.budget, out=Path(out), resume=True,
                  device=spec.device, eval_episodes=spec.eval_episodes, eval_mode=spec.eval_mode,
                  loggers=tuple(spec.logger), wandb_project=spec.wandb_project)
    requests = [RunRequest(algo=a, dataset=d, seed=s, overrides=dict(overrides[a]), **common)
                for d in dict.fromkeys(spec.dataset) for a in dict.fromkeys(spec.algo)
                for s in dict.fromkeys(spec.seed)]
    requests += [RunRequest(algo=a, dataset=None, env=e, seed=s, overrides=dict(overrides[a]),
                            **common)
                 for e in dict.fromkeys(spec.env) for a in dict.fromkeys(spec.algo)
                 if kinds[a] == "online" for s in dict.fromkeys(spec.seed)]
    if not requests:
        raise UsageError("the sweep has no runs: envs pair only with online algorithms "
                         f"({', '.join(spec.env)} given with {', '.join(spec.algo)}); add a "
                         "dataset or an online algorithm.")
    return requests


def _source(req: RunRequest) -> str:
    return req.dataset or req.env or ""


def _finished_state(req: RunRequest) -> tuple[dict[str, Any] | None, str | None]:
    """The run's result when it finished, and the problem with its result.json when that cannot
    be read as a run's result (a sweep must neither count such a run as finished nor run it
    over)."""
    path = run_dir(req) / "result.json"
    if not path.exists():
        return None, None
    try:
        return finished_result(path), None
    except BenchError as exc:
        return None, str(exc)


def _outcome(req: RunRequest, status: str, **fields: Any) -> Outcome:
    return Outcome(run_dir=str(run_dir(req)), algo=req.algo, source=_source(req), seed=req.seed,
                   status=status, **fields)


def record_failure(req: RunRequest, exc: BaseException, started: float) -> str:
    """Write the error into the run's ``error.json`` and return a one-line message.

    run.py writes its own error.json for a non-finite loss (with the step and the losses); when
    that file is from this attempt its fields are kept and the exception is added to them.
    """
    directory = run_dir(req)
    path = directory / "error.json"
    previous: dict[str, Any] = {}
    if path.exists() and path.stat().st_mtime >= started:
        try:
            previous = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            previous = {}
    message = str(exc) or type(exc).__name__
    atomic_write_json(path, {
        **previous, "error": previous.get("error", message), "message": message,
        "type": type(exc).__name__,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return message


def is_busy(directory: Path) -> bool:
    """Whether another process holds the run directory's lock (is running that run now)."""
    if not (directory / ".lock").exists():
        return False
    try:
        with file_lock(directory / ".lock", blocking=False):
            return False
    except BenchError:
        return True


def run_one(req: RunRequest, threads: int | None) -> Outcome:
    """Run one combination in a worker; every error becomes a failed Outcome, never a raise,
    so one bad run cannot stop the sweep."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    directory = run_dir(req)
    started = time.time()
    resumed = (directory / "checkpoint.pt").exists()
    # Finished since this sweep listed it (by another sweep): execute will only read it back.
    finished_before = (directory / "result.json").exists()
    log_path = directory / "sweep.log"

    def log(msg: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as f:
            f.write(msg + "\n")

    busy = _outcome(req, "busy", error=f"running in another process ({directory})")
    if is_busy(directory):
        # Not a failure of the run, so no error.json: the other process is writing its result.
        return busy
    try:
        from bench.run import execute

        result = execute(req, log=log)
    except LockBusyError as exc:
        if Path(exc.path) == directory / ".lock":
            # Another process took the run between the look above and execute's own lock: the
            # same busy run (its error.json would point at a failure that is not one).
            return busy
        return _outcome(req, "failed", seconds=time.time() - started,
                        error=record_failure(req, exc, started))
    except Exception as exc:  # noqa: BLE001 - recorded in error.json and the summary
        return _outcome(req, "failed", seconds=time.time() - started,
                        error=record_failure(req, exc, started))
    (directory / "error.json").unlink(missing_ok=True)  # a stale error from an earlier attempt
    if finished_before:
        return _outcome(req, "skipped", normalized_score=result.get("normalized_score"))
    return _outcome(req, "resumed" if resumed else "done", seconds=time.time() - started,
                    normalized_score=result.get("normalized_score"))


def worker_env(threads: int | None) -> dict[str, str]:
    env = {"BENCH_PROGRESS": "0"}  # per-run bars from several processes would garble
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


@contextlib.contextmanager
def worker_environment(threads: int | None) -> Iterator[None]:
    """Environment variables the worker processes started inside this block inherit.

    Parallel workers get one BLAS/OpenMP thread each: on a shared CPU more threads per run only
    make runs fight over cores. They must be in the environment when a worker starts, because a
    worker imports torch (with this module) before it runs anything.
    """
    with environ(**worker_env(threads)):
        yield


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def prepare_datasets(requests: list[RunRequest],
                     log: Callable[[str], None]) -> dict[str, Exception]:
    """Resolve (and make, if missing) each dataset once, here, before runs start in parallel:
    two workers making the same missing dataset would race. Returns dataset → error for those
    that cannot be had."""
    from bench.data import resolve

    errors: dict[str, Exception] = {}
    for name in dict.fromkeys(r.dataset for r in requests if r.dataset is not None):
        try:
            resolve(name, make=make_on_first_use, log=log)
        except Exception as exc:  # noqa: BLE001 - each of its runs is recorded as failed
            errors[name] = exc
    return errors


def run_local(requests: list[RunRequest], jobs: int,
              on_done: Callable[[Outcome], None]) -> None:
    threads = 1 if jobs > 1 else None
    queue = iter(requests)
    # spawn, not fork: the parent has imported torch, and a forked OpenMP runtime can hang. One
    # run per worker process: nothing a run leaves in its process reaches the next (torch.compile
    # keeps a version of a loss per setting it saw, and past 8 it runs the loss eagerly).
    with worker_environment(threads), \
            ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                                **ONE_RUN_PER_WORKER) as pool:
        # At most `jobs` runs are handed to the pool at a time: the pool would otherwise queue
        # more in its workers, and those still start after a Ctrl-C.
        running: dict[Future, RunRequest] = {}
        try:
            for req in itertools.islice(queue, jobs):
                running[pool.submit(run_one, req, threads)] = req
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    on_done(_outcome_of(fut, running.pop(fut)))
                    for req in itertools.islice(queue, 1):
                        try:
                            running[pool.submit(run_one, req, threads)] = req
                        except BrokenProcessPool as exc:
                            on_done(_died(req, exc))
        except Terminated:
            # SIGTERM reaches this process alone, where Ctrl-C reaches the workers too: stop the
            # runs in flight as Ctrl-C would (each keeps its last checkpoint), or leaving the
            # pool would wait for them to finish.
            terminate_workers(pool)
            raise


def _outcome_of(fut: Future, req: RunRequest) -> Outcome:
    try:
        return fut.result()
    except BrokenProcessPool as exc:
        return _died(req, exc)


def _died(req: RunRequest, exc: BrokenProcessPool) -> Outcome:
    # A worker died (killed, out of memory): its run keeps its last checkpoint.
    error = BenchError(f"a worker process died ({exc}); the run resumes from its last "
                       "checkpoint on the next sweep")
    return _outcome(req, "failed", error=record_failure(req, error, time.time()))


def run_ray(requests: list[RunRequest], jobs: int, address: str | None,
            on_done: Callable[[Outcome], None]) -> None:
    try:
        import ray
    except ImportError:
        raise UsageError("--backend ray needs Ray: pip install -e \".[ray]\" (or pip install "
                         "ray).") from None
    env_vars = worker_env(1)
    for key in ("MINARI_DATASETS_PATH", "BENCH_CACHE", "BENCH_OFFLINE", "BENCH_REFERENCE_DIR"):
        if key in os.environ:  # the workers must see the same data roots as this process
            env_vars[key] = os.environ[key]
    started_here = not ray.is_initialized()
    if started_here:
        init: dict[str, Any] = {"runtime_env": {"env_vars": env_vars}, "log_to_driver": False,
                                "include_dashboard": False}
        if address:
            init["address"] = address
        else:
            init["num_cpus"] = jobs  # a local instance: --jobs runs at a time
        ray.init(**init)
    try:
        # One CPU per run: Ray then runs as many at a time as the cluster has CPUs.
        remote = ray.remote(num_cpus=1, max_retries=0, max_calls=1)(run_one)
        refs = {remote.remote(r, 1): r for r in requests}
        pending = list(refs)
        try:
            while pending:
                finished, pending = ray.wait(pending, num_returns=1)
                for ref in finished:
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        req = refs[ref]
                        outcome = _outcome(req, "failed",
                                           error=record_failure(req, exc, time.time()))
                    on_done(outcome)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started_here:
            ray.shutdown()


@dataclass
class SweepReport:
    outcomes: list[Outcome]
    summary_path: Path
    seconds: float

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def unfinished(self) -> list[Outcome]:
        """Runs that did not finish in this sweep: failed, or busy in another process."""
        return [o for o in self.outcomes if o.status in ("failed", "busy")]


def run_sweep(specs: list[SweepSpec], out: Path, *, backend: str = "local", jobs: int = 1,
              address: str | None = None, dry_run: bool = False,
              log: Callable[[str], None] | None = None) -> SweepReport | None:
    """Run every missing combination of the grids ``specs`` under ``out`` and write the sweep
    summary (with ``dry_run``, only list each run and what the sweep would do with it)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; use {' or '.join(BACKENDS)}.")
    if address and backend != "ray":
        raise UsageError("--address is for --backend ray (the address of a Ray cluster).")
    if jobs < 1:
        raise UsageError("--jobs must be at least 1.")
    if backend == "local" and jobs > available_cores():
        log(f"[sweep] --jobs {jobs} is more than the {available_cores()} cores here; using "
            f"{available_cores()}.")
        jobs = available_cores()
    if backend == "local":  # the runs use this machine's devices (a Ray cluster has its own)
        for device in dict.fromkeys(spec.device for spec in specs):
            pick_device(device)
    out = Path(out)
    check_results_root(out)  # before anything is listed or run
    requests = expand_all(specs, out)
    if dry_run:
        for req in requests:
            done, damaged = _finished_state(req)
            resumable = (run_dir(req) / "checkpoint.pt").exists()
            what = ("damaged" if damaged else "finished" if done is not None
                    else "running elsewhere" if is_busy(run_dir(req))
                    else "resume" if resumable else "run")
            log(f"{what}\t{run_dir(req)}" + (f"\t{damaged}" if damaged else ""))
        return None
    start = time.time()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    summary_path = out / "sweeps" / f"{stamp}-{os.getpid()}.json"  # two sweeps, one second
    outcomes: list[Outcome] = []
    todo: list[RunRequest] = []
    for req in requests:
        done, damaged = _finished_state(req)
        if damaged:  # reported, never overwritten: the user decides what to do with it
            outcomes.append(_outcome(req, "failed", error=damaged))
        elif done is not None:
            outcomes.append(_outcome(req, "skipped", normalized_score=done["normalized_score"]))
        else:
            todo.append(req)
    log(f"[sweep] {len(requests)} runs: {len(outcomes)} finished before, {len(todo)} to run "
        f"({backend} backend, {jobs if backend == 'local' or not address else 'cluster'} "
        "at a time); summary in " + str(summary_path))

    def write_summary() -> None:
        # Rewritten after every run, so a killed sweep still leaves a summary of what it did.
        try:
            atomic_write_json(summary_path, {
                "grids": [asdict(spec) for spec in specs], "out": str(out), "backend": backend,
                "jobs": jobs, "started": stamp, "seconds": time.time() - start,
                "counts": {s: sum(o.status == s for o in outcomes) for s in STATUSES},
                "runs": [asdict(o) for o in outcomes]})
        except OSError as exc:  # a root the permission check could not see through (e.g. /proc)
            raise BenchError(f"cannot write the sweep summary {summary_path} ({exc}); give an "
                             "--out that can be written to.") from None

    unavailable = prepare_datasets(todo, log)
    runnable = []
    for req in todo:
        if req.dataset in unavailable:
            outcomes.append(_outcome(req, "failed", error=record_failure(
                req, unavailable[req.dataset], time.time())))
        else:
            runnable.append(req)
    write_summary()
    with progress_bar(total=len(runnable), desc="sweep", unit="run") as bar:
        def on_done(outcome: Outcome) -> None:
            outcomes.append(outcome)
            write_summary()
            bar.update(1)
            failed = sum(o.status == "failed" for o in outcomes)
            bar.set_postfix(failed=failed)
            what = f"{outcome.algo} on {outcome.source} seed {outcome.seed}"
            if outcome.status in ("failed", "busy"):
                log(f"[sweep] {outcome.status.upper()} {what}: {outcome.error}")
            else:
                score = outcome.normalized_score
                log(f"[sweep] {outcome.status} {what} in {outcome.seconds:.0f}s"
                    + ("" if score is None else f": normalized score {score:.1f}"))

        if runnable:
            if backend == "local":
                run_local(runnable, jobs, on_done)
            else:
                run_ray(runnable, jobs, address, on_done)
    write_summary()
    return SweepReport(outcomes, summary_path, time.time() - start)


def format_summary(report: SweepReport) -> str:
    counts = ", ".join(f"{report.count(s)} {s}" for s in STATUSES)
    lines = [f"sweep: {len(report.outcomes)} runs in {report.seconds:.0f}s: {counts}. "
             f"Summary: {report.summary_path}"]
    for o in report.unfinished:
        first = (o.error or "").splitlines()[0] if o.error else ""
        where = "" if o.status == "busy" else f" ({o.run_dir}/error.json)"
        lines.append(f"  {o.status.upper()} {o.algo} on {o.source} seed {o.seed}: {first}{where}")
    return "\n".join(lines)
