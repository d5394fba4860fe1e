"""Results tables derived from run directories (the only source of truth).

Every ``result.json`` under a results root becomes one row; a table groups rows by dataset,
algorithm and variant and reports the normalized score's mean with a 95% Student-t confidence
interval over seeds (``mean ± t_{0.975, n-1} · s / √n``; no interval for a single seed).

A run's score is its headline condition's (the first it evaluated: DT's first target return, an
IDM's ``goal_source``). With ``conditions=True`` every evaluated condition is a row of its own
(column ``condition``), e.g. one IDM run evaluated with several goal sources.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from bench.data.catalog import OGBENCH_GOAL_TASKS
from bench.errors import UsageError
from bench.records import canonical_variant, parse_variant_name, read_record, setting_names

TIMING_COLUMNS = ["kind", "overrides", "steps", "train_seconds", "eval_seconds",
                  "wall_seconds", "updates_per_s", "env_steps_per_s", "eval_env_steps_per_s"]


STATUS_COLUMNS = ["dataset", "algo", "variant", "seed", "status", "error", "path"]


def _dir_fields(run_dir: Path) -> dict[str, Any]:
    """dataset, algo, variant and seed named by a run directory ``<dataset>/<algo>/<variant>/
    seed_<n>`` (None where the path is shorter or the seed is not a number)."""
    *_, dataset, algo, variant, seed_dir = (None,) * 4 + run_dir.parts
    digits = seed_dir[5:] if seed_dir and seed_dir.startswith("seed_") else ""
    return {"dataset": (dataset or "").replace("__", "/"), "algo": algo, "variant": variant,
            "seed": int(digits) if digits.isdigit() else None}


def load_results(root: Path, timings: bool = False, conditions: bool = False) -> pd.DataFrame:
    """One row per finished run under ``root``; with ``timings`` also the run's kind, reference
    scores and the ``timings`` of its result.json (columns ``TIMING_COLUMNS``); with
    ``conditions`` one row per run and evaluation condition (column ``condition``).

    A run (dataset, algorithm, variant, seed) found in several directories — e.g. one report's
    runs copied into another's folder — counts once, from the first path in sorted order; those
    left out, and result.json files that cannot be read, are listed in ``.attrs["skipped"]``
    (columns ``STATUS_COLUMNS``, status ``duplicate`` or ``unreadable``), so that no table
    counts a seed twice or loses one without saying so."""
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    first: dict[tuple, str] = {}
    for path in sorted(Path(root).rglob("result.json")):
        try:
            r = read_record(path, conditions)
        except (OSError, ValueError) as exc:  # ValueError: also JSON and UTF-8 decoding errors
            skipped.append({**_dir_fields(path.parent), "status": "unreadable",
                            "error": f"result.json: {exc}", "path": str(path.parent)})
            continue
        r["variant"] = _variant(r)
        key = (r["dataset"], r["algo"], r["variant"], r["seed"])
        if key in first:
            skipped.append({"dataset": key[0], "algo": key[1], "variant": key[2], "seed": key[3],
                            "status": "duplicate", "error": f"the same run as {first[key]}",
                            "path": str(path.parent)})
            continue
        first[key] = str(path.parent)
        row = {
            "dataset": r["dataset"], "algo": r["algo"], "variant": r["variant"],
            "budget": r["budget"], "seed": r["seed"], "normalized_score": r["normalized_score"],
            "mean_return": r.get("mean_return"), "dataset_id": r.get("dataset_id"),
            "dataset_source": r.get("dataset_source"), "dataset_sha256": r.get("dataset_sha256"),
            "ref_min": r.get("ref_min"), "ref_max": r.get("ref_max"), "git_commit": _commit(r),
            "path": str(path.parent),
        }
        if timings:
            row.update(_timing_fields(r))
        if not conditions:
            rows.append(row)
            continue
        per_condition = r.get("conditions") or {r.get("condition", "default"): r}
        for condition, c in per_condition.items():
            rows.append({**row, "condition": condition, "normalized_score": c["normalized_score"],
                         "mean_return": c.get("mean_return"),
                         "headline": condition == r.get("condition", condition)})
    columns = (["dataset", "algo", "variant", "budget", "seed", "normalized_score", "mean_return",
                "dataset_id", "dataset_source", "dataset_sha256", "ref_min", "ref_max",
                "git_commit", "path"]
               + (["condition", "headline"] if conditions else []))
    frame = pd.DataFrame(rows, columns=columns + (TIMING_COLUMNS if timings else []))
    frame.attrs["skipped"] = pd.DataFrame(skipped, columns=STATUS_COLUMNS)
    return frame


def _variant(r: dict[str, Any]) -> str:
    """The record's variant under canonical spelling of its overrides (``quick,lr=1e-3`` from
    an older version is ``quick,lr=0.001``), so that one setting is one row whatever it was
    typed as; as stored where it cannot be re-derived (an algorithm not registered here)."""
    stored = r.get("variant", r["budget"])
    if not r.get("overrides"):  # no overrides: the budget alone, nothing to respell
        return stored
    return canonical_variant(r["algo"], r["budget"], r["overrides"]) or stored


def _commit(r: dict[str, Any]) -> str | None:
    """The commit a run's code came from, with ``+dirty`` when the working tree had uncommitted
    changes (two dirty runs of one commit may still differ); None when not recorded."""
    git = r.get("git")
    if not isinstance(git, dict) or not isinstance(git.get("commit"), str) or not git["commit"]:
        return None
    return git["commit"] + ("+dirty" if git.get("dirty") else "")


def select_runs(frame: pd.DataFrame, datasets: Sequence[str] | None = None,
                algos: Sequence[str] | None = None,
                variants: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows of ``frame`` (runs, or ``incomplete_runs``) in the given datasets, algorithms and
    variants; a filter that is None or empty keeps everything."""
    for column, wanted in (("dataset", datasets), ("algo", algos), ("variant", variants)):
        if wanted:
            frame = frame[frame[column].isin(wanted)]
    return frame


def _timing_fields(r: dict[str, Any]) -> dict[str, Any]:
    t = r.get("timings") or {}
    conditions = (r.get("conditions") or {}).values()
    eval_steps = sum(sum(c.get("episode_lengths", [])) for c in conditions)
    eval_seconds = t.get("eval_seconds")
    return {
        "kind": r.get("kind"), "overrides": r.get("overrides") or {},
        "steps": t.get("steps"),  # updates (offline) or env steps (online) the run trained
        "train_seconds": t.get("train_seconds"), "eval_seconds": eval_seconds,
        # Only the last session's wall time is recorded: a resumed run shows less than it took.
        "wall_seconds": t.get("wall_seconds_this_session"),
        "updates_per_s": t.get("updates_per_s"), "env_steps_per_s": t.get("env_steps_per_s"),
        "eval_env_steps_per_s": eval_steps / eval_seconds if eval_seconds and eval_steps else None,
    }


def incomplete_runs(root: Path) -> pd.DataFrame:
    """Run directories ``<dataset>/<algo>/<variant>/seed_<n>`` at any depth under ``root`` (as
    ``load_results`` finds result.json files) without a result.json: ``failed`` (error.json,
    with its message), ``unfinished`` (a checkpoint to resume from) or ``not started``."""
    root = Path(root)
    rows = []
    for d in sorted(root.rglob("seed_*")):
        if not d.is_dir() or (d / "result.json").exists() or not d.name[5:].isdigit():
            continue
        status, error = "not started", None
        if (d / "error.json").exists():
            status = "failed"
            try:
                err = json.loads((d / "error.json").read_text())
                error = str(err.get("message", err.get("error")))
            except (OSError, json.JSONDecodeError):
                error = "unreadable error.json"
        elif (d / "checkpoint.pt").exists():
            status = "unfinished"
        fields = _dir_fields(d)
        if fields["algo"] and fields["variant"] and "=" in fields["variant"]:
            fields["variant"] = _dir_variant(fields["algo"], fields["variant"])
        rows.append({**fields, "status": status, "error": error, "path": str(d)})
    return pd.DataFrame(rows, columns=STATUS_COLUMNS)


def _dir_variant(algo: str, name: str) -> str:
    """A run directory's variant name under canonical spelling (as ``_variant``), where it can
    be read back into settings; else as it is."""
    try:
        known = setting_names(algo)
    except UsageError:
        return name
    settings = parse_variant_name(name, known)
    return (canonical_variant(algo, *settings) if settings else None) or name


def t_interval(values: np.ndarray, confidence: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of the mean (NaN for n < 2)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return float("nan")
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))


def score_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset × algorithm × variant (× condition, where ``df`` has that column):
    mean, CI half-width, seed count, and how many distinct data files (``data_files``, by
    sha256) and code versions (``commits``) its runs came from — more than one of either means
    the seeds are not draws of one experiment, which a table must say — and how many datasets
    (``datasets``: an alias resolves to the official data where it is present and to the
    suite's own elsewhere) and pairs of reference returns (``normalizations``) — more than one of
    these means the row's scores are not comparable at all. ``source``: where the data came from
    (``self-generated``: made by the suite with the recipe; ``official (local)``,
    ``official (converted)`` …; distinct values joined by " + "; empty where the runs read no
    data)."""
    df = df.dropna(subset=["normalized_score"])
    keys = ["dataset", "algo", "variant"] + (["condition"] if "condition" in df.columns else [])
    headline = ["headline"] if "headline" in df.columns else []
    out = []
    for values, g in df.groupby(keys, sort=True):
        scores = g["normalized_score"].to_numpy(float)
        out.append({**dict(zip(keys, values)),
                    **({"headline": bool(g["headline"].all())} if headline else {}),
                    "mean": float(scores.mean()), "ci95": t_interval(scores),
                    "seeds": len(scores), "mean_return": float(g["mean_return"].mean()),
                    "data_files": _distinct(g, "dataset_sha256"),
                    "commits": _distinct(g, "git_commit"),
                    "datasets": _distinct(g, "dataset_id"),
                    "normalizations": _distinct_pairs(g, "ref_min", "ref_max"),
                    "source": _sources(g)})
    return pd.DataFrame(out, columns=keys + headline + [
        "mean", "ci95", "seeds", "mean_return", "data_files", "commits", "datasets",
        "normalizations", "source"])


def _sources(g: pd.DataFrame) -> str:
    """The runs' data sources ("self-generated", "official (local)", …), sorted, " + "-joined."""
    if "dataset_source" not in g.columns:
        return ""
    return " + ".join(sorted(str(s) for s in g["dataset_source"].dropna().unique()))


def _distinct(g: pd.DataFrame, column: str) -> int:
    """Distinct values of ``column``, runs without one counting as one more value when others
    have one (0 where none is recorded, e.g. online runs have no data file)."""
    if column not in g.columns:
        return 0
    recorded = g[column].dropna()
    distinct = int(recorded.nunique())
    return distinct + (0 < len(recorded) < len(g))


def _distinct_pairs(g: pd.DataFrame, a: str, b: str) -> int:
    """Distinct (a, b) pairs among the runs that record both (0 where none does)."""
    if a not in g.columns or b not in g.columns:
        return 0
    return len(g[[a, b]].dropna().drop_duplicates())


MIX_NAMES = (("datasets", "datasets"), ("normalizations", "normalizations"),
             ("data_files", "data files"), ("commits", "commits"))


def mixed_sources(r: pd.Series | dict[str, Any]) -> str:
    """A note such as ``" (2 data files, 3 commits)"`` for a score-table row whose runs mix
    datasets, reference returns, data files or code versions; empty when they do not."""
    parts = [f"{r[column]} {name}" for column, name in MIX_NAMES if r.get(column, 0) > 1]
    return f" ({', '.join(parts)})" if parts else ""


def incomparable(r: pd.Series | dict[str, Any]) -> bool:
    """Whether a score-table row pools runs on different datasets or normalized differently."""
    return r.get("datasets", 0) > 1 or r.get("normalizations", 0) > 1


def format_table(table: pd.DataFrame, fmt: str = "markdown") -> str:
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "json":
        return table.to_json(orient="records", indent=2)
    if table.empty:
        return "No finished runs found."
    # Markdown: algorithm rows × dataset columns, "mean ± ci (n)".
    def cell(r: pd.Series) -> str:
        ci = "" if math.isnan(r["ci95"]) else f" ± {r['ci95']:.1f}"
        return f"{r['mean']:.1f}{ci} (n={r['seeds']}){mixed_sources(r)}"

    row = table["algo"] + " [" + table["variant"] + "]"
    if "condition" in table.columns:
        row = row + " " + table["condition"]
    if "headline" in table.columns:
        row = row + table["headline"].map({True: " (headline)", False: ""})
    table = table.assign(cell=table.apply(cell, axis=1), row=row)
    wide = table.pivot(index="row", columns="dataset", values="cell").fillna("—")
    header = "| algorithm | " + " | ".join(wide.columns) + " |"
    sep = "|---" * (len(wide.columns) + 1) + "|"
    lines = [header, sep] + [f"| {idx} | " + " | ".join(row) + " |" for idx, row in wide.iterrows()]
    note = "\n\nNormalized score (0 = random, 100 = expert): mean ± 95% CI over seeds."
    sources: dict[str, set[str]] = {}  # dataset → its rows' sources
    for _, r in table.iterrows():
        if r.get("source"):
            sources.setdefault(r["dataset"], set()).update(str(r["source"]).split(" + "))
    made_here = sorted(d for d, found in sources.items() if found == {"self-generated"})
    partly = sorted(d for d, found in sources.items()
                    if "self-generated" in found and found != {"self-generated"})
    if made_here:
        which = ("every dataset here" if len(made_here) == len(sources) > 1
                 else ", ".join(made_here))
        note += (" Made by the suite with the published recipes, not the published files "
                 f"(D4RL's, OGBench's): {which} (`bench datasets info NAME`).")
    if partly:
        note += (f" Some runs on the suite's own data, others on the published file: "
                 f"{', '.join(partly)} (`--format csv` has each row's source).")
    goal_tasks = sorted(set(table["dataset"]) & set(OGBENCH_GOAL_TASKS))
    if goal_tasks:
        note += (f" On the goal tasks ({', '.join(goal_tasks)}) the score is the success rate "
                 "in percent over the five task goals (an episode returns 1 when it reaches its "
                 "goal), not a normalized return; result.json has it per task.")
    if "headline" in table.columns:
        note += (" (headline): the condition a run reports as its score, fixed before evaluation "
                 "(its first: DT's first target return, an IDM's goal_source), never the best.")
    if any(incomparable(r) for _, r in table.iterrows()):
        note += (" **A cell marked with datasets or normalizations pools runs that are not "
                 "comparable**: one name resolved to different datasets (the official data on one "
                 "machine, the suite's own on another) or scores normalized with different "
                 "reference returns; its mean means nothing — keep those runs apart "
                 "(`--out` per source).")
    if any(r.get("data_files", 0) > 1 or r.get("commits", 0) > 1 for _, r in table.iterrows()):
        note += (" A cell marked with data files or commits pools runs that trained on different "
                 "data files of the dataset (remade elsewhere) or ran different code versions; "
                 "`--format csv` has the counts, and each run's result.json its sha256 and commit.")
    return "\n".join(lines) + note
