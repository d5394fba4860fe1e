"""What a run directory is called and what a finished run's record must hold: the variant name
made from canonical ``--set`` spellings (and a run found under an older spelling), and the one
judgement of a ``result.json`` that ``bench run``, ``sweep``, ``results`` and ``report`` share."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from bench import registry
from bench.config import canonical_overrides, current_names, make_config, parse_overrides_for
from bench.errors import UsageError
from bench.io import loads_strict


def variant_name(budget: str, overrides: dict[str, str]) -> str:
    """``budget[,key=value...]``, safe as a directory name. Where characters had to be replaced
    or the name is long, a hash of the exact text is appended, so different settings never
    share a directory (``lr=１e-3`` and ``lr=９e-3`` both read ``lr=_e-3`` once replaced)."""
    raw = ",".join([budget] + [f"{k}={v}" for k, v in sorted(overrides.items())])
    safe = re.sub(r"[^A-Za-z0-9_.=,+-]", "_", raw)
    if safe == raw and len(raw) <= 120:
        return raw
    # surrogatepass: command-line text may hold lone surrogates (undecodable bytes).
    return f"{safe[:100]}~{hashlib.sha256(raw.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


def canonical_request_overrides(algo: str, overrides: dict[str, str],
                                budget: str) -> dict[str, str]:
    """``overrides`` in the canonical spelling for ``algo``'s config (``bench.config.
    canonical_overrides``), without those that set a field to the value ``budget`` (with the
    variant's presets) gives it anyway: ``--budget quick --set num_updates=20000`` is bc's
    ``quick`` run, not a variant of its own. A usage error as ``make_config`` gives for bad
    ones."""
    entry = registry.get(algo)
    canonical = canonical_overrides(entry.config_cls, overrides, entry.defaults)
    if not canonical:
        return canonical
    base = make_config(entry.config_cls, budget, {}, entry.defaults, entry.presets)
    given = parse_overrides_for(entry.config_cls, canonical, entry.defaults)
    return {k: v for k, v in canonical.items() if given[k] != getattr(base, k)}


def setting_names(algo: str) -> set[str]:
    """The names a run directory of ``algo`` may hold settings under: its config's fields and
    the fields they were once called (``RunConfig.FORMERLY``: an online algorithm's
    ``num_updates``)."""
    cls = registry.get(algo).config_cls
    return {f.name for f in dataclasses.fields(cls)} | set(getattr(cls, "FORMERLY", {}))


def canonical_variant(algo: str, budget: str, overrides: Any) -> str | None:
    """The variant name a run of ``algo`` with these stored ``overrides`` has under canonical
    spelling, or None where that cannot be said (unknown algorithm, overrides that are not
    ``key: text`` or no longer parse); lets runs made before names were canonical
    (``quick,lr=1e-3``) be found and counted with today's (``quick,lr=0.001``)."""
    if not (isinstance(budget, str) and isinstance(overrides, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in overrides.items())):
        return None
    try:
        # Fields renamed since (an online algorithm's num_updates is its total_env_steps now).
        overrides = current_names(registry.get(algo).config_cls, overrides)
        return variant_name(budget, canonical_request_overrides(algo, overrides, budget))
    except UsageError:
        return None


def parse_variant_name(name: str, fields: Any) -> tuple[str, dict[str, str]] | None:
    """(budget, overrides) that ``variant_name`` turned into ``name``, or None for a hashed name
    (its text was altered). A value may hold commas (``hidden=256,256``): a part starts a new
    override only where it reads ``key=`` with ``key`` in ``fields``."""
    if "~" in name:
        return None
    budget, *parts = name.split(",")
    overrides: dict[str, str] = {}
    key = None
    for part in parts:
        head, sep, value = part.partition("=")
        if sep and head in fields:
            key = head
            overrides[key] = value
        elif key is None:
            return None
        else:
            overrides[key] += "," + part
    return budget, overrides


def _stored_settings(seed_dir: Path) -> tuple[Any, Any] | None:
    """(budget, overrides) recorded in a run directory's config.json or result.json."""
    for name in ("config.json", "result.json"):
        try:
            record = json.loads((seed_dir / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and "overrides" in record:
            return record.get("budget"), record.get("overrides")
    return None


def older_spelling(algo_dir: Path, algo: str, seed: int, canonical: str) -> Path | None:
    """This run's directory under another spelling of its settings (``quick,lr=1e-3`` for
    ``quick,lr=0.001``, made before variant names were canonical), so a finished run there is
    shown, not rerun, and an unfinished one resumes there. Where several are found: the one
    with a result, then with a checkpoint, then the first by name."""
    seed_dir = f"seed_{seed}"
    try:
        siblings = sorted(d for d in algo_dir.iterdir() if d.name != canonical
                          and (d / seed_dir).is_dir())
        fields = setting_names(algo)
    except (OSError, UsageError):
        return None
    found = []
    for variant_dir in siblings:
        settings = (parse_variant_name(variant_dir.name, fields)
                    or _stored_settings(variant_dir / seed_dir))
        if settings and canonical_variant(algo, *settings) == canonical:
            found.append(variant_dir / seed_dir)
    if not found:
        return None
    return min(found, key=lambda d: (not (d / "result.json").exists(),
                                     not (d / "checkpoint.pt").exists(), d.name))


# Fields a record may leave out or set to null, and what they must be otherwise.
_OPTIONAL_STRINGS = ("dataset_id", "dataset_source", "dataset_sha256")
_OPTIONAL_NUMBERS = ("normalized_score", "mean_return", "ref_min", "ref_max")
_TIMINGS = ("train_seconds", "eval_seconds", "wall_seconds_this_session", "updates_per_s",
            "env_steps_per_s")


def _is_number(x: Any) -> bool:
    """A finite number: result.json is strict JSON, so NaN or ±inf there (``-Infinity`` written
    by older versions for a score normalized with equal reference returns, or ``1e999``) is
    damage, not a score."""
    return (isinstance(x, (int, float)) and not isinstance(x, bool)
            and (isinstance(x, int) or math.isfinite(x)))


def read_record(path: Path, conditions: bool = False) -> dict[str, Any]:
    """The record in a result.json, checked for the fields the tables and the report compute
    with. A damaged or hand-edited file (``{}``, a list, binary bytes, a score that is text)
    raises ValueError saying what is wrong, so that it is skipped and named like invalid JSON
    rather than losing the whole table to a KeyError or TypeError; ``conditions``: each
    evaluation condition must carry its own score."""
    r = loads_strict(path.read_text())  # NaN / -Infinity literals: a ValueError, unreadable
    if not isinstance(r, dict):
        kind = {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(
            type(r), "a number")
        raise ValueError(f"holds {kind}, not a run record (a JSON object)")

    def check(record: dict[str, Any], key: str, ok: bool, what: str, where: str = "") -> None:
        if not ok:
            shown = repr(record[key])[:60] if key in record else "missing"
            raise ValueError(f"{where}{key!r} is {shown}, not {what}")

    for key in ("dataset", "algo", "budget"):
        check(r, key, isinstance(r.get(key), str), "a string")
    check(r, "seed", isinstance(r.get("seed"), int) and not isinstance(r["seed"], bool),
          "an integer")
    for key in ("variant", "condition"):  # absent: the budget, "default"
        check(r, key, key not in r or isinstance(r[key], str), "a string")
    for key in _OPTIONAL_STRINGS:
        check(r, key, r.get(key) is None or isinstance(r[key], str), "a string or null")
    check(r, "normalized_score", "normalized_score" in r, "a number or null")
    returns = r.get("episode_returns", [])  # `bench run` shows a finished run from it
    check(r, "episode_returns", isinstance(returns, list) and all(map(_is_number, returns)),
          "a list of numbers")
    for key in _OPTIONAL_NUMBERS:
        check(r, key, r.get(key) is None or _is_number(r[key]), "a finite number or null")
    if r.get("ref_min") is not None and r.get("ref_max") is not None:
        check(r, "ref_max", r["ref_max"] > r["ref_min"], f"above ref_min ({r['ref_min']!r})")
    timings = r.get("timings") or {}
    check(r, "timings", isinstance(timings, dict), "an object or null")
    for key in _TIMINGS:
        check(timings, key, timings.get(key) is None or _is_number(timings[key]),
              "a number or null", "timings: ")
    check(r, "conditions", isinstance(r.get("conditions") or {}, dict), "an object or null")
    for name, c in (r.get("conditions") or {}).items():
        where = f"conditions: {name}: "
        check(r["conditions"], name, isinstance(c, dict), "an object", "conditions: ")
        if conditions:
            check(c, "normalized_score", "normalized_score" in c, "a number or null", where)
        for key in ("normalized_score", "mean_return"):
            check(c, key, c.get(key) is None or _is_number(c[key]), "a number or null", where)
        lengths = c.get("episode_lengths", [])
        check(c, "episode_lengths", isinstance(lengths, list) and all(map(_is_number, lengths)),
              "a list of numbers", where)
    return r
