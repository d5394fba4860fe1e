"""Results tables derived from run directories (the only source of truth).

Every ``result.json`` under a results root becomes one row; a table groups rows by dataset,
algorithm and variant and reports the normalized score's mean with a 95% Student-t confidence
interval over seeds (``mean ± t_{0.975, n-1} · s / √n``; no interval for a single seed).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


def load_results(root: Path) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for path in sorted(Path(root).rglob("result.json")):
        try:
            r = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a result being written right now appears on the next call
        rows.append({
            "dataset": r["dataset"], "algo": r["algo"], "variant": r.get("variant", r["budget"]),
            "budget": r["budget"], "seed": r["seed"], "normalized_score": r["normalized_score"],
            "mean_return": r.get("mean_return"), "dataset_source": r.get("dataset_source"),
            "path": str(path.parent),
        })
    columns = ["dataset", "algo", "variant", "budget", "seed", "normalized_score", "mean_return",
               "dataset_source", "path"]
    return pd.DataFrame(rows, columns=columns)


def t_interval(values: np.ndarray, confidence: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of the mean (NaN for n < 2)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return float("nan")
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))


def score_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset × algorithm × variant: mean, CI half-width, seed count."""
    df = df.dropna(subset=["normalized_score"])
    out = []
    for (dataset, algo, variant), g in df.groupby(["dataset", "algo", "variant"], sort=True):
        scores = g["normalized_score"].to_numpy(float)
        out.append({"dataset": dataset, "algo": algo, "variant": variant,
                    "mean": float(scores.mean()), "ci95": t_interval(scores),
                    "seeds": len(scores), "mean_return": float(g["mean_return"].mean())})
    return pd.DataFrame(out, columns=["dataset", "algo", "variant", "mean", "ci95", "seeds",
                                      "mean_return"])


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
        return f"{r['mean']:.1f}{ci} (n={r['seeds']})"

    table = table.assign(cell=table.apply(cell, axis=1),
                         row=table["algo"] + " [" + table["variant"] + "]")
    wide = table.pivot(index="row", columns="dataset", values="cell").fillna("—")
    header = "| algorithm | " + " | ".join(wide.columns) + " |"
    sep = "|---" * (len(wide.columns) + 1) + "|"
    lines = [header, sep] + [f"| {idx} | " + " | ".join(row) + " |" for idx, row in wide.iterrows()]
    return "\n".join(lines) + "\n\nNormalized score (0 = random, 100 = expert): mean ± 95% CI over seeds."
