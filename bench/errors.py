"""Exceptions that the CLI turns into clear messages and exit codes."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """Base class: an error with a message meant for the user (exit code 1)."""

    exit_code = 1


class UsageError(BenchError):
    """The user asked for something that does not exist or is malformed (exit code 2)."""

    exit_code = 2


class DatasetError(BenchError):
    """A dataset is missing, corrupt or cannot be made."""


class NonFiniteLossError(BenchError):
    """Training produced NaN/inf; the last good checkpoint is kept."""


class LockBusyError(BenchError):
    """A lock another process holds (``path``): that process is doing the work now, which is
    not a failure of the work itself (a sweep reports such a run as busy)."""

    def __init__(self, message: str, path):
        super().__init__(message)
        self.path = path


class Terminated(KeyboardInterrupt):
    """Raised in the CLI's main process on SIGTERM, so that a command stops exactly as on Ctrl-C
    (state kept, resumable); its exit code is 143 (128 + SIGTERM) instead of 130."""

    exit_code = 143


def close_matches(name: str, known: Iterable[str]) -> list[str]:
    """Up to three of ``known`` that look like ``name`` (for "did you mean" hints), the ones
    equal to it but for case first (``TD3_BC`` → ``td3_bc``)."""
    known = sorted(known)
    same_but_case = [k for k in known if k.lower() == name.lower()]
    by_lower = {k.lower(): k for k in known}
    close = [by_lower[k] for k in difflib.get_close_matches(name.lower(), list(by_lower), n=3,
                                                            cutoff=0.5)]
    return list(dict.fromkeys(same_but_case + close))[:3]


def unknown_name(kind: str, name: str, known: Iterable[str]) -> UsageError:
    """A UsageError for an unknown name that lists the closest known names."""
    known = sorted(known)
    close = close_matches(name, known)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UsageError(f"unknown {kind} {name!r}.{hint} Known: {', '.join(known)}.")
