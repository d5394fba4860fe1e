#!/usr/bin/env python
"""Curves and table of the goal-setter experiment (reports/goal-setter/, its sweep.toml):
OUT_DIR/curves.png (training return against env steps, mean and 95% CI band over seeds) and
OUT_DIR/table.{md,csv} (final evaluation and best training point, normalized), from the runs
RESULTS_ROOT/<dataset>/<algo>/full,...total_env_steps=STEPS/seed_<n> (num_updates= before 2026-12-06). scripts/rebuild_from_records.sh
runs it on reports/goal-setter/records/.

Usage: scripts/goal_setter_report.py RESULTS_ROOT STEPS OUT_DIR"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.curves import final_and_best, load_curve, normalize, plot_bands, seed_band


def main(root: str, steps: str, out: str) -> None:
    base = Path(root)

    def runs_of(source: str, algo: str, extra: str = "") -> Path:
        """The variant directory of ``steps`` env steps: named ``total_env_steps=`` since
        2026-12-06, ``num_updates=`` in the committed records made before."""
        names = [f"full,{extra}{field}={steps}" for field in ("total_env_steps", "num_updates")]
        found = [base / source / algo / n for n in names if (base / source / algo / n).is_dir()]
        return found[0] if found else base / source / algo / names[0]

    groups = {
        "ppo": runs_of("Hopper-v5", "ppo"),
        "gs_ppo (frozen IDM from hopper-expert)": runs_of("hopper-expert", "gs_ppo"),
        "gs_ppo (frozen IDM from hopper-medium)": runs_of("hopper-medium", "gs_ppo"),
        "gs_ppo_joint (K=10)": runs_of("Hopper-v5", "gs_ppo_joint"),
        "gs_ppo_joint (K=5)": runs_of("Hopper-v5", "gs_ppo_joint", "max_offset=5,"),
        "gs_ppo_v0": runs_of("Hopper-v5", "gs_ppo_v0"),
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
