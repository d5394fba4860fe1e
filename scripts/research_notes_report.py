#!/usr/bin/env python
"""Curves and table of the research notes' goal-setter experiments (reports/research-notes/,
its sweep.toml), from the runs under RESULTS_ROOT (its records/):

- OUT_DIR/table.{md,csv}: per condition the seeds, the final evaluation (normalized, mean ± 95%
  CI), and the training return where the notes read theirs: at 33k env steps and over the last
  30k (raw Hopper return, mean ± 95% CI over seeds), with the IDM's GCSL loss over the first and
  last 30k steps where it trains;
- OUT_DIR/curves_<figure>.png: training return against env steps (normalized, mean and 95% CI
  band over seeds), one figure per question of the notes, and curves_random_idm_seeds.png (the
  random fixed IDM's seeds, raw return, the notes' 259 at 33k marked).

Conditions without finished runs are left out. scripts/rebuild_from_records.sh runs it on
reports/research-notes/records/.

Usage: scripts/research_notes_report.py RESULTS_ROOT OUT_DIR"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench.curves import load_curve, normalize, plot_bands, seed_band
from bench.results import t_interval

STEPS = 300_000
V0 = "full,total_env_steps=300000"
NOT_FORCED = "full,closeness_coef=0.0,idm_closeness=false,total_env_steps=300000"
# label → (source, algo, variant directory without the step count's field, figures)
CONDITIONS = {
    "ppo": ("Hopper-v5", "ppo", "full", ("random_idm", "closeness", "fixed_idm", "idm_states")),
    "gs_ppo, IDM pretrained on hopper-expert, frozen": ("hopper-expert", "gs_ppo", "full",
                                                        ("random_idm", "idm_states")),
    "gs_ppo, the same on raw states": ("hopper-expert", "gs_ppo",
                                       "full,idm_normalize_states=false", ("idm_states",)),
    "gs_ppo, random fixed IDM": ("hopper-expert", "gs_ppo", "full,idm_pretrain_updates=0",
                                 ("random_idm",)),
    "gs_ppo, random fixed IDM in PPO's optimizer": (
        "hopper-expert", "gs_ppo", "full,idm_in_optimizer=true,idm_pretrain_updates=0",
        ("random_idm",)),
    "gs_ppo_joint, K=10": ("Hopper-v5", "gs_ppo_joint", "full", ("joint_k",)),
    "gs_ppo_joint, K=5": ("Hopper-v5", "gs_ppo_joint", "full,max_offset=5", ("joint_k",)),
    "gs_ppo_v0 without the goal term (variant 1)": ("Hopper-v5", "gs_ppo_v0",
                                                    "full,closeness_coef=0.0", ("closeness",)),
    "gs_ppo_v0 (V0)": ("Hopper-v5", "gs_ppo_v0", "full", ("closeness", "fixed_idm")),
    "gs_ppo_v0, IDM not forced close": ("Hopper-v5", "gs_ppo_v0",
                                        "full,closeness_coef=0.0,idm_closeness=false",
                                        ("fixed_idm",)),
    "gs_ppo, V0's IDM fixed": ("Hopper-v5", "gs_ppo", f"idm_from_run:{V0}", ("fixed_idm",)),
    "gs_ppo, not-forced IDM fixed": ("Hopper-v5", "gs_ppo", f"idm_from_run:{NOT_FORCED}",
                                     ("fixed_idm",)),
    "gs_ppo_vicreg (joint IDM, VICReg on its state encoder)": (
        "Hopper-v5", "gs_ppo_vicreg", "full", ("vicreg",)),
    "gs_ppo_joint, the same 256-unit IDM encoder, no VICReg": (
        "Hopper-v5", "gs_ppo_joint", "full,idm_state_encoder=256", ("vicreg",)),
    "Car Racer: ppo in the latent env": ("carracing-medium", "ppo", "full", ("carracing",),
                                         200_000),
    "Car Racer: gs_ppo, IDM pretrained on carracing-medium, frozen": (
        "carracing-medium", "gs_ppo", "full", ("carracing",), 200_000),
}
FIGURES = {
    "random_idm": "a random fixed IDM against PPO and a pretrained one",
    "joint_k": "the jointly trained IDM, K = 10 against K = 5",
    "closeness": "PPO's actions executed, the IDM pulled toward them",
    "fixed_idm": "an IDM trained on PPO's rollouts, then fixed",
    "carracing": "Car Racer latent env: goal setter with a frozen IDM against PPO",
    "vicreg": "the joint IDM with temporal VICReg on its state encoder, and without",
    "idm_states": "the frozen pretrained IDM reading normalized or raw states",
}
# The notes: "moves quickly up to 259 at 33k steps (matches standard), but then stagnates".
NOTES_STEP, NOTES_RETURN = 33_000, 259.0


def run_dirs(root: Path, source: str, algo: str, variant: str, _figures: tuple = (),
             steps: int = STEPS) -> list[Path]:
    """Finished seeds of one condition. The step count is named ``total_env_steps=`` since
    2026-12-06 and ``num_updates=`` in the records of reports/goal-setter copied here; an
    ``idm_from_run:V`` variant is the gs_ppo run whose IDM came from V's runs (its directory
    name holds that path, hashed)."""
    base = root / source / algo
    if variant.startswith("idm_from_run:"):
        wanted = "idm_from_run=" + f"results/{source}/gs_ppo_v0/{variant.split(':', 1)[1]}"
        dirs = [d for d in base.glob("*") if _variant_of(d) == wanted]
    else:
        names = [variant + f",{field}={steps}" for field in ("total_env_steps", "num_updates")]
        dirs = [base / n for n in names]
    # A seed run again under the newer name (V0's seeds 0-2, whose IDMs §9 loads) counts once,
    # as the newer run: the older one ran on code that has changed since.
    seeds, seen = [], set()
    for p in (p for d in dirs for p in sorted(d.glob("seed_*"))):
        if (p / "result.json").exists() and p.name not in seen:
            seeds.append(p)
            seen.add(p.name)
    # One data file per condition: runs on another file of the same dataset (made on another
    # machine) are left out, keeping the file with the most runs (the newer name on a tie).
    by_file: dict[str, list[Path]] = {}
    for p in seeds:
        sha = json.loads((p / "result.json").read_text()).get("dataset_sha256") or ""
        by_file.setdefault(sha, []).append(p)
    kept = max(by_file.values(), key=len, default=[])
    return sorted(kept)


def _variant_of(variant_dir: Path) -> str:
    """The idm_from_run setting a gs_ppo variant ran with, read from one of its results."""
    for result in variant_dir.glob("seed_*/result.json"):
        value = json.loads(result.read_text()).get("overrides", {}).get("idm_from_run", "")
        return "idm_from_run=" + value.replace("seed_{seed}", "").rstrip("/") if value else ""
    return ""


def _at(steps: np.ndarray, values: np.ndarray, step: float) -> float:
    return float(np.interp(step, steps, values)) if len(steps) else float("nan")


def _late(steps: np.ndarray, values: np.ndarray, window: float = 30_000) -> float:
    if not len(steps):
        return float("nan")
    return float(values[steps >= steps[-1] - window].mean())


def _mean_ci(xs: list[float]) -> str:
    xs = [x for x in xs if np.isfinite(x)]
    if not xs:
        return "—"
    return f"{np.mean(xs):.1f} ± {t_interval(np.asarray(xs)):.1f}" if len(xs) > 1 \
        else f"{xs[0]:.1f}"


def plot_seeds(paths: list[Path], out: Path, title: str) -> None:
    """Each seed's raw training return, with the notes' "259 at 33k steps" marked: the mean band
    of curves_random_idm.png averages the plateaus' different starts away."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for p in paths:
        ax.plot(*load_curve(p), label=p.name.replace("_", " "), linewidth=1)
    ax.plot([NOTES_STEP], [NOTES_RETURN], "k*", markersize=10, label="the notes: 259 at 33k")
    ax.set(title=title, xlabel="env steps", ylabel="training return (raw)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(root: str, out: str) -> None:
    base, out_dir = Path(root), Path(out)
    runs = {label: run_dirs(base, *spec) for label, spec in CONDITIONS.items()}
    runs = {label: r for label, r in runs.items() if r}
    rows, md = [], ["| condition | seeds | final evaluation (normalized) | training return at 33k "
                    "(raw) | training return, last 30k (raw) | IDM GCSL loss, first / last 30k "
                    "|", "|---|---|---|---|---|---|"]
    bands: dict[str, dict[str, pd.DataFrame]] = {f: {} for f in FIGURES}
    for label, paths in runs.items():
        finals, early, late, loss_first, loss_last, curves = [], [], [], [], [], []
        for p in paths:
            result = json.loads((p / "result.json").read_text())
            finals.append(float("nan") if result["normalized_score"] is None
                          else result["normalized_score"])
            s, v = load_curve(p)
            early.append(_at(s, v, NOTES_STEP))
            late.append(_late(s, v))
            ls, lv = load_curve(p, "idm/gcsl_loss")
            if len(ls):
                loss_first.append(float(lv[ls <= ls[0] + 30_000].mean()))
                loss_last.append(_late(ls, lv))
            curves.append((s, normalize(v, result["ref_min"], result["ref_max"])))
        for figure in CONDITIONS[label][3]:
            bands[figure][label] = seed_band(curves)
        loss = (f"{np.mean(loss_first):.4f} / {np.mean(loss_last):.4f}" if loss_first else "—")
        md.append(f"| {label} | {len(paths)} | {_mean_ci(finals)} | {_mean_ci(early)} | "
                  f"{_mean_ci(late)} | {loss} |")
        rows.append({"condition": label, "seeds": len(paths),
                     "final": float(np.nanmean(finals)),
                     "final_ci95": t_interval(np.asarray([x for x in finals if np.isfinite(x)])),
                     "return_33k": float(np.nanmean(early)),
                     "return_33k_ci95": t_interval(np.asarray(early)),
                     "return_last_30k": float(np.nanmean(late)),
                     "return_last_30k_ci95": t_interval(np.asarray(late)),
                     "gcsl_loss_first_30k": float(np.mean(loss_first)) if loss_first else None,
                     "gcsl_loss_last_30k": float(np.mean(loss_last)) if loss_last else None,
                     "per_seed_final": " / ".join(f"{x:.1f}" for x in finals)})
    out_dir.mkdir(parents=True, exist_ok=True)
    for figure, title in FIGURES.items():
        if len([b for b in bands[figure].values() if not b.empty]) >= 2:  # not PPO alone
            plot_bands(bands[figure], out_dir / f"curves_{figure}.png",
                       title=title if figure == "carracing" else f"Hopper-v5, {title}",
                       ylabel="normalized training return (0 = random, 100 = expert)")
        else:  # a figure of runs no longer in the records is not left behind
            (out_dir / f"curves_{figure}.png").unlink(missing_ok=True)
    if "gs_ppo, random fixed IDM" in runs:
        plot_seeds(runs["gs_ppo, random fixed IDM"], out_dir / "curves_random_idm_seeds.png",
                   "Hopper-v5, a random fixed IDM under the goal setter, per seed")
    md += ["", "GCSL IDM on hopper-expert asked to reach the state it is in (goal_source = self), "
           "by the goal range K it was trained on (quick budget):", "",
           "| K (max_offset) | seeds | normalized score | per seed |", "|---|---|---|---|"]
    for k in (5, 10, 20, 50):
        variant = "quick,goal_source=self" + ("" if k == 10 else f",max_offset={k}")
        scores = [json.loads((p / "result.json").read_text())["normalized_score"]
                  for p in sorted((base / "hopper-expert" / "gcsl_idm" / variant).glob("seed_*"))
                  if (p / "result.json").exists()]
        if scores:
            md.append(f"| {k} | {len(scores)} | {_mean_ci(scores)} | "
                      f"{' / '.join(f'{x:.1f}' for x in scores)} |")
    # Along training (K = 10, an evaluation every 1,000 updates), with the dataset's state scaling
    # and without it (normalize_states=false, as the notes' first IDM read states).
    along = {"normalized states": "quick,eval_every=1000,goal_source=self",
             "raw states": "quick,eval_every=1000,goal_source=self,normalize_states=false"}
    curves_by = {}
    for label, variant in along.items():
        seeds = sorted(p for p in (base / "hopper-expert" / "gcsl_idm" / variant).glob("seed_*")
                       if (p / "result.json").exists())
        if seeds:
            curves_by[label] = [load_curve(p, "eval/normalized_score") for p in seeds]
    if curves_by:
        plot_bands({f"gcsl_idm, goal = the current state, {label}": seed_band(curves)
                    for label, curves in curves_by.items()},
                   out_dir / "curves_gcsl_self.png", xlabel="updates",
                   title="hopper-expert: the GCSL IDM asked to stay where it is, along training",
                   ylabel="normalized score (10 episodes)")
        points = (1000, 2000, 5000, 10_000, 19_000)
        md += ["", "Its self-goal score along training (K = 10, an evaluation every 1,000 "
               "updates; mean ± 95% CI over seeds; the last column averages each seed's "
               "evaluations from 5,000 updates on):", "",
               "| states | seeds | " + " | ".join(f"{p:,} updates" for p in points)
               + " | 5,000 on |", "|---" * (len(points) + 3) + "|"]
        for label, curves in curves_by.items():
            later = [float(v[st >= 5000].mean()) for st, v in curves]
            md.append(f"| {label} | {len(curves)} | " + " | ".join(
                _mean_ci([_at(st, v, p) for st, v in curves]) for p in points)
                + f" | {_mean_ci(later)} |")
    (out_dir / "table.md").write_text("\n".join(md) + "\n")
    pd.DataFrame(rows).to_csv(out_dir / "table.csv", index=False)
    print("\n".join(md))


if __name__ == "__main__":
    main(*sys.argv[1:3])
