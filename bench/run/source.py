"""Where a run's data and evaluation env come from: a dataset (resolved, made on first use,
checked against the algorithm and its env, loaded) or, for an online algorithm, a bare env id."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from bench import registry
from bench.data import TaskSpec, load_flat, resolve
from bench.data.cards import env_reference_scores
from bench.data.resolve import make_env
from bench.errors import BenchError, DatasetError
from bench.making.makers import make_on_first_use
from bench.run.request import RunRequest, check_env_id
from bench.spaces import check_spaces


@dataclass
class DataSource:
    """Where a run's data and evaluation env come from: a dataset, or (online) a bare env id."""

    name: str
    make_env: Any
    ref: Any
    provenance: dict[str, Any]
    dataset: Any = None
    spec: Any = None  # the env's TaskSpec (``prepare``)
    flat: Any = None  # the dataset's arrays, when the run learns from them (``prepare``)

    def prepare(self, uses_data: bool, algo: str) -> None:
        """Refuse spaces ``algo`` cannot take, make a probe env (its spaces; for a dataset,
        refuse one whose observations are made differently from the data's) and load the data
        if the run uses them."""
        algorithms = {name: entry.cls for name, entry in registry.all_algorithms().items()}
        what, error = ((f"dataset {self.dataset.dataset_id}", DatasetError)
                       if self.dataset is not None else (f"env {self.name}", BenchError))
        if self.dataset is not None:
            # The data's own spaces first: data that no setup could use is refused as such, even
            # where its env cannot be made on this machine.
            check_spaces(algo, algorithms, *self.dataset.recorded_spaces(), what, error)
        probe_env = self.make_env()
        try:
            check_spaces(algo, algorithms, probe_env.observation_space,
                         probe_env.action_space, what, error)
            if self.dataset is not None:
                self.dataset.check_env(probe_env)
            self.spec = TaskSpec.from_env(probe_env)
        finally:
            probe_env.close()
        if uses_data and self.dataset is not None:
            self.flat = load_flat(self.dataset.dataset_id, self.dataset.sha256)

    @classmethod
    def from_request(cls, req: RunRequest, log) -> "DataSource":
        if req.dataset is not None:
            ds = resolve(req.dataset, make=make_on_first_use, log=log)
            return cls(req.dataset, ds.make_env_fn(), ds.ref_scores, ds.provenance(), ds)
        check_env_id(req.env)
        ref = env_reference_scores(req.env)
        return cls(req.env, partial(make_env, req.env), ref,
                   {"env": req.env, "ref_min": ref.ref_min if ref else None,
                    "ref_max": ref.ref_max if ref else None, "ref_source": ref.source if ref else None})
