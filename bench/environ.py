"""Environment variables set for a block and restored after it (to their old values, or unset)."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def environ(**changes: str) -> Iterator[None]:
    """``os.environ`` with ``changes`` inside the block; as it was afterwards."""
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
