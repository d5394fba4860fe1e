"""Inter-process locks, so concurrent runs into one results root never step on each other."""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from bench.errors import BenchError


@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True, what: str = "resource") -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (released automatically if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise BenchError(f"{what} is in use by another process (lock {path}); wait for it "
                             "to finish or choose another --out.") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)
