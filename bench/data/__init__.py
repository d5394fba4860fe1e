"""Data layer: aliases → Minari datasets, generation, flat arrays, batch sampling."""
from bench.data.catalog import ALIASES, REFERENCE_SCORES, RefScores
from bench.data.d4rl import get_dataset, qlearning_dataset
from bench.data.resolve import ResolvedDataset, resolve
from bench.data.sampler import DatasetSpec, Sampler
from bench.data.storage import FlatEpisodes, load_flat

__all__ = ["ALIASES", "REFERENCE_SCORES", "RefScores", "get_dataset", "qlearning_dataset",
           "ResolvedDataset", "resolve", "DatasetSpec", "Sampler", "FlatEpisodes", "load_flat"]
