"""Learning curves over seeds: interpolation onto one grid, CI bands, final/best summary, PNG."""
import json

import numpy as np
import pytest

from bench.curves import final_and_best, load_curve, plot_bands, seed_band


def _run(path, steps, values, score, ref=(0.0, 100.0)):
    path.mkdir(parents=True)
    rows = [{"step": s, "train/episode_return": v, "loss": 1.0} for s, v in zip(steps, values)]
    rows.insert(1, {"step": 5, "loss": 0.5})  # a row without the metric is skipped
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "result.json").write_text(json.dumps({"normalized_score": score, "ref_min": ref[0],
                                                  "ref_max": ref[1]}))
    return path


def test_band_interpolates_seeds_onto_the_shared_range_and_averages(tmp_path):
    a = (np.array([0.0, 10, 20]), np.array([0.0, 10, 20]))
    b = (np.array([0.0, 5, 15]), np.array([2.0, 7, 17]))  # ends earlier: the grid stops at 15
    band = seed_band([a, b], points=4)
    np.testing.assert_allclose(band["step"], [0, 5, 10, 15])
    np.testing.assert_allclose(band["mean"], [1, 6, 11, 16])
    assert (band["seeds"] == 2).all()
    # two seeds differing by 2 at step 0: t(0.975, 1) * std / sqrt(2) = 12.706 * 1.414 / 1.414
    assert band["ci"].iloc[0] == pytest.approx(12.706, rel=1e-3)
    # Seeds whose logged steps do not overlap share no step: no band, rather than made-up values.
    late = (np.array([30.0, 40]), np.array([1.0, 2]))
    assert seed_band([a, late]).empty


def test_final_and_best_and_plot(tmp_path):
    runs = [_run(tmp_path / f"seed_{i}", [10, 20, 30], [10.0 + i, 50.0 + i, 40.0], 30.0 + 2 * i,
                 ref=(10.0, 110.0)) for i in range(3)]
    assert load_curve(runs[0])[0].tolist() == [10, 20, 30]
    table = final_and_best({"algo": runs})
    row = table.iloc[0]
    assert row["seeds"] == 3 and row["final"] == pytest.approx(32.0)
    assert row["best_training"] == pytest.approx(41.0)  # (51 - 10) / 100 * 100 for the mean seed
    out = plot_bands({"algo": seed_band([load_curve(r) for r in runs])}, tmp_path / "c.png",
                     title="t", ylabel="y")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_without_metrics_or_with_a_torn_line_has_a_partial_curve(tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    steps, values = load_curve(bare)
    assert len(steps) == 0 and len(values) == 0
    torn = _run(tmp_path / "torn", [10, 20], [1.0, 2.0], 50.0)
    with open(torn / "metrics.jsonl", "a") as f:
        f.write('{"step": 30, "train/episode_ret')
    steps, values = load_curve(torn)
    np.testing.assert_array_equal(steps, [10, 20])
    assert seed_band([load_curve(bare), load_curve(torn)])["seeds"].iloc[0] == 1
