"""How often rliable's 95% stratified-bootstrap interval (percentile method, runs resampled
within each dataset) covers the truth, per aggregate (median, IQM, mean, optimality gap) and
design (datasets × runs per dataset), on tables shaped like the suite's own.

Each simulated table draws its datasets' true means and run-to-run standard deviations from the
rows of a committed score table (default: the locomotion table; sd from each row's t-interval),
then normal scores. The truth is the median and mean of the true means, and the IQM and
optimality gap of 20,000 draws per dataset. ``bench report`` shows an aggregate's interval only
for designs whose coverage here is acceptable (``aggregate_ci_shown`` in bench/report.py).
Run: ``python scripts/bootstrap_coverage.py`` (about 90 seconds on one core).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
AGGREGATES = ("median", "iqm", "mean", "optimality_gap")


def spreads(table_csv: Path) -> np.ndarray:
    """(rows, 2) true mean and standard deviation per row of a `bench results --format csv`
    table, the deviation recovered from the row's 95% t-interval."""
    t = pd.read_csv(table_csv).dropna(subset=["ci95"])
    t = t[t["seeds"] >= 2]
    sd = t["ci95"] * np.sqrt(t["seeds"]) / stats.t.ppf(0.975, t["seeds"] - 1)
    return np.stack([t["mean"].to_numpy(float), sd.to_numpy(float)], 1)


def aggregates(x: np.ndarray) -> np.ndarray:
    """x (..., runs, datasets) → (..., 4): rliable's median (of the datasets' mean scores), IQM
    and optimality gap (γ = 100) over every run, and mean."""
    flat = x.reshape(*x.shape[:-2], -1)
    return np.stack([np.median(x.mean(-2), -1), stats.trim_mean(flat, 0.25, axis=-1),
                     flat.mean(-1), 100 - np.minimum(flat, 100).mean(-1)], -1)


def coverage(pool: np.ndarray, datasets: int, runs: int, tables: int, reps: int,
             rng: np.random.Generator) -> np.ndarray:
    covered = np.zeros(len(AGGREGATES))
    for _ in range(tables):
        mu, sd = pool[rng.integers(0, len(pool), datasets)].T
        big = rng.normal(mu, sd, (20_000, datasets))
        truth = aggregates(big[None])[0]
        truth[0], truth[2] = np.median(mu), mu.mean()
        scores = rng.normal(mu, sd, (runs, datasets))
        pick = rng.integers(0, runs, (reps, runs, datasets))  # resample runs within each dataset
        boot = aggregates(np.take_along_axis(np.broadcast_to(scores, pick.shape), pick, 1))
        low, high = np.percentile(boot, [2.5, 97.5], axis=0)
        covered += (low <= truth) & (truth <= high)
    return covered / tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path,
                        default=ROOT / "reports" / "quick-locomotion-table" / "table.csv",
                        help="a score table (bench results --format csv) to draw datasets from")
    parser.add_argument("--tables", type=int, default=1000, help="simulated tables per design")
    parser.add_argument("--reps", type=int, default=1000, help="bootstrap resamples per table")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    pool = spreads(args.table)
    print(f"{len(pool)} rows of {args.table.relative_to(ROOT) if args.table.is_relative_to(ROOT) else args.table}; "
          f"sd median {np.median(pool[:, 1]):.1f}, max {pool[:, 1].max():.1f}; "
          f"{args.tables} tables per design, ±{200 * math.sqrt(0.9 * 0.1 / args.tables):.1f} "
          "points (2 s.e.) at 90% coverage\n")
    print("| datasets | runs per dataset | " + " | ".join(AGGREGATES) + " |\n"
          + "|---" * (2 + len(AGGREGATES)) + "|")
    for datasets in (2, 3, 4, 5, 10, 15):
        for runs in (3, 5):
            c = coverage(pool, datasets, runs, args.tables, args.reps, rng)
            print(f"| {datasets} | {runs} | " + " | ".join(f"{v:.2f}" for v in c) + " |")


if __name__ == "__main__":
    main()
