"""Shared set-up of the speed benchmarks."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from bench.environ import environ


@contextlib.contextmanager
def fresh_data_roots(root: Path) -> Iterator[Path]:
    """A fresh Minari root and flat-array cache under ``root`` and no progress bars, so nothing
    a benchmark times was made before it; the environment is restored afterwards."""
    with environ(MINARI_DATASETS_PATH=str(root / "minari"), BENCH_CACHE=str(root / "cache"),
                 BENCH_PROGRESS="0"):
        yield root
