"""What a record says about the code and libraries that made it: package versions and the git
commit (with whether the working tree had uncommitted changes)."""
from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("bench", "numpy", "torch", "gymnasium", "minari", "mujoco", "h5py"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def git_commit() -> dict[str, Any]:
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip() != ""
        return {"commit": sha or None, "dirty": dirty if sha else None}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
