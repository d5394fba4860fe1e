"""Learning curves across seeds: load them from run directories, put every seed on one step grid,
plot mean ± 95% CI bands, and summarise final and best normalized returns.

A run's curve is a metric of its ``metrics.jsonl`` against ``step`` (env steps for online
algorithms, updates for offline ones): by default ``train/episode_return``, the mean return of the
training episodes that ended in each logged iteration. Seeds are linearly interpolated onto a
shared grid (no extrapolation: the grid ends where the shortest seed ends) before averaging.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from bench.results import t_interval

DEFAULT_METRIC = "train/episode_return"


def load_curve(run_dir: str | Path, metric: str = DEFAULT_METRIC) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of ``metric`` in one run's metrics.jsonl (rows without it are skipped;
    a run without the file, e.g. copied without it, has an empty curve and no band counts it)."""
    steps, values = [], []
    path = Path(run_dir) / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a torn last line of a killed run
        if metric in row and np.isfinite(row[metric]):
            steps.append(row["step"])
            values.append(row[metric])
    return np.asarray(steps, float), np.asarray(values, float)


def seed_band(curves: Sequence[tuple[np.ndarray, np.ndarray]], points: int = 100,
              confidence: float = 0.95) -> pd.DataFrame:
    """Mean and CI half-width over seeds on a shared grid: columns step, mean, ci, seeds. The
    grid spans only the steps every seed logged (empty when their ranges do not overlap): a
    value outside a seed's range would be made up."""
    curves = [c for c in curves if len(c[0]) > 0]
    empty = pd.DataFrame(columns=["step", "mean", "ci", "seeds"])
    if not curves:
        return empty
    start = max(c[0][0] for c in curves)
    end = min(c[0][-1] for c in curves)
    if end < start:
        return empty
    grid = np.linspace(start, end, points) if end > start else np.asarray([end])
    stacked = np.stack([np.interp(grid, s, v) for s, v in curves])
    ci = [t_interval(stacked[:, j], confidence) for j in range(len(grid))]
    return pd.DataFrame({"step": grid, "mean": stacked.mean(0), "ci": ci, "seeds": len(curves)})


def normalize(values: np.ndarray, ref_min: float | None, ref_max: float | None) -> np.ndarray:
    if ref_min is None or ref_max is None:
        return values
    return 100.0 * (values - ref_min) / (ref_max - ref_min)


def plot_bands(bands: dict[str, pd.DataFrame], out: str | Path, *, title: str,
               ylabel: str, xlabel: str = "env steps") -> Path:
    """One line per label with its CI band, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for label, band in bands.items():
        if band.empty:
            continue
        n = int(band["seeds"].iloc[0])
        line, = ax.plot(band["step"], band["mean"], label=f"{label} (n={n})")
        ci = band["ci"].fillna(0.0)
        ax.fill_between(band["step"], band["mean"] - ci, band["mean"] + ci,
                        color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def final_and_best(groups: dict[str, list[Path]], metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """Per label: the final evaluation's normalized score (result.json, mean ± CI over seeds) and
    the best point of each seed's normalized training curve (mean ± CI over seeds)."""
    rows = []
    for label, runs in groups.items():
        finals, bests = [], []
        for run in runs:
            result = json.loads((Path(run) / "result.json").read_text())
            finals.append(result["normalized_score"])
            _, values = load_curve(run, metric)
            if len(values):
                bests.append(float(normalize(values, result.get("ref_min"),
                                             result.get("ref_max")).max()))
        rows.append({"variant": label, "seeds": len(runs),
                     "final": float(np.mean(finals)), "final_ci95": t_interval(np.asarray(finals)),
                     "best_training": float(np.mean(bests)) if bests else float("nan"),
                     "best_training_ci95": t_interval(np.asarray(bests))})
    return pd.DataFrame(rows)
