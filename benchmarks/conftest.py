"""Shared set-up of the speed benchmarks."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

ROOT_VARIABLES = ("MINARI_DATASETS_PATH", "BENCH_CACHE", "BENCH_PROGRESS")


@contextlib.contextmanager
def fresh_data_roots(root: Path) -> Iterator[Path]:
    """A fresh Minari root and flat-array cache under ``root`` and no progress bars, so nothing
    a benchmark times was made before it; the environment is restored afterwards."""
    saved = {k: os.environ.get(k) for k in ROOT_VARIABLES}
    os.environ.update(MINARI_DATASETS_PATH=str(root / "minari"), BENCH_CACHE=str(root / "cache"),
                      BENCH_PROGRESS="0")
    try:
        yield root
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
