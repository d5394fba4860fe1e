"""A run's checkpoint: everything ``--resume`` needs to continue as if never stopped (the
algorithm with its optimizers, the sampler's and torch's random streams, the step, the training
time and the metrics window), written atomically; and the metrics file trimmed back to it."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from bench.errors import BenchError
from bench.io import atomic_write_bytes


def rng_state(device: torch.device) -> dict[str, Any]:
    """torch's generators a checkpoint keeps: the CPU one, and on CUDA every device's (dropout
    masks and PPO's exploration noise are drawn there), so a resumed run draws what an
    uninterrupted one would."""
    state: dict[str, Any] = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(checkpoint: dict[str, Any], device: torch.device) -> None:
    # torch.load maps every tensor to the run's device; the generators take CPU byte tensors.
    torch.set_rng_state(checkpoint["torch_rng"].cpu())
    if device.type == "cuda" and checkpoint.get("cuda_rng") is not None:
        torch.cuda.set_rng_state_all([s.cpu() for s in checkpoint["cuda_rng"]])


def save(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load(path: Path, device: torch.device, restore: Any) -> dict[str, Any]:
    """Read the checkpoint at ``path`` and hand it to ``restore(checkpoint)`` (which loads the
    algorithm and sampler); a clear error, deleting nothing, when it cannot be read or does not
    hold this run's state."""
    damaged = (f"Nothing was deleted; move {path} aside and run again to start this run over "
               "(its progress is lost), or use another --out.")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # truncated, empty or not a torch file: unpickling errors vary
        raise BenchError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}). "
                         f"{damaged}") from None
    try:
        restore(checkpoint)
        restore_rng_state(checkpoint, device)
        for key in ("step", "train_seconds", "window"):
            checkpoint[key]
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise BenchError(f"checkpoint {path} does not hold this run's state "
                         f"({type(exc).__name__}: {exc}). {damaged}") from None
    return checkpoint


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            break  # a torn last line from a kill (or a damaged one): everything after it is dropped
        rows.append(row)
    return rows


def trim_metrics(path: Path, step: int) -> None:
    """Keep the metrics lines up to ``step`` (those after the checkpoint are written again)."""
    kept = [r for r in read_metrics(path) if r["step"] <= step]
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in kept).encode())
