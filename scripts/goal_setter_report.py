#!/usr/bin/env python
"""Curves and table of the goal-setter experiment (reports/goal-setter/, its sweep.toml):
OUT_DIR/curves.png (training return against env steps, mean and 95% CI band over seeds) and
OUT_DIR/table.{md,csv} (final evaluation and best training point, normalized), from the runs
RESULTS_ROOT/<dataset>/<algo>/full,...num_updates=STEPS/seed_<n>. scripts/rebuild_from_records.sh
runs it on reports/goal-setter/records/.

Usage: scripts/goal_setter_report.py RESULTS_ROOT STEPS OUT_DIR"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.curves import final_and_best, load_curve, normalize, plot_bands, seed_band


def main(root: str, steps: str, out: str) -> None:
    base = Path(root)
    v = f"full,num_updates={steps}"
    groups = {
        "ppo": base / "Hopper-v5" / "ppo" / v,
        "gs_ppo (frozen IDM from hopper-expert)": base / "hopper-expert" / "gs_ppo" / v,
        "gs_ppo (frozen IDM from hopper-medium)": base / "hopper-medium" / "gs_ppo" / v,
        "gs_ppo_joint (K=10)": base / "Hopper-v5" / "gs_ppo_joint" / v,
        "gs_ppo_joint (K=5)": base / "Hopper-v5" / "gs_ppo_joint" / f"full,max_offset=5,num_updates={steps}",
        "gs_ppo_v0": base / "Hopper-v5" / "gs_ppo_v0" / v,
    }
    runs = {label: sorted(p for p in d.glob("seed_*") if (p / "result.json").exists())
            for label, d in groups.items()}
    runs = {label: r for label, r in runs.items() if r}

    def band(paths):
        curves = []
        for p in paths:
            result = json.loads((p / "result.json").read_text())
            s, values = load_curve(p)
            curves.append((s, normalize(values, result["ref_min"], result["ref_max"])))
        return seed_band(curves)

    out_dir = Path(out)
    plot_bands({label: band(paths) for label, paths in runs.items()}, out_dir / "curves.png",
               title=f"Hopper-v5, {int(steps):,} env steps: training episodes",
               ylabel="normalized return (0 = random, 100 = expert reference)")
    table = final_and_best(runs)
    lines = ["| variant | seeds | final evaluation (normalized, mean ± 95% CI) | best training "
             "point (normalized, mean ± 95% CI) |", "|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.variant} | {r.seeds} | {r.final:.1f} ± {r.final_ci95:.1f} | "
                     f"{r.best_training:.1f} ± {r.best_training_ci95:.1f} |")
    (out_dir / "table.md").write_text("\n".join(lines) + "\n")
    table.to_csv(out_dir / "table.csv", index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main(*sys.argv[1:4])
