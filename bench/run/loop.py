"""The training loop: units of training (an update offline; a rollout and its update online)
until the budget is spent, with what happens between units in callbacks — the non-finite guard,
the metrics log with its periodic evaluation, policy snapshots, checkpoints — and any a caller
adds (``bench.run.execute(..., callbacks=[...])``)."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from bench.errors import NonFiniteLossError
from bench.io import atomic_write_json
from bench.progress import progress_bar

Losses = dict[str, float]


@dataclass
class Progress:
    """What the loop and its callbacks share; a checkpoint keeps ``step``, ``train_seconds``
    and ``window``."""

    step: int  # units done: updates (offline) or env steps (online)
    total: int
    train_seconds: float = 0.0  # training time so far, evaluation left out
    window: dict[str, float] = field(default_factory=dict)  # losses summed since the last log line


def crossed(every: int, before: int, after: int) -> bool:
    """Whether the last unit, from ``before`` to ``after``, passed a multiple of ``every``."""
    return every > 0 and after // every > before // every


class Callback:
    """Called by ``train`` after every unit; raising stops the run (its last checkpoint stays)."""

    def after_unit(self, before: int, progress: Progress, losses: Losses) -> None:
        pass

    def close(self) -> None:
        pass


def train(advance: Callable[[], tuple[Losses, int]], progress: Progress,
          callbacks: Sequence[Callback], *, desc: str, unit: str) -> None:
    """Call ``advance()`` (losses, units done) until ``progress.total``, then each callback."""
    try:
        with progress_bar(total=progress.total, initial=progress.step, desc=desc,
                          unit=unit) as bar:
            while progress.step < progress.total:
                before = progress.step
                losses, n_units = advance()
                progress.step += n_units
                bar.update(n_units)
                for callback in callbacks:
                    callback.after_unit(before, progress, losses)
    finally:
        for callback in callbacks:
            callback.close()


class NonFiniteGuard(Callback):
    """Stops at a NaN or infinite loss, recording it in ``error.json``."""

    def __init__(self, directory: Path, checkpoint: Path) -> None:
        self.directory, self.checkpoint = directory, checkpoint

    def after_unit(self, before: int, progress: Progress, losses: Losses) -> None:
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        if not bad:
            return
        atomic_write_json(self.directory / "error.json", {
            "error": "non-finite loss", "step": progress.step,
            # as text where not finite: error.json is strict JSON, which has no NaN
            "losses": {k: v if math.isfinite(v) else repr(v) for k, v in losses.items()}})
        raise NonFiniteLossError(
            f"non-finite loss at step {progress.step} ({bad}); stopped. The last good "
            f"checkpoint is kept at {self.checkpoint} (if one was written). Try a lower "
            "learning rate (--set lr=...) or check the dataset for NaNs.")


class MetricsLog(Callback):
    """A line in ``metrics.jsonl`` every ``log_every`` units and at the end: the losses averaged
    over the interval, the training time and rate, and every ``eval_every`` units (not at the
    end, which the final evaluation covers) ``evaluate()``'s metrics. Evaluation time is not
    training time. Each ``on_row`` hook gets every row as written (the experiment loggers);
    their time is not training time either."""

    def __init__(self, path: Path, log_every: int, eval_every: int, rate_key: str,
                 evaluate: Callable[[], dict[str, float]],
                 on_row: Sequence[Callable[[dict[str, Any]], None]] = ()) -> None:
        self.file = open(path, "a")
        self.log_every, self.eval_every, self.rate_key = log_every, eval_every, rate_key
        self.evaluate = evaluate
        self.on_row = list(on_row)
        self.tick = time.perf_counter()
        self.last_logged: int | None = None

    def after_unit(self, before: int, progress: Progress, losses: Losses) -> None:
        if self.last_logged is None:
            self.last_logged = before
        window = progress.window
        for k, v in losses.items():
            window[k] = window.get(k, 0.0) + v
            window["_n/" + k] = window.get("_n/" + k, 0) + 1
        done = progress.step
        if not (crossed(self.log_every, before, done) or done >= progress.total):
            return
        now = time.perf_counter()
        progress.train_seconds += now - self.tick
        row: dict[str, Any] = {"step": done}
        row.update({k: v / window["_n/" + k] for k, v in window.items() if not k.startswith("_n/")})
        row["time/train_seconds"] = progress.train_seconds
        row[f"time/{self.rate_key}"] = (done - self.last_logged) / max(now - self.tick, 1e-9)
        self.last_logged = done
        progress.window = {}
        if self.eval_every and crossed(self.eval_every, before, done) and done < progress.total:
            row.update(self.evaluate())
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        for hook in self.on_row:
            hook(dict(row))
        self.tick = time.perf_counter()

    def close(self) -> None:
        self.file.close()


class Every(Callback):
    """``action(step)`` every ``every`` units, and at the end when ``at_end``."""

    def __init__(self, every: int, action: Callable[[int], None], at_end: bool = True) -> None:
        self.every, self.action, self.at_end = every, action, at_end

    def after_unit(self, before: int, progress: Progress, losses: Losses) -> None:
        if crossed(self.every, before, progress.step) or (self.at_end
                                                          and progress.step >= progress.total):
            self.action(progress.step)
