"""Atomic file writes: a crash leaves either the old file or the new one, never half of one."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would make results unreadable to others
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as strict JSON: NaN and infinities are refused (ValueError) rather than
    written as ``NaN`` / ``-Infinity``, which no JSON reader but Python's accepts; a non-finite
    number in a record is a bug upstream, not a value."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=True, default=str, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"{path} would hold a non-finite number ({exc})") from None
    atomic_write_bytes(path, (text + "\n").encode())


def _not_json(constant: str) -> Any:
    raise ValueError(f"it holds {constant}, which is not a JSON number")


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that refuses the ``NaN`` / ``Infinity`` / ``-Infinity`` literals (Python
    writes them unless told not to; they are not JSON) with a ValueError."""
    return json.loads(text, parse_constant=_not_json)


def read_json(path: Path) -> Any:
    """A JSON file as written by ``atomic_write_json`` (strict: see ``loads_strict``)."""
    return loads_strict(Path(path).read_text())
