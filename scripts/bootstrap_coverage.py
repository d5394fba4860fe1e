"""How often rliable's 95% stratified-bootstrap interval (percentile method, runs resampled
within each dataset) covers the true mean and IQM, by design: datasets × runs per dataset.

Each simulated table draws per-dataset means uniform in [0, 100] and run-to-run standard
deviations uniform in [2, 20] (the spread of the suite's quick tables), then normal scores; the
truth is the mean of the dataset means, and the IQM of 20,000 draws per dataset. `bench report`
shows an aggregate's interval only for designs whose coverage here is near the one it already
accepted (5 runs on 2 datasets); see aggregate_ci_shown in
bench/report.py. Run: ``python scripts/bootstrap_coverage.py`` (about a minute on one core).
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy import stats


def coverage(datasets: int, runs: int, tables: int, reps: int,
             rng: np.random.Generator) -> dict[str, float]:
    covered = {"mean": 0, "iqm": 0}
    for _ in range(tables):
        mu, sd = rng.uniform(0, 100, datasets), rng.uniform(2, 20, datasets)
        truth = {"mean": mu.mean(),
                 "iqm": stats.trim_mean(rng.normal(mu, sd, (20_000, datasets)).ravel(), 0.25)}
        scores = rng.normal(mu, sd, (runs, datasets))  # (runs, datasets)
        pick = rng.integers(0, runs, (reps, runs, datasets))  # resample runs within each dataset
        boot = np.take_along_axis(np.broadcast_to(scores, pick.shape), pick, 1).reshape(reps, -1)
        for name, values in (("mean", boot.mean(1)), ("iqm", stats.trim_mean(boot, 0.25, axis=1))):
            low, high = np.percentile(values, [2.5, 97.5])
            covered[name] += bool(low <= truth[name] <= high)
    return {name: count / tables for name, count in covered.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=400, help="simulated tables per design")
    parser.add_argument("--reps", type=int, default=1000, help="bootstrap resamples per table")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print("| datasets | runs per dataset | coverage, mean | coverage, IQM |\n|---|---|---|---|")
    for datasets in (2, 5, 10, 15):
        for runs in (3, 5):
            c = coverage(datasets, runs, args.tables, args.reps, rng)
            print(f"| {datasets} | {runs} | {c['mean']:.2f} | {c['iqm']:.2f} |")


if __name__ == "__main__":
    main()
