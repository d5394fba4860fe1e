"""One place that decides how progress is shown: a tqdm bar on a terminal, and plain log lines
at a steady pace when stderr is a file or a pipe (a batch job's log must show the job is alive;
a bar redrawn with carriage returns would be one unreadable line there).

``BENCH_PROGRESS=0`` turns progress off, ``1`` forces the bar; ``BENCH_PROGRESS_EVERY`` sets the
seconds between log lines (default 30; a line is also written at every tenth of the work).
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

from tqdm.auto import tqdm

LOG_EVERY_S = 30.0


def progress_bar(**kwargs: Any) -> Any:
    forced = os.environ.get("BENCH_PROGRESS")
    if forced == "0":
        return tqdm(disable=True, **kwargs)
    if forced == "1" or _on_terminal():
        return tqdm(dynamic_ncols=True, leave=False, **kwargs)
    return LogProgress(**kwargs)


def _on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def _count(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class LogProgress:
    """tqdm's interface used here (context manager, ``update``, ``set_postfix``), writing one
    line to stderr every ``BENCH_PROGRESS_EVERY`` seconds and at each tenth of ``total``:
    ``[bench] dt on hopper-medium: 1,200/20,000 upd (6%), 9.8 upd/s, 2:03 elapsed, 32:00 left``."""

    def __init__(self, total: float | None = None, initial: float = 0, desc: str = "",
                 unit: str = "it", **_: Any) -> None:
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.postfix = ""
        self.every = float(os.environ.get("BENCH_PROGRESS_EVERY") or LOG_EVERY_S)
        self.start = self.last_time = time.monotonic()
        self.start_n = initial
        self.last_tenth = self._tenth()

    def _tenth(self) -> int:
        return int(10 * self.n / self.total) if self.total else 0

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        tenth = self._tenth()
        if self.total and self.n >= self.total:
            return  # the closing line says it
        if now - self.last_time >= self.every or tenth > self.last_tenth:
            self.last_time, self.last_tenth = now, tenth
            self._write(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def _write(self, now: float, final: bool = False) -> None:
        elapsed = now - self.start
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        done = f"{_count(self.n)}/{_count(self.total)}" if self.total else _count(self.n)
        parts = [f"{done} {self.unit}"
                 + (f" ({100 * self.n / self.total:.0f}%)" if self.total else ""),
                 f"{rate:,.1f} {self.unit}/s", f"{_duration(elapsed)} elapsed"]
        if self.total and rate > 0 and not final:
            parts.append(f"{_duration((self.total - self.n) / rate)} left")
        if self.postfix:
            parts.append(self.postfix)
        label = f"{self.desc}: " if self.desc else ""
        print(f"[bench] {label}{', '.join(parts)}" + (" (done)" if final else ""),
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.n > self.start_n and (self.total is None or self.n >= self.total):
            self._write(time.monotonic(), final=True)
        self.start_n = self.n  # closed: a second close writes nothing

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.close()
