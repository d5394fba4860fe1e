"""Experiment loggers: copies of a run's metrics for TensorBoard and Weights & Biases.

``metrics.jsonl`` stays the record; a logger receives exactly the rows ``MetricsLog`` writes
there (same step, same keys: losses, ``time/*``, ``eval/*``), then at the end the final
evaluation's headline metrics (``final/normalized_score``, ``final/mean_return``) and the run's
settings as hyper-parameters. Each is an optional extra (``pip install -e '.[tensorboard]'``,
``'.[wandb]'``), imported only when asked for.

- ``tensorboard``: event files in ``<run_dir>/tensorboard/``. A resumed run appends to the same
  directory; the rows after the checkpoint are logged again, after a purge marker at the
  checkpoint's step (``SummaryWriter(purge_step=...)``) that hides the killed attempt's copies.
- ``wandb``: one W&B run per run directory, files under ``<run_dir>/wandb/``, its id kept in
  ``<run_dir>/wandb_id`` so a resumed run continues it (``resume="allow"``). Offline unless
  ``WANDB_MODE`` says otherwise (``wandb sync <run_dir>/wandb/offline-run-*`` uploads later).
"""
from __future__ import annotations

import importlib
import json
import os
import secrets
import string
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from bench.errors import BenchError, UsageError, unknown_name
from bench.io import atomic_write_bytes

# logger name -> the modules it imports (the first is the package the extra installs)
LOGGERS: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard", "torch.utils.tensorboard"),
    "wandb": ("wandb",),
}
DEFAULT_WANDB_PROJECT = "bench"
WANDB_ID_FILE = "wandb_id"


def parse_logger_names(values: Iterable[str]) -> tuple[str, ...]:
    """``--logger`` values, repeated and/or comma-separated, each once in the order given."""
    names = [n.strip() for value in values for n in value.split(",")]
    return tuple(dict.fromkeys(n for n in names if n))


def check_loggers(names: Sequence[str]) -> tuple[str, ...]:
    """Known names only, each with its package importable: usage errors before anything is
    written (a run, or a sweep before its first run)."""
    for name in names:
        if name not in LOGGERS:
            raise unknown_name("logger", name, LOGGERS)
    for name in dict.fromkeys(names):
        package = LOGGERS[name][0]
        try:
            for module in LOGGERS[name]:
                importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - a broken install can raise more than ImportError
            # the package itself missing: the install hint; anything else: also the cause
            missing = isinstance(exc, ImportError) and exc.name == package
            detail = "" if missing else f" (importing it failed: {type(exc).__name__}: {exc})"
            raise UsageError(f"--logger {name} needs the {package} package: pip install -e "
                             f"'.[{name}]'{detail}") from None
    return tuple(names)


def hyperparameters(run: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The run's settings as one flat dict: ``run`` (algo, dataset, seed, budget, variant,
    kind), then every config field (``config/<field>`` where a field has one of those names)."""
    return {**run, **{(f"config/{k}" if k in run else k): v for k, v in config.items()}}


def headline(result: dict[str, Any]) -> dict[str, float]:
    """The final evaluation's headline metrics of a ``result.json``."""
    out = {"final/mean_return": float(result["mean_return"])}
    if result.get("normalized_score") is not None:
        out["final/normalized_score"] = float(result["normalized_score"])
    return out


def _scalars(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}


class Logger:
    """What a run hands its metrics to."""

    def log(self, row: dict[str, Any], step: int) -> None:
        """One ``metrics.jsonl`` row (``step`` is its ``"step"``)."""

    def finish(self, result: dict[str, Any]) -> None:
        """The run finished: ``result`` is what ``result.json`` holds."""

    def close(self) -> None:
        """Always called last, also when the run stopped on an error."""


class TensorBoardLogger(Logger):
    def __init__(self, directory: Path, hparams: dict[str, Any], first_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        log_dir = directory / "tensorboard"
        # Resumed (or restarted after dying before its first checkpoint): events past the
        # checkpoint's step are stale, and TensorBoard hides those before this marker.
        purge = first_step + 1 if log_dir.exists() else None
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge)
        self.hparams = {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
                        for k, v in hparams.items()}

    def log(self, row: dict[str, Any], step: int) -> None:
        for key, value in _scalars(row).items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def finish(self, result: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        step = result["timings"]["steps"]
        final = headline(result)
        for key, value in final.items():
            self.writer.add_scalar(key, value, step)
        # In this run's own event stream (add_hparams would make a run in a subdirectory).
        for summary in hparams(self.hparams, final):
            self.writer.file_writer.add_summary(summary, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger(Logger):
    def __init__(self, directory: Path, name: str, project: str | None,
                 hparams: dict[str, Any], resumed: bool) -> None:
        import wandb

        id_path = directory / WANDB_ID_FILE
        run_id = id_path.read_text().strip() if resumed and id_path.is_file() else ""
        if not run_id:  # a new run (also one that starts over): a new W&B run
            run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits)
                             for _ in range(8))  # W&B's own form of run id
            atomic_write_bytes(id_path, run_id.encode())
        kwargs: dict[str, Any] = {} if os.environ.get("WANDB_MODE") else {"mode": "offline"}
        try:
            self.run = wandb.init(
                project=project or os.environ.get("WANDB_PROJECT") or DEFAULT_WANDB_PROJECT,
                name=name, id=run_id, resume="allow", dir=str(directory), config=hparams,
                settings=wandb.Settings(console="off"), **kwargs)
        except Exception as exc:  # noqa: BLE001 - wandb's errors have no common base here
            raise BenchError(f"--logger wandb could not start a W&B run ({exc}); without a "
                             "network, leave WANDB_MODE unset (offline) or set it to offline."
                             ) from None
        self.finished = False

    def log(self, row: dict[str, Any], step: int) -> None:
        # A run resumed online continues after the last step W&B has; the rows between the
        # checkpoint and the kill that it already holds are not sent again (W&B would drop them).
        if step >= self.run.starting_step:
            self.run.log(_scalars(row), step=step)

    def finish(self, result: dict[str, Any]) -> None:
        final = headline(result)
        self.run.log(final, step=max(result["timings"]["steps"], self.run.step))
        self.run.summary.update(final)
        self.finished = True

    def close(self) -> None:
        self.run.finish(exit_code=0 if self.finished else 1)


class Loggers(Logger):
    """The loggers of one run, as one (``MetricsLog(on_row=[loggers.log_row])``); none until
    ``open``."""

    def __init__(self, loggers: Sequence[Logger] = (), log=None) -> None:
        self.loggers = list(loggers)
        self.say = log or (lambda msg: print(msg, file=sys.stderr))

    def open(self, names: Sequence[str], directory: Path, *, hparams: dict[str, Any],
             first_step: int, wandb_project: str | None = None) -> None:
        """Add the loggers ``names`` of the run in ``directory``, which starts (or resumes) at
        ``first_step``; W&B's run is named after the directory (``<dataset>/<algo>/<variant>/
        seed_<n>``)."""
        for name in names:
            if name == "tensorboard":
                self.loggers.append(TensorBoardLogger(directory, hparams, first_step))
            elif name == "wandb":
                self.loggers.append(WandbLogger(directory, "/".join(directory.parts[-4:]),
                                                wandb_project, hparams, resumed=first_step > 0))
            else:
                raise unknown_name("logger", name, LOGGERS)

    def log_row(self, row: dict[str, Any]) -> None:
        self.log(row, row["step"])

    def log(self, row: dict[str, Any], step: int) -> None:
        for logger in self.loggers:
            logger.log(row, step)

    def finish(self, result: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.finish(result)

    def close(self) -> None:
        """Close each; one that fails is reported (``log``) and never hides how the run
        ended (its result.json is already written, or the run's own error is on its way)."""
        loggers, self.loggers = self.loggers, []
        for logger in loggers:
            try:
                logger.close()
            except Exception as exc:  # noqa: BLE001 - a copy of the record; close the others
                self.say(f"[bench] closing the {type(logger).__name__} failed: {exc}")

