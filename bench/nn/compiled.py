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
from torch._functorch import config as functorch_config


class CompiledLosses:
    """``fn`` (a function of tensors, its other arguments Python constants) compiled when
    ``enabled``. If a compiled call fails (no C++ compiler on the machine, an unsupported op),
    a one-line warning and ``fn`` itself from then on — the same maths, eagerly. The backward
    pass is compiled with the forward (torch's default defers it to the first ``backward()``,
    outside this guard), so a failure of either shows here, at whichever call first compiles:
    the first, or a later one that needs a new version (CQL's after its behaviour-cloning
    phase)."""

    def __init__(self, fn: Callable[..., Any], enabled: bool, name: str) -> None:
        self.fn, self.name = fn, name
        # dynamic=False: a run's batch shape never changes, and static shapes fuse best.
        self._call = torch.compile(fn, dynamic=False) if enabled else fn

    def __call__(self, *args: Any) -> Any:
        if self._call is self.fn:
            return self.fn(*args)
        try:
            with functorch_config.patch(force_non_lazy_backward_lowering=True):
                return self._call(*args)
        except Exception as exc:  # noqa: BLE001 - any compile failure falls back to eager
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            print(f"[bench] the compiled {self.name} losses failed ({type(exc).__name__}: "
                  f"{first_line[:200]}); running them eagerly (--set compile_losses=false "
                  "skips compiling)", file=sys.stderr)
            self._call = self.fn
            return self.fn(*args)
