"""An update's loss function compiled by ``torch.compile``, run eagerly where it cannot be.

Why: IQL's and CQL's losses are dozens of small elementwise passes (expectiles, Gaussian
log-probabilities, logsumexps) around a few 256-wide products, and Inductor fuses those passes
into a few loops: on the 2-core CPU here an IQL update runs 1.22x as fast and a CQL update 1.13x
(TD3+BC's, mostly products, gains nothing, so it is not compiled). Compiling takes ~15 s on the
first update of a run, so the smoke budgets (CI) stay eager.

Reproducibility: Inductor's kernels are fixed for a machine, a torch version and a thread count,
so one seed gives the same numbers run after run and across resumes; they round differently from
the eager ops (relative differences of ~1e-7 per update), so a compiled and an eager run of one
seed drift apart as any two builds of the same maths do.

Random draws stay outside the compiled function (they are its inputs): Inductor would otherwise
draw its own numbers, not torch's generator's.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch


class CompiledLosses:
    """``fn`` (a function of tensors, its other arguments Python constants) compiled on first
    call when ``enabled``; if compiling fails (no C++ compiler on the machine, an unsupported
    op), a one-line warning and ``fn`` itself from then on — the same maths, eagerly."""

    def __init__(self, fn: Callable[..., Any], enabled: bool, name: str) -> None:
        self.fn, self.name = fn, name
        # dynamic=False: a run's batch shape never changes, and static shapes fuse best.
        self._call = torch.compile(fn, dynamic=False) if enabled else fn
        self._tried = not enabled

    def __call__(self, *args: Any) -> Any:
        if self._tried:
            return self._call(*args)
        try:
            out = self._call(*args)
        except Exception as exc:  # noqa: BLE001 - any compile failure falls back to eager
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            print(f"[bench] could not compile {self.name}'s losses ({type(exc).__name__}: "
                  f"{first_line[:200]}); running them eagerly (--set compile_losses=false "
                  "skips the attempt)", file=sys.stderr)
            self._call = self.fn
            out = self.fn(*args)
        self._tried = True
        return out
