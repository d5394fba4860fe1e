"""What a run is asked to do, and the checks made before anything is written: the request, its
run directory, the device, the results root, and a finished run's record."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench import registry
from bench.algorithm import Algorithm
from bench.config import DEVICES, check_choice
from bench.errors import BenchError, UsageError, unknown_name
from bench.records import canonical_request_overrides, older_spelling, read_record, variant_name


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
    # experiment loggers besides metrics.jsonl (bench.run.loggers.LOGGERS): not part of the run
    # directory's name, like the evaluation settings
    loggers: tuple[str, ...] = ()
    wandb_project: str | None = None  # None: $WANDB_PROJECT, else "bench"


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
        overrides = canonical_request_overrides(req.algo, req.overrides, req.budget)
    except UsageError:  # execute reports it before any directory is made
        overrides = req.overrides
    variant = variant_name(req.budget, overrides)
    directory = algo_dir / variant / f"seed_{req.seed}"
    if directory.exists():
        return directory
    return older_spelling(algo_dir, req.algo, req.seed, variant) or directory


def pick_device(name: str) -> torch.device:
    if name.lower() == "gpu":  # the spelling hint would offer "cpu"
        raise UsageError(f"--device {name}: torch names an NVIDIA GPU cuda (--device cuda, or "
                         "auto to take it when there is one).")
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


def finished_or_refused(req: RunRequest, directory: Path, log) -> dict[str, Any] | None:
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
        log(f"[bench] {directory} is already complete; showing its result (to train it again, "
            f"remove the directory or choose another --out).{note}")
        return result
    if (directory / "checkpoint.pt").exists() and not req.resume:
        raise UsageError(f"{directory} holds an unfinished run; pass --resume to continue it, "
                         "or choose another --out.")
    return None
