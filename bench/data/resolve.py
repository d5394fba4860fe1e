"""Turn a dataset name into a concrete, present Minari dataset.

For an alias the order is: (a) the official Farama dataset if it is already in the local Minari root;
(b) an official download (``minari.download_dataset``) that gives up within seconds when offline;
(c) the suite's own, self-generated dataset under ``bench/``, made on first use. Any other name
containing ``/`` is taken as the id of a Minari dataset in the local root.
"""
from __future__ import annotations

import concurrent.futures
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym

from bench.data import storage
from bench.data.catalog import ALIASES, DatasetAlias, RefScores, reference_scores
from bench.errors import DatasetError, UsageError, unknown_name

HUB_HOST = "huggingface.co"  # where minari.download_dataset fetches from


@dataclass
class ResolvedDataset:
    name: str  # what the user typed
    dataset_id: str
    source: str  # "official (local)", "official (downloaded)", "self-generated", "local"
    metadata: dict[str, Any] = field(repr=False)

    @property
    def path(self) -> Path:
        return storage.dataset_dir(self.dataset_id)

    @property
    def sha256(self) -> str:
        """The data file's checksum: from metadata when the suite stamped it, else computed."""
        if "_sha256" not in self.__dict__:
            self.__dict__["_sha256"] = (self.metadata.get("data_sha256")
                                        or storage.sha256_file(storage.data_file(self.dataset_id)))
        return self.__dict__["_sha256"]

    @property
    def ref_scores(self) -> RefScores | None:
        return reference_scores(self.dataset_id, self.metadata)

    def env_spec(self) -> gym.envs.registration.EnvSpec:
        spec = self.metadata.get("env_spec")
        if spec is None:
            raise DatasetError(f"dataset {self.dataset_id} records no environment; it cannot be "
                               "evaluated.")
        if not isinstance(spec, str):
            return spec
        try:
            return gym.envs.registration.EnvSpec.from_json(spec)
        except (ValueError, TypeError, KeyError) as exc:  # json.JSONDecodeError is a ValueError
            raise DatasetError(f"dataset {self.dataset_id}: its metadata's env_spec cannot be read "
                               f"({exc}); move the dataset directory away and make it again, or "
                               "restore its metadata.json.") from None

    def make_env_fn(self, **overrides: Any):
        """A picklable zero-argument env constructor (for async vector envs)."""
        return partial(_make_env, self.env_spec(), overrides)

    def recorded_encoders(self) -> set[str]:
        """sha256 of the vision encoder(s) that made the observations (Car Racer's latents), as
        the data's provenance records them, its combined parts' included; empty for raw data."""
        provenance = self.metadata.get("bench_provenance")
        if not isinstance(provenance, dict):
            return set()
        parts = [provenance] + [c for c in provenance.get("components") or []
                                if isinstance(c, dict)]
        return {p["encoder_sha256"] for p in parts if isinstance(p.get("encoder_sha256"), str)}

    def check_env(self, env: gym.Env) -> None:
        """Refuse an evaluation env whose observations are made differently from the data's: a
        latent env whose encoder is not the one the data were encoded with (after
        ``train-encoder``, or with another BENCH_REFERENCE_DIR) would train on one encoder's
        latents and evaluate on another's, without any error."""
        recorded = self.recorded_encoders()
        if not recorded:
            return
        try:
            current = env.get_wrapper_attr("encoder_sha256")
        except AttributeError:
            return
        if recorded != {current}:
            made_with = ", ".join(sorted(sha[:16] + "…" for sha in recorded))
            raise DatasetError(
                f"dataset {self.dataset_id} was encoded with the Car Racer encoder {made_with}, "
                f"but the evaluation env's encoder is {current[:16]}…: the policy would be "
                "evaluated on other latents than it trains on. Restore the encoder the data were "
                "made with (git checkout datasets/carracing/encoder.pt, or the BENCH_REFERENCE_DIR "
                f"that held it), or make the data again: `bench datasets make {self.name} "
                "--force` (keeps the old data as a backup).")

    def provenance(self) -> dict[str, Any]:
        ref = self.ref_scores
        return {
            "name": self.name, "dataset_id": self.dataset_id, "source": self.source,
            "sha256": self.sha256, "total_episodes": self.metadata.get("total_episodes"),
            "total_steps": self.metadata.get("total_steps"),
            "minari_version": self.metadata.get("minari_version"),
            "ref_min": ref.ref_min if ref else None, "ref_max": ref.ref_max if ref else None,
            "ref_source": ref.source if ref else None,
            "provenance": self.metadata.get("bench_provenance", {"source": "external"}),
        }


def _make_env(spec: gym.envs.registration.EnvSpec, overrides: dict[str, Any]) -> gym.Env:
    return gym.make(spec, **overrides)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """DNS + TCP to the hub within ``timeout`` s (minari itself retries for ~25 s when offline)."""
    def probe() -> bool:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            return pool.submit(probe).result(timeout=timeout + 0.5)
        except Exception:
            return False


def try_download(dataset_id: str, log=print) -> bool:
    """Attempt the official download; False (with a one-line reason) when it cannot happen."""
    if os.environ.get("BENCH_OFFLINE", "") not in ("", "0"):
        return False
    if not _hub_reachable():
        log(f"[bench] official {dataset_id} not in {storage.minari_root()} and the Minari hub is "
            "unreachable (offline); using the suite's own dataset. Set BENCH_OFFLINE=1 to skip "
            "this check.")
        return False
    import minari

    try:
        minari.download_dataset(dataset_id)
    except Exception as exc:  # network, version or auth problems: fall through to (c)
        log(f"[bench] download of {dataset_id} failed ({type(exc).__name__}: {exc}); "
            "using the suite's own dataset.")
        return False
    return storage.is_present(dataset_id)


def known_names() -> list[str]:
    return sorted(ALIASES)


def check_dataset_name(name: str) -> str:
    """``name`` if it has the form of a dataset ``resolve`` serves (an alias, or a Minari id:
    anything with a ``/``), else a usage error naming the close aliases. Makes, downloads and
    reads nothing: whether a Minari id is present is for ``resolve`` to say, on the machine
    that runs it."""
    if not isinstance(name, str):
        raise UsageError(f"a dataset name must be a string (an alias such as hopper-medium, or a "
                         f"Minari id), got {name!r}.")
    if name in ALIASES or "/" in name:
        return name
    raise unknown_name("dataset", name, known_names())


def resolve(name: str, *, make_missing: bool = True, download: bool = True,
            log=None) -> ResolvedDataset:
    """Resolve ``name`` (an alias or a local Minari id) to a present dataset."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    check_dataset_name(name)
    if name in ALIASES:
        alias = ALIASES[name]
        official = alias.official_id
        if official and storage.is_present(official):
            return ResolvedDataset(name, official, "official (local)", storage.read_metadata(official))
        if official and download and not storage.is_present(alias.local_id):
            if try_download(official, log=log):
                return ResolvedDataset(name, official, "official (downloaded)",
                                       storage.read_metadata(official))
        if not storage.is_present(alias.local_id):
            if storage.dataset_dir(alias.local_id).exists():
                raise DatasetError(
                    f"{alias.local_id} at {storage.dataset_dir(alias.local_id)} is incomplete "
                    f"(no {storage.data_file(alias.local_id).name} or metadata). Nothing was "
                    f"deleted; `bench datasets make {name} --force` makes it again and keeps "
                    "the old directory as a backup.")
            if not make_missing:
                raise DatasetError(f"{name} is not present locally; make it with "
                                   f"`bench datasets make {name}`.")
            log(f"[bench] {name}: making the suite's own dataset {alias.local_id} (first use).")
            make_alias(alias, log=log)
        return ResolvedDataset(name, alias.local_id, "self-generated",
                               storage.read_metadata(alias.local_id))
    if not storage.is_present(name):  # a Minari id from here on
        raise DatasetError(f"Minari dataset {name!r} is not in {storage.minari_root()} "
                           "(set MINARI_DATASETS_PATH, or use an alias: "
                           f"{', '.join(known_names())}).")
    meta = storage.read_metadata(name)
    source = "self-generated" if "bench_provenance" in meta else "local"
    return ResolvedDataset(name, name, source, meta)


def make_alias(alias: DatasetAlias, *, num_transitions: int | None = None,
               seed: int | None = None, force: bool = False, log=print) -> dict[str, Any]:
    """Generate the suite's own dataset for ``alias`` (``num_transitions``: at least this many,
    default the alias's; ``seed`` default 0). Refuses to overwrite; ``force`` keeps a backup."""
    from bench.data import makers

    maker = makers.MAKERS.get(alias.generator)
    if maker is None:
        raise DatasetError(makers.unavailable_message(alias))
    if alias.generator in makers.FIXED_RECIPES and (num_transitions is not None or seed is not None):
        raise UsageError(f"{alias.alias} is {makers.FIXED_RECIPES[alias.generator]}; its size and "
                         "seed are fixed by that recipe, so --transitions and --seed do not apply.")
    if num_transitions is not None and num_transitions < 1:
        raise UsageError(f"--transitions must be at least 1, got {num_transitions}.")
    target = storage.dataset_dir(alias.local_id)
    if storage.is_present(alias.local_id) or target.exists():
        if not force:
            raise DatasetError(f"{alias.local_id} already exists at {target}; pass --force to make "
                               "it again (the old one is kept as a backup).")
        # Backups live outside the Minari root so Minari never mistakes them for datasets.
        backup = (storage.cache_dir() / "backups"
                  / f"{alias.local_id.replace('/', '_')}-{time.strftime('%Y%m%d-%H%M%S')}")
        backup.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(target), str(backup))
        log(f"[bench] kept the previous {alias.local_id} at {backup}")
    return maker(alias, num_transitions=num_transitions or alias.default_transitions,
                 seed=0 if seed is None else seed)
