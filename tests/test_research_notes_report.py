"""scripts/research_notes_report.py: the research-notes table's numbers from run records (the
training return read at the notes' 33k steps, over the last 30k, the final evaluation), one data
file per condition, and the figures it draws."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "research_notes_report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("research_notes_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(root: Path, source: str, algo: str, variant: str, seed: int, returns: list[float],
         score: float, sha: str = "aaa") -> None:
    """A finished run: training returns logged every 10k env steps from 10k on."""
    run = root / source / algo / variant / f"seed_{seed}"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"step": 10_000 * (i + 1), "train/episode_return": r}) + "\n"
        for i, r in enumerate(returns)))
    (run / "result.json").write_text(json.dumps(
        {"normalized_score": score, "ref_min": 0.0, "ref_max": 1000.0, "dataset_sha256": sha}))


def test_table_reads_the_notes_points_and_keeps_one_data_file(report, tmp_path):
    random_idm = "full,idm_pretrain_updates=0,total_env_steps=300000"
    # 10k..60k: the return at 33k lies 3/10 of the way from 30k's to 40k's.
    _run(tmp_path, "hopper-expert", "gs_ppo", random_idm, 0, [100, 200, 250, 260, 270, 280], 8.0)
    _run(tmp_path, "hopper-expert", "gs_ppo", random_idm, 1, [10, 20, 30, 130, 230, 240], 6.0)
    # The same condition trained on another file of hopper-expert: left out (fewer runs).
    _run(tmp_path, "hopper-expert", "gs_ppo", random_idm, 2, [999] * 6, 99.0, sha="bbb")
    _run(tmp_path, "Hopper-v5", "ppo", "full,total_env_steps=300000", 0, [50] * 6, 60.0)
    out = tmp_path / "out"
    out.mkdir()
    (out / "curves_closeness.png").write_bytes(b"a figure of runs no longer in the records")
    report.main(str(tmp_path), str(out))

    table = pd.read_csv(out / "table.csv").set_index("condition")
    row = table.loc["gs_ppo, random fixed IDM"]
    assert row["seeds"] == 2
    at_33k = [250 + 0.3 * 10, 30 + 0.3 * 100]
    assert row["return_33k"] == pytest.approx(np.mean(at_33k))
    # The last 30k env steps of a 60k run: the rows at 30k, 40k, 50k and 60k.
    last = [np.mean([250, 260, 270, 280]), np.mean([30, 130, 230, 240])]
    assert row["return_last_30k"] == pytest.approx(np.mean(last))
    half_width = stats.t.ppf(0.975, 1) * np.std(last, ddof=1) / np.sqrt(2)
    assert row["return_last_30k_ci95"] == pytest.approx(half_width)
    assert row["final"] == pytest.approx(7.0) and row["per_seed_final"] == "8.0 / 6.0"
    assert "gs_ppo, IDM pretrained on hopper-expert, frozen" not in table.index  # no runs
    # Figures: one beside PPO is drawn, PPO alone is not; the random IDM's seeds get their own.
    assert (out / "curves_random_idm.png").exists()
    assert not (out / "curves_closeness.png").exists()
    assert (out / "curves_random_idm_seeds.png").exists()


def test_a_seed_run_again_under_the_newer_name_counts_once(report, tmp_path):
    # V0's seeds 0-2 exist under the goal-setter report's old name and again under the new one.
    for seed, score in enumerate([30.0, 60.0, 80.0]):
        _run(tmp_path, "Hopper-v5", "gs_ppo_v0", "full,num_updates=300000", seed, [50] * 6, score)
    for seed, score in enumerate([100.0, 70.0, 90.0, 50.0]):
        _run(tmp_path, "Hopper-v5", "gs_ppo_v0", "full,total_env_steps=300000", seed, [50] * 6,
             score)
    runs = report.run_dirs(tmp_path, "Hopper-v5", "gs_ppo_v0", "full")
    assert [p.name for p in runs] == ["seed_0", "seed_1", "seed_2", "seed_3"]
    assert all("total_env_steps" in p.parent.name for p in runs)
    # Seeds only the old name has still count (K = 10's seeds 0-2 beside new seeds 3-4).
    _run(tmp_path, "Hopper-v5", "gs_ppo_joint", "full,num_updates=300000", 0, [50] * 6, 10.0)
    _run(tmp_path, "Hopper-v5", "gs_ppo_joint", "full,total_env_steps=300000", 3, [50] * 6, 20.0)
    assert [p.name for p in report.run_dirs(tmp_path, "Hopper-v5", "gs_ppo_joint", "full")] == [
        "seed_0", "seed_3"]
