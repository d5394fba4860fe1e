"""Inter-process locks, so concurrent runs into one results root never step on each other."""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.errors import LockBusyError


@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True, what: str = "resource",
              on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (released automatically if the process dies). The
    file holds the holder's pid. ``on_wait(holder_pid)`` is called once before blocking when
    another process holds the lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not blocking:
                raise LockBusyError(f"{what} is in use by another process (lock {path}); wait "
                                    "for it to finish or choose another --out.", path) from None
            if on_wait is not None:
                on_wait(_holder(path))
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
