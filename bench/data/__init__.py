"""Data layer: aliases → Minari datasets, reading them whole and checked, batch sampling."""
from typing import Any

from bench.data.catalog import ALIASES, REFERENCE_SCORES, RefScores
from bench.data.resolve import ResolvedDataset, resolve
from bench.data.sampler import TaskSpec, Sampler
from bench.data.storage import FlatEpisodes, load_flat

__all__ = ["ALIASES", "REFERENCE_SCORES", "RefScores", "get_dataset", "qlearning_dataset",
           "ResolvedDataset", "resolve", "TaskSpec", "Sampler", "FlatEpisodes", "load_flat"]


def __getattr__(name: str) -> Any:
    # get_dataset / qlearning_dataset live in bench.d4rl, above the making layer (they make a
    # missing alias on first use); this keeps `from bench.data import get_dataset` working.
    if name in ("get_dataset", "qlearning_dataset"):
        import importlib

        return getattr(importlib.import_module("bench.d4rl"), name)
    raise AttributeError(f"module 'bench.data' has no attribute {name!r}")
