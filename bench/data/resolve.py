"""Turn a dataset name into a concrete, present Minari dataset.

For an alias the order is: (a) the official Farama dataset if it is already in the local Minari root;
(b) an official download (``minari.download_dataset``) that gives up within seconds when offline;
(c) the suite's own, self-generated dataset under ``bench/``, made on first use by the maker the
caller hands in (``bench.making``). Any other name
containing ``/`` is taken as the id of a Minari dataset in the local root.
"""
from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import os
import socket
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym

from bench.data import storage
from bench.data.catalog import ALIASES, RefScores, reference_scores
from bench.envs.goal_tasks import DesiredGoalEnv
from bench.errors import BenchError, DatasetError, UsageError, unknown_name
from bench.spaces import is_goal_dict

HUB_HOST = "huggingface.co"  # where minari.download_dataset fetches from


@dataclass
class ResolvedDataset:
    name: str  # what the user typed
    dataset_id: str
    # "official (local)", "official (downloaded)", "official (converted)" (the publisher's own
    # file converted to Minari by the suite), "self-generated" (made with the recipe), "local"
    source: str
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
        if isinstance(spec, gym.envs.registration.EnvSpec):
            return spec
        fix = ("move the dataset directory away and make it again, or restore its "
               "metadata.json.")
        try:
            parsed = json.loads(spec) if isinstance(spec, str) else spec
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise DatasetError(f"dataset {self.dataset_id}: its metadata's env_spec cannot be read "
                               f"({exc}); {fix}") from None
        problem = _env_spec_problem(spec, parsed)
        if problem:
            raise DatasetError(f"dataset {self.dataset_id}: its metadata's env_spec {problem}; "
                               f"{fix}")
        try:
            return gym.envs.registration.EnvSpec.from_json(json.dumps(parsed))
        except (ValueError, TypeError, KeyError) as exc:
            raise DatasetError(f"dataset {self.dataset_id}: its metadata's env_spec cannot be read "
                               f"({exc}); {fix}") from None

    def recorded_spaces(self) -> tuple[Any, Any]:
        """The observation and action spaces the metadata records, known without making the env
        (None for one it does not record, or records in a form Minari cannot read)."""
        from minari.serialization import deserialize_space

        found = []
        for key in ("observation_space", "action_space"):
            text = self.metadata.get(key)
            try:
                found.append(deserialize_space(text) if isinstance(text, str) else None)
            except Exception:  # noqa: BLE001 - unreadable: the env's own spaces are checked instead
                found.append(None)
        return found[0], found[1]

    def make_env_fn(self, **overrides: Any):
        """A picklable zero-argument env constructor (for async vector envs)."""
        return partial(make_env, self.env_spec(), overrides, self.dataset_id)

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
                "made with (git checkout assets/carracing/encoder.pt, or the BENCH_REFERENCE_DIR "
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


_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "true/false",
               int: "a number", float: "a number", type(None): "null"}


def _env_spec_problem(raw: Any, parsed: Any) -> str | None:
    """What is wrong with a metadata ``env_spec`` (``raw``, and ``parsed`` from its JSON), or
    None when gymnasium can read it; fills in ``additional_wrappers`` when it is missing."""
    if not isinstance(raw, str):
        return (f"is {_JSON_TYPES.get(type(raw), type(raw).__name__)} ({str(raw)[:60]}), not "
                "the JSON text of a gymnasium EnvSpec")
    if not isinstance(parsed, dict):
        return (f"holds JSON that is {_JSON_TYPES.get(type(parsed), type(parsed).__name__)}, not "
                "an object with the fields of a gymnasium EnvSpec")
    missing = [k for k in ("id", "entry_point") if k not in parsed]
    if missing:
        return f"lacks the field{'s' * (len(missing) > 1)} {' and '.join(missing)}"
    if not isinstance(parsed["id"], str) or not parsed["id"]:
        return f"has the id {parsed['id']!r}, not an env id such as Hopper-v5"
    entry = parsed["entry_point"]
    if not isinstance(entry, str) or entry.count(":") != 1 or not all(entry.split(":")):
        return f"has the entry point {entry!r}, not 'module:attribute'"
    if not isinstance(parsed.get("kwargs", {}), dict):
        return f"has kwargs {parsed['kwargs']!r}, not an object"
    # Specs written before gymnasium recorded wrappers have none to apply.
    parsed.setdefault("additional_wrappers", [])
    if not isinstance(parsed["additional_wrappers"], list):
        return "has additional_wrappers that are not a list"
    return None


# pip's name for modules that env entry points commonly need (otherwise the module is named).
PIP_NAMES = {"gymnasium_robotics": "gymnasium-robotics", "ogbench": "ogbench",
             "mujoco": '"gymnasium[mujoco]"', "Box2D": '"gymnasium[box2d]"'}


def make_env(spec: gym.envs.registration.EnvSpec | str, overrides: dict[str, Any] | None = None,
             dataset_id: str | None = None) -> gym.Env:
    """``gym.make(spec, **overrides)``, or a one-line error naming the module to install or
    what else stops the env from being made (``dataset_id``: the dataset whose env it is)."""
    env_id = spec.id if isinstance(spec, gym.envs.registration.EnvSpec) else str(spec)
    owner = f"dataset {dataset_id}'s environment" if dataset_id else "environment"
    error = DatasetError if dataset_id else BenchError
    try:
        env = gym.make(spec, **(overrides or {}))
        # A goal env's Dict observations become [observation, desired_goal] rows.
        return DesiredGoalEnv(env) if is_goal_dict(env.observation_space) else env
    except (ImportError, gym.error.DependencyNotInstalled) as exc:
        missing = exc if isinstance(exc, ModuleNotFoundError) else exc.__cause__
        if not isinstance(missing, ModuleNotFoundError) or not missing.name:
            raise error(f"{owner} {env_id} cannot be made: {_first_line(exc)}") from None
        top = missing.name.split(".")[0]
        if top != missing.name and importlib.util.find_spec(top) is not None:
            raise error(f"{owner} {env_id} needs the module {missing.name}, which the installed "
                        f"{top} does not have: install the version of {top} the data were made "
                        "with.") from None
        install = (f"pip install {PIP_NAMES[top]}" if top in PIP_NAMES
                   else f"install the package that provides {top}")
        raise error(f"{owner} {env_id} needs the module {top}, which is not installed: "
                    f"{install}") from None
    except Exception as exc:  # noqa: BLE001 - any failure of the env's own code is reported
        # A spec gymnasium cannot follow (an entry point naming nothing, bad kwargs), or the
        # env's code failing (a model file that is not there, an error at import or in __init__).
        raise error(f"{owner} {env_id} cannot be made ({type(exc).__name__}: "
                    f"{_first_line(exc)}); check its entry point and kwargs.") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]


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
    if name in ALIASES:
        return name
    if "/" in name:
        _check_canonical_id(name)
        return name
    raise unknown_name("dataset", name, known_names())


def _check_canonical_id(name: str) -> None:
    """A usage error for a Minari id that is not written one way only (``./a/b``, ``a//b``,
    ``a/b/``: each would be a dataset of its own in the results) or that reaches outside the
    Minari root (``/abs``, ``../x``)."""
    parts = name.split("/")
    root = storage.minari_root()
    elsewhere = (f"a Minari id is relative to the Minari root ({root}); set "
                 "MINARI_DATASETS_PATH to the root that holds the dataset and give its id there "
                 "(namespace/name-vN).")
    if name.startswith("/"):
        raise UsageError(f"dataset id {name!r} is an absolute path; {elsewhere}")
    if ".." in parts:
        raise UsageError(f"dataset id {name!r} has a '..' part, which reaches outside the Minari "
                         f"root; {elsewhere}")
    if "." in parts or "" in parts:
        canonical = "/".join(p for p in parts if p not in ("", "."))
        what = "a '.' part" if "." in parts else ("a trailing '/'" if name.endswith("/")
                                                  else "an empty part ('//')")
        fix = f"write it as {canonical!r}" if canonical else "give an id such as namespace/name-v0"
        raise UsageError(f"dataset id {name!r} has {what}; {fix}.")
    if any(p.startswith(".") for p in parts):
        # Minari lists no hidden directory, and the suite stages datasets in one (.bench-staging).
        raise UsageError(f"dataset id {name!r} has a part starting with '.'; Minari ids name "
                         "visible directories (namespace/name-vN).")
    if "__" in name:
        # Run directories name a dataset with "/" written "__": a/b__c and a__b/c would share one.
        raise UsageError(f"dataset id {name!r} holds '__', which results directories use for "
                         "'/'; rename the dataset's directory (and its metadata's dataset_id) "
                         "without it.")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UsageError(f"dataset id {name!r} holds control characters; give an id such as "
                         "namespace/name-v0.")


def local_source(metadata: dict[str, Any]) -> str:
    """Where a dataset in the local Minari root came from, by its metadata: "official
    (converted)" when the suite converted the publisher's own file (OGBench's, say),
    "self-generated" when it made the data with the recipe, "local" when it did not write it."""
    provenance = metadata.get("bench_provenance")
    if not isinstance(provenance, dict):
        return "local"
    return "official (converted)" if provenance.get("source") == "official" else "self-generated"


def resolve(name: str, *, make: Callable[..., Any] | None = None, download: bool = True,
            check_complete: bool = True, log=None) -> ResolvedDataset:
    """Resolve ``name`` (an alias or a local Minari id) to a present dataset; one that is not
    whole (``storage.incomplete_reason``) is refused unless ``check_complete`` is False (for
    commands that only show it).

    ``make(alias, log=...)`` makes a missing alias on first use; the data layer only reads
    datasets (making one needs policies, envs and evaluation, which live above it), so the
    caller hands it in: ``bench.making.make_on_first_use``. Without it a missing alias is an
    error saying how to make it."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    check_dataset_name(name)
    if name in ALIASES:
        alias = ALIASES[name]
        official = alias.official_id
        if official and storage.is_present(official):
            found = ResolvedDataset(name, official, "official (local)",
                                    storage.read_metadata(official))
        elif official and download and not storage.is_present(alias.local_id) \
                and try_download(official, log=log):
            found = ResolvedDataset(name, official, "official (downloaded)",
                                    storage.read_metadata(official))
        else:
            if not storage.is_present(alias.local_id):
                if storage.dataset_dir(alias.local_id).exists():
                    raise DatasetError(
                        f"{alias.local_id} at {storage.dataset_dir(alias.local_id)} is incomplete "
                        f"(no {storage.data_file(alias.local_id).name} or metadata). Nothing was "
                        f"deleted; `bench datasets make {name} --force` makes it again and keeps "
                        "the old directory as a backup.")
                if make is None:
                    raise DatasetError(f"{name} is not present locally; make it with "
                                       f"`bench datasets make {name}`.")
                log(f"[bench] {name}: making the suite's own dataset {alias.local_id} (first use).")
                make(alias, log=log)
            meta = storage.read_metadata(alias.local_id)
            found = ResolvedDataset(name, alias.local_id, local_source(meta), meta)
    else:
        if not storage.is_present(name):  # a Minari id from here on
            alias_of = [a.alias for a in ALIASES.values() if a.official_id == name]
            hint = (f"`--dataset {alias_of[0]}` uses it once it is there and otherwise makes the "
                    f"suite's own {alias_of[0]}" if alias_of else
                    f"or use an alias: {', '.join(known_names())}")
            raise DatasetError(f"Minari dataset {name!r} is not in {storage.minari_root()}: "
                               f"`minari download {name}` fetches it where Minari's hub is "
                               f"reachable (or set MINARI_DATASETS_PATH); {hint}.")
        meta = storage.read_metadata(name)
        found = ResolvedDataset(name, name, local_source(meta), meta)
    if check_complete:
        check_whole(found)
    return found


def check_whole(ds: ResolvedDataset) -> None:
    """Refuse a dataset whose making was cut short (see ``storage.incomplete_reason``)."""
    reason = storage.incomplete_reason(ds.dataset_id, ds.metadata)
    if reason is None:
        return
    alias = next((a for a in ALIASES.values() if a.local_id == ds.dataset_id), None)
    fix = (f"`bench datasets make {alias.alias} --force` makes it again and keeps this one as a "
           "backup" if alias is not None else "restore it from where it came, or move it away")
    raise DatasetError(f"dataset {ds.dataset_id} at {ds.path} is incomplete: {reason}. Nothing "
                       f"was deleted; {fix}.")
