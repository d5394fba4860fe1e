"""Comparison report of a results root: ``report.md`` and one self-contained ``report.html``.

Contents, all derived from the run directories:

- per dataset, one row per algorithm × variant: normalized score mean ± 95% Student-t CI over
  seeds (as ``bench results``), the seed count (and which seeds are missing), the IQM with a
  95% bootstrap CI from rliable, and the published D4RL-v2 score from ``baselines/`` where one
  exists (a different dataset version, marked as such);
- aggregates over the offline datasets, over the online envs, and over each domain's where
  there are several (``task_groups``) — rliable's median, IQM, mean and optimality gap with
  stratified-bootstrap CIs, and its performance profiles;
- learning curves with 95% CI bands (bench.curves), bar charts with CIs, a runtime table, and the
  runs that failed or are unfinished.

The report is built as a list of blocks rendered twice (Markdown, HTML) so both say the same.
Figures are PNGs in ``<to>/figures/``, linked from the Markdown and inlined into the HTML as
base64 data URIs; a rebuild replaces only the figures its manifest there says it wrote.
"""
from __future__ import annotations

import base64
import contextlib
import html
import json
import math
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from bench.data.catalog import OGBENCH_GOAL_TASKS
from bench.curves import load_curve, normalize, plot_bands, seed_band
from bench.io import atomic_write_bytes, atomic_write_json
from bench.results import (incomplete_runs, load_results, mixed_sources, score_table,
                           select_runs, t_interval)

# Every *.csv here: published scores, one file per benchmark (D4RL-v2 locomotion, OGBench).
BASELINES = Path(__file__).resolve().parent.parent / "baselines"
# Curve metrics in order of preference; a run is plotted with the first one it logged.
# metric → (axis label, caption)
CURVE_METRICS = {
    "eval/normalized_score": ("normalized score", "evaluations during training, ending with "
                                                  "the final evaluation"),
    "train/episode_return": ("normalized training return", "returns of the training episodes"),
    "loss": ("training loss", "each algorithm's own loss: compare shapes, not levels across "
                              "algorithms"),
}
BASELINE_NOTE = ("† Published scores on the **D4RL v2** locomotion datasets (old Gym Hopper-v2, "
                 "Walker2d-v2 and HalfCheetah-v2 on mujoco-py), not on this suite's data: a "
                 "different dataset version and simulator, so a rough reference point, not a "
                 "one-to-one comparison. From baselines/d4rl_v2.csv (citations below and in "
                 "baselines/README.md). They are normalized with D4RL's reference returns "
                 "(Hopper: random -20.27, expert 3,234.3; Walker2d: random 1.63, expert 4,592.3; "
                 "HalfCheetah: random -280.18, expert 12,135.0); the scores here use each "
                 "dataset's own references (the Data table), so the same score stands for "
                 "different returns on the two sides (the 'mean return' column has this suite's "
                 "raw returns).")
OGBENCH_NOTE = ("§ Success rates (%) OGBench published for its own datasets of these tasks "
                "(Park et al. 2025, Table 2; baselines/ogbench.csv and baselines/README.md): its "
                "algorithms trained 1M updates with its full settings, 8 seeds, 50 episodes per "
                "task goal, the last three evaluations averaged. This suite's rows are on datasets "
                "it makes with OGBench's recipe (or OGBench's own files when present: see the Data "
                "table's source) and usually at a smaller budget, so the comparison is of "
                "magnitude, not a replication.")
# dataset_version → (the mark of its column and note, the note)
BASELINE_SETS = {"D4RL-v2": ("†", BASELINE_NOTE), "OGBench": ("§", OGBENCH_NOTE)}
BELOW_FULL = "‡"
BELOW_FULL_NOTE = (f" {BELOW_FULL} marks rows not trained with the `full` preset unchanged (a "
                   "smaller budget or overridden settings), while the published runs used their "
                   "authors' full schedules and settings.")


@dataclass
class ReportPaths:
    markdown: Path
    html: Path
    figures: list[Path]


# ---- document blocks: ("h", level, text) | ("p", text) | ("table", header, rows) | ("img", path, alt)

Block = tuple


def _fmt(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.{digits}f}"


def _label(algo: str, variant: str) -> str:
    return f"{algo} [{variant}]"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def load_baselines(path: Path = BASELINES) -> pd.DataFrame:
    """Published scores (algo, dataset, score, score_std, dataset_version, source, citation) from
    one csv file or every csv file of a folder; empty when there is none (e.g. an installed
    package without the repository)."""
    path = Path(path)
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path] if path.exists() else []
    if not files:
        return pd.DataFrame(columns=["algo", "dataset", "score", "score_std", "dataset_version",
                                     "source", "citation"])
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def baseline_version(baselines: pd.DataFrame, dataset: str) -> str:
    """The benchmark the published scores beside ``dataset`` come from (where none are: OGBench
    for a goal task, else D4RL-v2)."""
    versions = baselines.loc[baselines["dataset"] == dataset, "dataset_version"].unique()
    if len(versions):
        return str(versions[0])
    return "OGBench" if dataset in OGBENCH_GOAL_TASKS else "D4RL-v2"


@contextlib.contextmanager
def _rliable(seed: int = 0) -> Iterator[tuple[Any, Any]]:
    """rliable's ``library`` and ``metrics`` modules, with NumPy's global generator seeded for the
    duration and restored after: rliable's stratified bootstrap draws its resamples from the
    global generator (``np.random.choice``) whatever ``random_state`` it is given, so without this
    the same results root gave different confidence intervals on every build. arch's warning that
    the `random_state` keyword rliable passes is deprecated is silenced: it is about rliable's
    internals, not something a user can act on."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="random_state is deprecated",
                                    category=FutureWarning)
            from rliable import library as rly
            from rliable import metrics

            yield rly, metrics
    finally:
        np.random.set_state(saved)


def _by_label(score_dict: dict[str, np.ndarray], seed: int,
              estimate: Callable[[Any, Any, dict[str, np.ndarray], int], tuple[dict, dict]]
              ) -> tuple[dict, dict]:
    """``estimate(rly, metrics, {label: scores}, seed)`` label by label, each with a seed of its
    own (from the label's name): rliable draws every label's resamples from one generator in
    turn, so one call for all labels made a label's interval depend on which other labels the
    report held."""
    points, cis = {}, {}
    for label, scores in score_dict.items():
        label_seed = (seed * 1_000_003 + zlib.crc32(label.encode())) % 2**32
        with _rliable(label_seed) as (rly, metrics):
            point, ci = estimate(rly, metrics, {label: scores}, label_seed)
        points.update(point)
        cis.update(ci)
    return points, cis


def iqm_intervals(scores: dict[str, np.ndarray], reps: int, seed: int = 0) -> pd.DataFrame:
    """IQM and its 95% percentile-bootstrap CI per label, from one task's per-seed scores."""
    score_dict = {k: np.asarray(v, float).reshape(-1, 1) for k, v in scores.items()}
    point, ci = _by_label(score_dict, seed, lambda rly, metrics, one, s: rly.get_interval_estimates(
        one, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps,
        random_state=np.random.RandomState(s)))
    return pd.DataFrame([{"label": k, "iqm": float(point[k][0]), "iqm_low": float(ci[k][0, 0]),
                          "iqm_high": float(ci[k][1, 0])} for k in score_dict])


AGGREGATES = ("median", "iqm", "mean", "optimality_gap")
# Below this many seeds a task's IQM is not shown: the 25% trim removes nothing (it is the mean)
# and a percentile bootstrap over so few values spans little more than their range, an interval
# far narrower than the t-interval beside it (3 seeds: [min, max]).
MIN_SEEDS_FOR_IQM = 5
# An aggregate over datasets shows its bootstrap interval from as many runs per dataset: on
# tables like the suite's (scripts/bootstrap_coverage.py) the nominal 95% interval covers the
# truth 83-90% of the time with 5 runs on 4-15 datasets (less on 2-3: the IQM's 53-80%), and
# at most 82% with 3.


def aggregate_ci_shown(runs_per_dataset: int) -> bool:
    """Whether an aggregate's bootstrap interval is worth showing (see MIN_SEEDS_FOR_IQM)."""
    return runs_per_dataset >= MIN_SEEDS_FOR_IQM


def aggregate_intervals(score_dict: dict[str, np.ndarray], reps: int,
                        seed: int = 0) -> pd.DataFrame:
    """rliable's four aggregates with stratified-bootstrap 95% CIs; each value is a
    (runs × tasks) matrix of normalized scores (0–100, so the optimality gap's γ is 100)."""
    def estimate(rly: Any, metrics: Any, one: dict[str, np.ndarray], s: int) -> tuple[dict, dict]:
        def aggregates(x: np.ndarray) -> np.ndarray:
            return np.array([metrics.aggregate_median(x), metrics.aggregate_iqm(x),
                             metrics.aggregate_mean(x),
                             metrics.aggregate_optimality_gap(x, 100.0)])

        return rly.get_interval_estimates(one, aggregates, reps=reps,
                                          random_state=np.random.RandomState(s))

    point, ci = _by_label(score_dict, seed, estimate)
    rows = []
    for label in score_dict:
        row: dict[str, Any] = {"label": label}
        for i, name in enumerate(AGGREGATES):
            row[name] = float(point[label][i])
            row[name + "_low"], row[name + "_high"] = float(ci[label][0, i]), float(ci[label][1, i])
        rows.append(row)
    return pd.DataFrame(rows)


def aggregate_matrix(runs: pd.DataFrame, datasets: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per label with runs on every dataset: a (runs × datasets) matrix. Stratified bootstrap needs
    the same number of runs per task, so each dataset contributes its lowest ``n`` seeds, where
    ``n`` is the label's smallest seed count over the datasets (returned per label)."""
    matrices, used = {}, {}
    for (algo, variant), g in runs.groupby(["algo", "variant"], sort=True):
        per = [g[g["dataset"] == d].sort_values("seed")["normalized_score"].to_numpy(float)
               for d in datasets]
        n = min(len(p) for p in per)
        if n == 0:
            continue
        matrices[_label(algo, variant)] = np.stack([p[:n] for p in per], axis=1)
        used[_label(algo, variant)] = n
    return matrices, used


# ---- figures

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def bar_chart(table: pd.DataFrame, runs: pd.DataFrame, dataset: str, out: Path) -> Path:
    """Mean ± 95% CI per label, with each seed's score as a dot."""
    plt = _pyplot()
    labels = [_label(a, v) for a, v in zip(table["algo"], table["variant"])]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(labels) + 2), 3.8), dpi=110)
    x = np.arange(len(labels))
    ax.bar(x, table["mean"], yerr=table["ci95"].fillna(0.0), capsize=4, color="#8fb3d9",
           edgecolor="#33628f")
    for i, (algo, variant) in enumerate(zip(table["algo"], table["variant"])):
        seeds = runs[(runs["algo"] == algo) & (runs["variant"] == variant)]["normalized_score"]
        ax.scatter(np.full(len(seeds), i), seeds, color="#222", s=12, zorder=3)
    ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("normalized score\n(mean ± 95% CI; dots: seeds)", fontsize=9)
    ax.set_title(dataset, fontsize=10)
    ax.axhline(0, color="#999", linewidth=0.8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def profile_chart(score_dict: dict[str, np.ndarray], reps: int, out: Path,
                  title: str = "Performance profiles") -> Path:
    """rliable performance profiles: fraction of runs scoring above τ, with 95% CI bands."""
    from rliable import plot_utils

    plt = _pyplot()
    all_scores = np.concatenate([m.ravel() for m in score_dict.values()])
    taus = np.linspace(min(0.0, all_scores.min()), max(100.0, all_scores.max()) * 1.02, 81)
    # The bands' bootstrap: the same on every build, and a label's whatever others are drawn.
    profiles, cis = _by_label(score_dict, 0, lambda rly, _, one, s: rly.create_performance_profile(
        one, taus, reps=reps))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, ax=ax,
                                         xlabel="normalized score τ",
                                         ylabel="fraction of runs with score > τ")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def curve_bands(runs: pd.DataFrame) -> dict[str, dict[str, pd.DataFrame]]:
    """metric → label → band over seeds, each label under the first metric its runs logged."""
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for (algo, variant), g in runs.groupby(["algo", "variant"], sort=True):
        for metric in CURVE_METRICS:
            key = training_loss_key(algo) if metric == "loss" else metric
            curves = []
            for r in g.itertuples():
                try:
                    steps, values = load_curve(r.path, key)
                except (OSError, ValueError, TypeError, KeyError):
                    # binary or mangled metrics.jsonl (UnicodeDecodeError is a ValueError): no
                    # curve, like a run copied without the file; its score still counts
                    steps, values = np.empty(0), np.empty(0)
                if metric == "train/episode_return":
                    values = normalize(values, _num(r.ref_min), _num(r.ref_max))
                elif metric == "eval/normalized_score" and len(steps):
                    steps, values = _with_final_evaluation(steps, values, _num(r.steps),
                                                           _num(r.normalized_score))
                curves.append((steps, values))
            band = seed_band(curves)
            if not band.empty:
                label = _label(algo, variant) + (f" ({key})" if key != metric else "")
                out.setdefault(metric, {})[label] = band
                break
    return out


def training_loss_key(algo: str) -> str:
    """The metrics key of ``algo``'s training loss (``Algorithm.training_loss``; "loss" for an
    algorithm not installed here)."""
    from bench import registry
    from bench.errors import UsageError

    try:
        return registry.get(algo).cls.training_loss
    except UsageError:
        return "loss"


def _with_final_evaluation(steps: np.ndarray, values: np.ndarray, final_step: float | None,
                           final_score: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The evaluations during training and, as the last point, the run's final one (its
    result.json's score: the same condition, episodes and seed, bench.run), at the last update,
    which the evaluations during training stop short of."""
    if final_step is None or final_score is None or not final_step > steps[-1]:
        return steps, values
    return np.append(steps, final_step), np.append(values, final_score)


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


# ---- sections

def _score_section(dataset: str, runs: pd.DataFrame, status: pd.DataFrame,
                   baselines: pd.DataFrame, reps: int,
                   figures: Path) -> tuple[list[Block], bool]:
    """The dataset's table and bar chart, and whether a published score in it is marked as
    beside a row not trained with the full preset unchanged."""
    table = score_table(runs)
    scores = {_label(a, v): g.sort_values("seed")["normalized_score"].to_numpy(float)
              for (a, v), g in runs.groupby(["algo", "variant"], sort=True)}
    iqm = iqm_intervals(scores, reps).set_index("label")
    all_seeds = set(runs["seed"]) | set(status["seed"])
    rows, marked = [], False
    for r in table.itertuples():
        label = _label(r.algo, r.variant)
        row_runs = runs[(runs["algo"] == r.algo) & (runs["variant"] == r.variant)]
        have = set(row_runs["seed"])
        missing = sorted(all_seeds - have)
        seeds = (str(r.seeds) + (f" (missing {', '.join(map(str, missing))})" if missing else "")
                 + mixed_sources(r._asdict()))
        ci = "" if math.isnan(r.ci95) else f" ± {r.ci95:.1f}"
        q = iqm.loc[label]
        pub = baselines[(baselines["algo"] == r.algo) & (baselines["dataset"] == dataset)]
        published = ", ".join(f"{p.score:g} ({p.source})" for p in pub.itertuples()) or "—"
        if len(pub) and not all(b == "full" and not o for b, o in
                                zip(row_runs["budget"], row_runs["overrides"])):
            published += " " + BELOW_FULL
            marked = True
        iqm_cell = (f"{q.iqm:.1f} [{q.iqm_low:.1f}, {q.iqm_high:.1f}]"
                    if r.seeds >= MIN_SEEDS_FOR_IQM else f"— (n < {MIN_SEEDS_FOR_IQM})")
        rows.append([r.algo, r.variant, seeds, f"{r.mean:.1f}{ci}", iqm_cell, _fmt(r.mean_return),
                     published])
    version = baseline_version(baselines, dataset)
    mark = BASELINE_SETS.get(version, ("†", ""))[0]
    header = ["algorithm", "variant", "seeds", "normalized score, mean ± 95% CI",
              "IQM [95% bootstrap CI]", "mean return", f"published, {version} {mark}"]
    chart = bar_chart(table, runs, dataset, figures / f"bars_{_slug(dataset)}.png")
    return [("h", 3, dataset), ("table", header, rows),
            ("img", chart, f"{dataset}: normalized score per algorithm"),
            *_success_by_task(runs)], marked


def _success_by_task(runs: pd.DataFrame) -> list[Block]:
    """On a goal task: each row's success rate per task goal (%, mean over seeds) beside the
    overall rate with its 95% CI over seeds, from the runs' result.json ``success``."""
    rows = []
    for (algo, variant), g in runs.groupby(["algo", "variant"], sort=True):
        per_task: dict[str, list[float]] = {}
        overall = []
        for path in g.sort_values("seed")["path"]:
            success = json.loads((Path(path) / "result.json").read_text()).get("success")
            if not success:
                continue
            overall.append(100 * success["rate"])
            for task, rate in success["by_task"].items():
                per_task.setdefault(task, []).append(100 * rate)
        if overall:
            ci = t_interval(np.asarray(overall))
            rows.append((algo, variant, per_task,
                         f"{np.mean(overall):.1f}" + ("" if math.isnan(ci) else f" ± {ci:.1f}")))
    if not rows:
        return []
    tasks = sorted({t for _, _, per_task, _ in rows for t in per_task})
    return [("p", "Success rate (%) per task goal, mean over seeds, and overall with its 95% CI "
                  "over seeds: the score of a goal task is its success rate, not a normalized "
                  "return."),
            ("table", ["algorithm", "variant", *tasks, "overall"],
             [[a, v, *(_fmt(float(np.mean(p[t]))) if t in p else "—" for t in tasks), o]
              for a, v, p, o in rows])]


def run_kinds(runs: pd.DataFrame) -> pd.Series:
    """"offline" or "online" per run: its recorded kind; for records without one (older runs)
    the algorithm's registered kind, else online when no data file is recorded."""
    from bench import registry
    from bench.errors import UsageError

    def kind(row: pd.Series) -> str:
        recorded = row.get("kind")
        if isinstance(recorded, str) and recorded in ("offline", "online"):
            return recorded
        try:
            return registry.get(row["algo"]).kind
        except UsageError:  # an algorithm not installed here
            return "offline" if isinstance(row.get("dataset_sha256"), str) else "online"

    return runs.apply(kind, axis=1) if len(runs) else pd.Series([], dtype=object)


def _domain(name: str) -> str:
    """hopper for ``hopper-medium``, ``mujoco/hopper/medium-v0``, ``Hopper-v5``; carracing for
    ``bench/carracing/expert-v0``; carracinglatent for ``bench/CarRacingLatent-v0``."""
    parts = name.split("/")
    return (parts[-2] if len(parts) >= 3 else parts[-1].split("-")[0]).lower()


KIND_LABELS = {"offline": "offline datasets", "online": "online envs"}


def task_groups(runs: pd.DataFrame,
                kinds: pd.Series | None = None) -> dict[str, tuple[str, list[str]]]:
    """The sets of tasks an aggregate pools, name → (kind, datasets): the offline runs' datasets,
    the online runs' envs (an online algorithm given a dataset, such as gs_ppo's frozen IDM,
    counts as online there), and, where a kind spans several domains (hopper, carracing, ...),
    each domain's. Pooling a whole results root would need every algorithm on every dataset and
    env, which an online-only algorithm (PPO) and offline ones never are, so nothing would be
    aggregated; the per-domain sets keep an algorithm run on one domain only in some aggregate.
    Sets of one task are left out (the per-dataset table is that comparison). ``kinds``: the
    runs' ``run_kinds``, if already known."""
    kinds = run_kinds(runs) if kinds is None else kinds
    groups: dict[str, tuple[str, list[str]]] = {}
    for kind in ("offline", "online"):
        names = sorted(runs.loc[kinds == kind, "dataset"].unique()) if len(runs) else []
        domains: dict[str, list[str]] = {}
        for name in names:
            domains.setdefault(_domain(str(name)), []).append(name)
        groups[KIND_LABELS[kind]] = (kind, names)
        if len(domains) > 1:
            groups.update({f"{KIND_LABELS[kind]}, {domain}": (kind, d)
                           for domain, d in domains.items()})
    return {name: group for name, group in groups.items() if len(group[1]) > 1}


def _aggregate_section(runs: pd.DataFrame, reps: int, figures: Path) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Aggregates over datasets (rliable)")]
    kinds = run_kinds(runs)
    groups = task_groups(runs, kinds)
    if not groups:
        return blocks + [("p", "No set of two or more comparable tasks (offline datasets, or "
                               "online envs) here, so the tables above are the whole comparison.")]
    blocks.append(("p", f"Over the offline datasets, over the online envs (never the two "
                        "together), and, where these span several domains, over each domain's; "
                        f"with 95% stratified-bootstrap CIs ({reps} resamples) where an "
                        f"algorithm has at least {MIN_SEEDS_FOR_IQM} runs per dataset; with "
                        "fewer only the point estimate is shown (the tables above have "
                        "t-intervals). On tables like the suite's the nominal 95% interval "
                        "covers the truth 83-90% of the time with 5 runs per dataset over 4 "
                        "datasets or more (the IQM's over 2-3 datasets 53-80%), and at most 82% "
                        "with 3 (`scripts/bootstrap_coverage.py`). "
                        "An algorithm enters a set's aggregate when it has runs on every "
                        "dataset of the set (`bench report --dataset ...` chooses the datasets); "
                        "each dataset contributes the same number of runs per algorithm (its "
                        "lowest seeds, the column 'runs per dataset'). The optimality gap is the "
                        "mean shortfall below 100 (lower is better)."))
    for name, (kind, datasets) in groups.items():
        group_runs = runs[(kinds == kind) & runs["dataset"].isin(datasets)]
        matrices, used = aggregate_matrix(group_runs, datasets)
        blocks.append(("h", 3, f"{name}: {', '.join(datasets)}"))
        if not matrices:
            blocks.append(("p", f"No algorithm has finished runs on all {len(datasets)} datasets "
                                "of this set, so there is nothing to aggregate."))
            continue
        agg = aggregate_intervals(matrices, reps)
        rows = []
        for r in agg.to_dict("records"):
            few = not aggregate_ci_shown(used[r["label"]])
            cells = [f"{r[k]:.1f}" + ("" if few else f" [{r[k + '_low']:.1f}, {r[k + '_high']:.1f}]")
                     for k in AGGREGATES]
            rows.append([r["label"], str(used[r["label"]])] + cells)
        left_out = sorted({_label(a, v) for a, v in zip(group_runs["algo"], group_runs["variant"])}
                          - set(matrices))
        if left_out:
            blocks.append(("p", f"Left out (not run on every dataset): {', '.join(left_out)}."))
        profile = profile_chart(matrices, reps=min(reps, 2000),
                                out=figures / f"profiles_{_slug(name)}.png",
                                title=f"Performance profiles, {name}")
        blocks += [("table", ["algorithm [variant]", "runs per dataset", "median", "IQM", "mean",
                              "optimality gap"], rows),
                   ("img", profile, f"performance profiles, {name}")]
    return blocks


def _curve_section(runs: pd.DataFrame, datasets: list[str], figures: Path) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Learning curves")]
    for dataset in datasets:
        for metric, bands in curve_bands(runs[runs["dataset"] == dataset]).items():
            ylabel, caption = CURVE_METRICS[metric]
            if metric == "eval/normalized_score" and dataset in OGBENCH_GOAL_TASKS:
                ylabel = "success rate, %"
            xlabel = "env steps" if metric == "train/episode_return" else "updates (or env steps)"
            path = plot_bands(bands, figures / f"curve_{_slug(dataset)}_{_slug(metric)}.png",
                              title=f"{dataset}: {metric}", ylabel=ylabel, xlabel=xlabel)
            blocks += [("img", path, f"{dataset}: {ylabel}"),
                       ("p", f"{dataset}, `{metric}` ({caption}): mean ± 95% CI over seeds.")]
    if len(blocks) == 1:
        blocks.append(("p", "No run logged a curve (metrics.jsonl)."))
    return blocks


def _data_section(runs: pd.DataFrame) -> list[Block]:
    """Which data file (sha256 of its HDF5) every dataset's runs trained on, and a warning where
    runs of one dataset name trained on different files (remade on another machine, say)."""
    rows, mixed, different = [], [], []
    for dataset, g in runs.groupby("dataset", sort=True):
        if g["dataset_sha256"].isna().all():
            continue  # online runs: no data file
        shas = g["dataset_sha256"].fillna("unrecorded")
        for sha, h in g.assign(sha=shas).groupby("sha", sort=True):
            sources = h["dataset_source"].dropna()
            ids = h["dataset_id"].dropna()
            source = str(sources.iloc[0]) if len(sources) else "—"
            if len(ids):
                source += f" (`{ids.iloc[0]}`)"
            rows.append([dataset, source, f"`{sha[:16]}`", _refs(h), str(len(h)),
                         ", ".join(sorted(h["algo"].unique()))])
        if g["dataset_id"].dropna().nunique() > 1 or len(
                g[["ref_min", "ref_max"]].dropna().drop_duplicates()) > 1:
            different.append(dataset)
        elif shas.nunique() > 1:
            mixed.append(dataset)
    if not rows:
        return []
    blocks: list[Block] = [
        ("h", 2, "Data"),
        ("p", "The data file each run trained on (sha256 of the dataset's HDF5, from the run's "
              "result.json), and the random and expert reference returns its scores are "
              "normalized with. A suite-made dataset is byte-identical when remade on the same "
              "machine; on a CPU that rounds differently the same recipe gives different episodes "
              "(README, Datasets)."),
        ("table", ["dataset", "source", "data sha256", "reference returns (random / expert)",
                   "runs", "algorithms"], rows)]
    if different:
        blocks.append(("p", "**Different data behind one name:** runs of "
                       + ", ".join(f"`{d}`" for d in different)
                       + " trained on different datasets (the official data where it was present, "
                         "the suite's own elsewhere) or are normalized with different reference "
                         "returns. Their scores are not comparable, and the tables' cells that "
                         "pool them (marked 'datasets' or 'normalizations') mean nothing: report "
                         "them from separate results roots."))
    if mixed:
        blocks.append(("p", "**Mixed data:** runs of " + ", ".join(f"`{d}`" for d in mixed)
                       + " trained on more than one data file: equally valid draws of one recipe, "
                         "not the same draws. Differences between algorithms there include the "
                         "difference between the draws."))
    return blocks


def _refs(runs: pd.DataFrame) -> str:
    """The runs' reference returns, "random / expert" (each distinct pair, should they differ)."""
    pairs = runs[["ref_min", "ref_max"]].dropna().drop_duplicates()
    return ("; ".join(f"{_fmt(lo, 2)} / {_fmt(hi, 2)}" for lo, hi in pairs.itertuples(index=False))
            or "—")


def _runtime_section(runs: pd.DataFrame) -> list[Block]:
    rows = []
    cols = ["updates_per_s", "env_steps_per_s", "eval_env_steps_per_s", "train_seconds",
            "eval_seconds", "wall_seconds"]
    for (dataset, algo, variant), g in runs.groupby(["dataset", "algo", "variant"], sort=True):
        means = [g[c].astype(float).mean() if g[c].notna().any() else None for c in cols]
        rows.append([dataset, algo, variant, str(len(g))]
                    + [_fmt(m) for m in means])
    return [("h", 2, "Runtime"),
            ("p", "Means over seeds, from the `timings` of each result.json. Updates/s for offline "
                  "training, env steps/s for online training, evaluation env steps/s over all "
                  "evaluation episodes; times in seconds. Wall time covers the last session only "
                  "(less than the total for a resumed run)."),
            ("table", ["dataset", "algorithm", "variant", "seeds", "updates/s", "env steps/s",
                       "eval env steps/s", "train s", "eval s", "wall s"], rows),
            *_compute_totals(runs)]


def _compute_totals(runs: pd.DataFrame) -> list[Block]:
    """What the table cost per algorithm: its runs' training and evaluation time summed (over
    every session of a resumed run), in hours of one run's processes."""
    rows = []
    for (algo, variant), g in runs.groupby(["algo", "variant"], sort=True):
        train = g["train_seconds"].astype(float).sum() / 3600
        evaluation = g["eval_seconds"].astype(float).sum() / 3600
        rows.append([algo, variant, _fmt(train + evaluation, 2), _fmt(train, 2),
                     _fmt(evaluation, 2), str(len(g)), str(g["dataset"].nunique()),
                     _fmt(60 * (train + evaluation) / len(g))])
    return [("p", "Time per algorithm: the training and evaluation seconds of all its runs, "
                  "summed (every session of a resumed run counts), in hours; a run is one "
                  "process, so on a machine running two at a time the table's wall time is "
                  "about half the total."),
            ("table", ["algorithm", "variant", "total h", "train h", "eval h", "runs",
                       "datasets", "per run, min"], rows)]


def _status_section(status: pd.DataFrame) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Failed, unfinished and skipped runs")]
    if status.empty:
        return blocks + [("p", "None: every run directory holds a result, read once.")]
    rows = [[r.dataset, r.algo, r.variant, str(int(r.seed)) if pd.notna(r.seed) else "?", r.status,
             (r.error or "").splitlines()[0][:300] if r.error else ""]
            for r in status.itertuples()]
    return blocks + [("p", "These runs are not in the tables (a `duplicate` is: once, from the "
                           "directory its error names). A failed run's full error is in "
                           "its error.json; `bench sweep` again retries failed runs and resumes "
                           "unfinished ones."),
                     ("table", ["dataset", "algorithm", "variant", "seed", "status", "error"], rows)]


def build_blocks(root: Path, figures: Path, *, datasets: Sequence[str] | None = None,
                 algos: Sequence[str] | None = None, variants: Sequence[str] | None = None,
                 title: str = "bench report", reps: int = 5000) -> list[Block]:
    loaded = load_results(root, timings=True)
    runs = select_runs(loaded, datasets, algos, variants)
    incomplete = incomplete_runs(root)
    frames = [f for f in (incomplete, loaded.attrs["skipped"]) if not f.empty]
    status = select_runs(pd.concat(frames, ignore_index=True) if frames else incomplete,
                         datasets, algos, variants)
    scored = runs.dropna(subset=["normalized_score"])
    unscored = len(runs) - len(scored)
    names = sorted(scored["dataset"].unique())
    goal_tasks = [n for n in names if n in OGBENCH_GOAL_TASKS]
    blocks: list[Block] = [
        ("h", 1, title),
        # No clock time: a report is a function of its records, rebuilt byte for byte.
        ("p", f"Generated from {len(scored)} finished run(s) under {root}: "
              f"{len(names)} dataset(s), {scored['algo'].nunique()} algorithm(s)"
              + (f" ({unscored} more finished run(s) without reference scores are not in the "
                 "tables)" if unscored else "") + ". "
              "Normalized score: 0 = the random reference, 100 = the expert reference of each "
              "dataset."
              + (" On the goal tasks (" + ", ".join(goal_tasks) + ") the score is instead the "
                 "success rate in percent over the task goals (an episode scores 1 when it "
                 "reaches its goal), not a normalized return." if goal_tasks else "")),
    ]
    if scored.empty:
        return blocks + [("p", "No finished runs with reference scores match.")] \
            + _status_section(status)
    baselines = load_baselines()
    blocks += _data_section(scored)
    blocks += [("h", 2, "Scores per dataset"),
               ("p", "Mean ± 95% Student-t CI over seeds (no interval for one seed); IQM with a "
                     f"95% percentile-bootstrap CI over seeds (rliable, {reps} resamples). "
                     "'missing' lists seeds that other runs of the dataset have and this row "
                     "lacks.")]
    below_full = False  # whether a published score sits beside a row not trained as published
    for dataset in names:
        section, marked = _score_section(dataset, scored[scored["dataset"] == dataset],
                                         status[status["dataset"] == dataset], baselines, reps,
                                         figures)
        blocks += section
        below_full |= marked
    used = baselines.merge(scored[["algo", "dataset"]].drop_duplicates())
    notes = [BASELINE_SETS[v][1] for v in BASELINE_SETS if v in set(used["dataset_version"])]
    if notes:
        notes[-1] += BELOW_FULL_NOTE if below_full else ""
        blocks += [("p", note) for note in notes]
    blocks += _aggregate_section(scored, reps, figures)
    blocks += _curve_section(scored, names, figures)
    blocks += _runtime_section(runs)
    blocks += _status_section(status)
    if not used.empty:
        cites = used.drop_duplicates("source")
        blocks += [("h", 2, "Published baselines cited"),
                   ("table", ["source", "citation"],
                    [[c.source, c.citation] for c in cites.itertuples()])]
    return blocks


# ---- rendering

def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block], base: Path) -> str:
    out = []
    for b in blocks:
        if b[0] == "h":
            out.append("#" * b[1] + " " + b[2])
        elif b[0] == "p":
            out.append(b[1])
        elif b[0] == "table":
            header, rows = b[1], b[2]
            lines = ["| " + " | ".join(map(_md_cell, header)) + " |",
                     "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in rows]
            out.append("\n".join(lines))
        elif b[0] == "img":
            out.append(f"![{b[2]}]({Path(b[1]).relative_to(base).as_posix()})")
    return "\n\n".join(out) + "\n"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;
padding:4px 8px;text-align:left;vertical-align:top}th{background:#f2f2f2}img{max-width:100%;
display:block;margin:1em 0}p{line-height:1.45}"""


def _inline(text: str) -> str:
    # The only inline Markdown the report writes is **bold** and `code`. A mark without its
    # pair (a stray backtick in a run's error message) stays as it is, as Markdown shows it.
    escaped = html.escape(str(text))
    for mark, tag in (("**", "strong"), ("`", "code")):
        parts = escaped.split(mark)
        if len(parts) % 2 == 0:
            parts[-2:] = [parts[-2] + mark + parts[-1]]
        escaped = "".join(p if i % 2 == 0 else f"<{tag}>{p}</{tag}>" for i, p in enumerate(parts))
    return escaped


def to_html(blocks: list[Block], title: str) -> str:
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
           f"</title><style>{CSS}</style></head><body>"]
    for b in blocks:
        if b[0] == "h":
            out.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            out.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1])
            body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r)
                           + "</tr>" for r in b[2])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b[0] == "img":
            data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
            out.append(f"<img alt='{html.escape(b[2], quote=True)}' "
                       f"src='data:image/png;base64,{data}'>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


FIGURE_MANIFEST = ".bench-report.json"  # in figures/: the files the last build wrote there


def _written_figures(figures: Path) -> set[str]:
    """Names of the figures a previous build wrote (its manifest): the only files a new build
    removes from figures/, so that a user's own files there are never touched. Empty when there
    is no readable manifest (a folder no build has written, or one from before the manifest)."""
    try:
        names = json.loads((figures / FIGURE_MANIFEST).read_text())["figures"]
    except (OSError, ValueError, TypeError, KeyError):
        return set()
    if not isinstance(names, list):
        return set()
    # bare file names only: a hand-edited manifest must not reach outside figures/
    return {n for n in names if isinstance(n, str) and n == Path(n).name and n.endswith(".png")}


def _check_destination(to: Path, reps: int) -> None:
    """Usage errors before anything is built or written: ``--reps`` below 1 (rliable's bootstrap
    needs at least one resample), and a ``--to`` that is, or lies under, a file, or whose
    figures/ or report files are of the wrong kind."""
    from bench.errors import UsageError

    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise UsageError(f"--reps must be a whole number of at least 1 (bootstrap resamples; "
                         f"default 5000), not {reps!r}.")
    existing = next((p for p in (to, *to.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is" if existing == to else f"lies under {existing}, which is"
        raise UsageError(f"--to {to} {where} a file, not a folder; give --to a folder for "
                         "report.md, report.html and figures/ (default ./report).")
    if (to / "figures").exists() and not (to / "figures").is_dir():
        raise UsageError(f"{to / 'figures'} is a file, where the report keeps its figures; move it "
                         "or give --to another folder.")
    for name in ("report.md", "report.html"):
        if (to / name).is_dir():
            raise UsageError(f"{to / name} is a folder, where the report writes a file; move it "
                             "or give --to another folder.")


def build_report(root: Path, to: Path, *, datasets: Sequence[str] | None = None,
                 algos: Sequence[str] | None = None, variants: Sequence[str] | None = None,
                 title: str = "bench report", reps: int = 5000) -> ReportPaths:
    """Write ``<to>/report.md``, ``<to>/report.html`` and ``<to>/figures/*.png``.

    The report is built in a temporary folder and moves into ``to`` only once it is whole: a
    build that fails leaves the previous report and its figures as they were. Then the previous
    build's figures that this one did not make again are removed (those in the manifest
    ``figures/.bench-report.json``, never any other file of figures/)."""
    from bench.errors import BenchError

    to = Path(to)
    _check_destination(to, reps)
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        built = Path(tmp)
        (built / "figures").mkdir()
        blocks = build_blocks(Path(root), built / "figures", datasets=datasets, algos=algos,
                              variants=variants, title=title, reps=reps)
        made = [Path(b[1]) for b in blocks if b[0] == "img"]
        try:
            return _install(to, made, to_markdown(blocks, built), to_html(blocks, title))
        except OSError as exc:  # e.g. no permission to write there
            raise BenchError(f"cannot write the report to {to}: {exc}") from exc


def _install(to: Path, made: list[Path], md_text: str, page_text: str) -> ReportPaths:
    """Move a whole built report into ``to``, each file replaced atomically."""
    figures = to / "figures"
    old = _written_figures(figures)
    new = {f.name for f in made}
    # The manifest first names every figure about to be written, so that a build killed midway
    # leaves none that the next build does not know to be its own.
    atomic_write_json(figures / FIGURE_MANIFEST, {"figures": sorted(old | new)})
    for f in made:
        atomic_write_bytes(figures / f.name, f.read_bytes())
    md, page = to / "report.md", to / "report.html"
    atomic_write_bytes(md, md_text.encode())
    atomic_write_bytes(page, page_text.encode())
    for name in sorted(old - new):  # figures of the previous build that no longer apply
        (figures / name).unlink(missing_ok=True)
    atomic_write_json(figures / FIGURE_MANIFEST, {"figures": sorted(new)})
    return ReportPaths(md, page, [figures / f.name for f in made])
