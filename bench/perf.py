"""Process-level performance settings applied by ``bench run`` (and by the benchmarks, so they
measure what a run does), and the thread count of small-batch inference (``torch_threads``).

glibc's malloc serves every block above its mmap threshold (128 KiB at start, adapting up to 32 MiB)
with a fresh ``mmap`` and gives it back on ``free``; with the many short-lived activation tensors
of a training step (up to 8 MB each for DT) every step re-faults its memory page by page. Measured
on a DT update (batch 64, K=20, embed 128): 7,573 minor page faults per update with the defaults,
432 with the settings below, and the update's CPU time drops accordingly. Keeping freed memory in
the heap costs at most the trim threshold in retained RSS.
"""
from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_applied = False


def tune_allocator() -> bool:
    """Keep large blocks in the heap (glibc only; a no-op elsewhere). Idempotent."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: leave it alone
        return False
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20) and mallopt(_M_TRIM_THRESHOLD, 256 << 20)
                    and mallopt(_M_TOP_PAD, 64 << 20))
    return _applied


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` torch intra-op threads, then restore the count.

    Small-batch inference (collecting data, evaluating, PPO's rollouts) is mostly per-call
    overhead that threads cannot split, and when another process keeps a core busy, a second
    thread spins at OpenMP barriers waiting for it: a 256-unit MLP forward at batch 10 took
    690-830 us on torch's default two threads beside a busy process against 170 us on one.
    """
    import torch

    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)
