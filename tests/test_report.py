"""`bench report` on a hand-built results root whose every expected number is worked out below."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from conftest import run_cli


def _run(root: Path, dataset: str, algo: str, seed: int, score: float, sha: str | None = "a" * 64,
         budget: str = "quick", kind: str | None = "offline", commit: str | None = None,
         overrides: dict | None = None) -> None:
    variant = budget + "".join(f",{k}={v}" for k, v in (overrides or {}).items())
    d = root / dataset / algo / variant / f"seed_{seed}"
    d.mkdir(parents=True)
    (d / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "loss": 1.0 / s + seed}) + "\n" for s in (10, 20, 30)))
    (d / "result.json").write_text(json.dumps({
        "dataset": dataset, "algo": algo, "seed": seed, "budget": budget, "variant": variant,
        "normalized_score": score, "git": {"commit": commit, "dirty": False},
        "overrides": overrides or {}, **({"kind": kind} if kind else {}), "mean_return": score * 10,
        "ref_min": 0.0, "ref_max": 1000.0, "dataset_sha256": sha, "dataset_source": "self-generated",
        "conditions": {"default": {"episode_lengths": [100, 100]}},
        "timings": {"train_seconds": 10.0, "eval_seconds": 2.0,
                    "wall_seconds_this_session": 13.0, "updates_per_s": 100.0}}))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("results")
    for seed, score in enumerate([10.0, 20.0, 30.0]):
        _run(root, "hopper-medium", "bc", seed, score)
    for seed, score in enumerate([1.0, 2.0, 3.0]):
        _run(root, "hopper-random", "bc", seed, score)
    _run(root, "hopper-medium", "dt", 0, 40.0, sha="b" * 64)  # trained on another draw
    _run(root, "hopper-medium", "dt", 2, 60.0, sha="b" * 64)
    failed = root / "hopper-medium" / "dt" / "quick" / "seed_1"  # the missing seed: it failed
    failed.mkdir(parents=True)
    (failed / "error.json").write_text(json.dumps({"error": "non-finite loss", "step": 7,
                                                   "message": "non-finite loss at step 7"}))
    out = tmp_path_factory.mktemp("report")
    proc = run_cli("report", "--out", str(root), "--to", str(out), "--reps", "2000")
    assert proc.returncode == 0, proc.stderr
    return {"md": (out / "report.md").read_text(), "html": (out / "report.html").read_text(),
            "out": out, "root": root}


def _row(md: str, start: str) -> str:
    rows = [line for line in md.splitlines() if line.startswith(start)]
    assert len(rows) == 1, (start, rows)
    return rows[0]


def test_per_dataset_table_values(report):
    md = report["md"]
    # bc on hopper-medium, seeds 10/20/30: mean 20, t(0.975, 2) · 10 / √3 = 24.8. No IQM below
    # 5 seeds: of three values it trims nothing (it is the mean), and a bootstrap resample is
    # all-10 or all-30 with probability 1/27 > 2.5%, so its "CI" would be the range [10, 30].
    # The published scores are after full training: ‡ marks a row trained at a smaller budget.
    assert _row(md, "| bc | quick | 3 | 20.0") == (
        "| bc | quick | 3 | 20.0 ± 24.8 | — (n < 5) | 200.0 | "
        "52.9 (dt-paper), 53.51 (corl) ‡ |")
    # dt: seeds 0 and 2 (seed 1 failed): mean 50, t(0.975, 1) · 14.14 / √2 = 127.1.
    assert _row(md, "| dt | quick | 2 (missing 1) |") == (
        "| dt | quick | 2 (missing 1) | 50.0 ± 127.1 | — (n < 5) | 500.0 | "
        "67.6 (dt-paper), 65.1 (corl), 60.4 (d3rlpy-benchmarks) ‡ |")
    # hopper-random has no published row.
    assert _row(md, "| bc | quick | 3 | 2.0 ± 2.5 |").endswith("| 20.0 | — |")
    assert "different dataset version" in md and "D4RL v2" in md
    assert "random -20.27, expert 3,234.3" in md and "‡ marks rows" in md


def test_aggregates_failures_and_runtime(report):
    md = report["md"]
    # bc over both datasets, runs × tasks = [[10, 1], [20, 2], [30, 3]]: rliable's median is the
    # median of the per-task means (20, 2) = 11, the IQM is over all runs: the middle four
    # (2, 3, 10, 20) give 8.75; mean 11, optimality gap 100 - 11 = 89.
    row = _row(md, "| bc [quick] | 3 |")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert [c.split(" [")[0] for c in cells[2:]] == ["11.0", "8.8", "11.0", "89.0"]
    assert "Left out (not run on every dataset): dt [quick]." in md
    assert _row(md, "| hopper-medium | dt | quick | 1 |") == (
        "| hopper-medium | dt | quick | 1 | failed | non-finite loss at step 7 |")
    # updates/s 100, eval env steps/s 200 steps / 2 s, train 10 s, eval 2 s, wall 13 s.
    assert _row(md, "| hopper-medium | bc | quick | 3 |") == (
        "| hopper-medium | bc | quick | 3 | 100.0 | — | 100.0 | 10.0 | 2.0 | 13.0 |")
    # bc's six runs: 6 · 10 s training (0.017 h), 6 · 2 s evaluation (0.003 h), 12 s a run;
    # dt's two (the failed third has no timings).
    assert _row(md, "| bc | quick | 0.02 |") == "| bc | quick | 0.02 | 0.02 | 0.00 | 6 | 2 | 0.2 |"
    assert _row(md, "| dt | quick | 0.01 |") == "| dt | quick | 0.01 | 0.01 | 0.00 | 2 | 1 | 0.2 |"


def test_data_files_are_listed_and_mixed_draws_flagged(report):
    md = report["md"]
    # with the reference returns its scores are normalized with
    assert _row(md, "| hopper-medium | self-generated | `aaaaaaaaaaaaaaaa` |") == (
        "| hopper-medium | self-generated | `aaaaaaaaaaaaaaaa` | 0.00 / 1,000.00 | 3 | bc |")
    assert _row(md, "| hopper-medium | self-generated | `bbbbbbbbbbbbbbbb` |") == (
        "| hopper-medium | self-generated | `bbbbbbbbbbbbbbbb` | 0.00 / 1,000.00 | 2 | dt |")
    mixed = _row(md, "**Mixed data:**")
    assert "`hopper-medium`" in mixed and "hopper-random" not in mixed


def test_variant_filter(report, tmp_path):
    from bench.report import build_blocks

    def text(variants):
        blocks = build_blocks(report["root"], tmp_path, variants=variants, reps=200)
        return "\n".join(str(b) for b in blocks)

    assert "from 8 finished run(s)" in text(["quick"])
    assert "from 0 finished run(s)" in text(["full"])


def test_html_is_self_contained(report):
    page = report["html"]
    sources = re.findall(r"src='([^']*)'", page)
    figures = sorted(Path(report["out"], "figures").glob("*.png"))
    # two bar charts, the performance profiles, one loss-curve figure per dataset
    assert len(figures) == 5 and len(sources) == len(figures)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert base64.b64decode(sources[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"(href|src)=['\"]?(https?:|//|figures/)", page)
    assert "<td>20.0 ± 24.8</td>" in page
    # the Markdown links the same figures as files next to it
    for f in figures:
        assert f"](figures/{f.name})" in report["md"]


def test_report_of_missing_root_is_a_usage_error(tmp_path):
    proc = run_cli("report", "--out", str(tmp_path / "nope"), "--to", str(tmp_path / "r"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_a_task_with_five_or_more_seeds_shows_its_iqm(tmp_path):
    from scipy import stats

    scores = [5.0, 10.0, 20.0, 40.0, 80.0, 90.0]
    for seed, score in enumerate(scores):
        _run(tmp_path / "results", "hopper-medium", "bc", seed, score)
    proc = run_cli("report", "--out", str(tmp_path / "results"), "--to", str(tmp_path / "rep"),
                   "--reps", "500")
    assert proc.returncode == 0, proc.stderr
    row = _row((tmp_path / "rep" / "report.md").read_text(), "| bc | quick | 6 |")
    iqm = float(row.split("|")[5].split(" [")[0])
    # 6 seeds: the 25% trim drops one from each end, the IQM is the mean of 10, 20, 40, 80.
    assert iqm == pytest.approx(stats.trim_mean(scores, 0.25), abs=0.05) == pytest.approx(37.5)


def _tables_by_heading(blocks: list) -> dict:
    """Each table's rows keyed by (the heading above it, the row's first cell)."""
    rows, heading = {}, None
    for b in blocks:
        heading = b[2] if b[0] == "h" else heading
        if b[0] == "table":
            rows.update({(heading, r[0]): r for r in b[2]})
    return rows


def test_aggregates_per_set_of_comparable_tasks_and_marks(tmp_path):
    """An online-only algorithm on Hopper-v5, an online one given a dataset (gs_ppo's frozen IDM
    is trained on hopper-medium), an old online record without a kind, and a carracing dataset
    beside two hopper datasets: the offline runs aggregate apart from the online ones (before,
    one aggregate over every dataset of the root took in nobody), and over the hopper datasets
    on their own, which takes in an algorithm not run on carracing."""
    from bench.report import build_blocks, task_groups
    from bench.results import load_results

    root = tmp_path / "results"
    for seed in range(3):
        _run(root, "hopper-medium", "bc", seed, 10.0 * (seed + 1), budget="full",
             commit="c1" if seed < 2 else "c2")
        _run(root, "hopper-random", "bc", seed, 1.0 + seed, budget="full", commit="c1")
        _run(root, "Hopper-v5", "ppo", seed, 50.0 + seed, sha=None, kind="online")
        _run(root, "hopper-medium", "gs_ppo", seed, 60.0, sha=None, kind="online")
        _run(root, "carracing-expert", "bc", seed, 90.0 + seed, budget="full")
        _run(root, "hopper-medium", "dt", seed, 40.0, budget="full")
        _run(root, "hopper-random", "dt", seed, 4.0, budget="full")
    _run(root, "Hopper-v5", "gs_ppo", 0, 30.0, sha=None, kind=None)  # registered as online
    runs = load_results(root, timings=True)
    assert task_groups(runs) == {
        "offline datasets": ("offline", ["carracing-expert", "hopper-medium", "hopper-random"]),
        "offline datasets, hopper": ("offline", ["hopper-medium", "hopper-random"]),
        "online envs": ("online", ["Hopper-v5", "hopper-medium"])}
    (tmp_path / "fig").mkdir()
    blocks = build_blocks(root, tmp_path / "fig", reps=200)
    rows = _tables_by_heading(blocks)
    aggregated = sorted((h.split(":")[0], label) for h, label in rows
                        if h and h.split(":")[0] in ("offline datasets", "offline datasets, hopper",
                                                     "online envs"))
    assert aggregated == [("offline datasets", "bc [full]"),
                          ("offline datasets, hopper", "bc [full]"),
                          ("offline datasets, hopper", "dt [full]"),
                          ("online envs", "gs_ppo [quick]")]
    # bc over carracing-expert (90, 91, 92), hopper-medium (10, 20, 30), hopper-random (1, 2, 3):
    # the mean of all nine runs is 339 / 9 = 37.7
    # with 3 runs per dataset only the point estimate: a bootstrap CI would be far too narrow
    assert rows[("offline datasets: carracing-expert, hopper-medium, hopper-random",
                 "bc [full]")][4] == "37.7"


def test_aggregate_intervals_only_from_five_runs_per_dataset(tmp_path):
    """rliable's interval is shown from 5 runs per dataset, also over 2 datasets, and not from
    3, also over 5 datasets (on tables like the suite's it covers the truth at most 82% of the
    time there: scripts/bootstrap_coverage.py)."""
    from bench.report import build_blocks

    root = tmp_path / "results"
    names = ["hopper", "walker2d", "halfcheetah", "ant", "humanoid"]
    for i, name in enumerate(names):
        for seed in range(5 if i < 2 else 3):
            _run(root, f"{name}-medium", "bc", seed, 10.0 * i + seed, budget="full")
    (tmp_path / "fig").mkdir()

    def cells(datasets: list[str]) -> list[str]:
        rows = _tables_by_heading(build_blocks(root, tmp_path / "fig", reps=200, datasets=datasets))
        found = [r for (h, label), r in rows.items()
                 if h and h.startswith("offline datasets:") and label == "bc [full]"]
        assert len(found) == 1
        return found[0][1:]

    over_five = cells([f"{n}-medium" for n in names])
    assert over_five[0] == "3" and not any("[" in cell for cell in over_five[1:])
    over_two = cells(["hopper-medium", "walker2d-medium"])
    assert over_two[0] == "5" and all("[" in cell for cell in over_two[1:])


def test_score_rows_mark_mixed_code_and_rows_unlike_the_published_runs(tmp_path):
    """A row pooling two code versions says so; published scores carry ‡ beside rows not trained
    with the full preset unchanged (a smaller budget, or full with overridden settings); the
    note on published scores appears only beside some, and explains ‡ only when used."""
    from bench.report import build_blocks

    root = tmp_path / "results"
    for seed in range(3):
        _run(root, "hopper-medium", "bc", seed, 10.0 * (seed + 1), budget="full",
             commit="c1" if seed < 2 else "c2")
        _run(root, "hopper-random", "bc", seed, 1.0 + seed, budget="full", commit="c1")
        _run(root, "hopper-medium", "dt", seed, 40.0, budget="full", overrides={"lr": "1e-3"})
        _run(root, "carracing-expert", "dt_noreturn", seed, 30.0)
        _run(root, "Hopper-v5", "ppo", seed, 50.0 + seed, sha=None, kind="online")
    (tmp_path / "fig").mkdir()

    def build(datasets):
        blocks = build_blocks(root, tmp_path / "fig", datasets=datasets, reps=200)
        notes = [b[1] for b in blocks if b[0] == "p" and b[1].startswith("† Published")]
        return _tables_by_heading(blocks), notes

    rows, notes = build(None)
    assert rows[("hopper-medium", "bc")][2] == "3 (2 commits)"  # seeds 0, 1 ran c1, seed 2 c2
    assert rows[("hopper-random", "bc")][2] == "3"
    assert rows[("hopper-medium", "bc")][6] == "52.9 (dt-paper), 53.51 (corl)"  # as published
    assert rows[("hopper-medium", "dt")][6].endswith("(d3rlpy-benchmarks) ‡")  # lr overridden
    assert len(notes) == 1 and "‡ marks rows" in notes[0]
    _, notes = build(["Hopper-v5", "carracing-expert"])  # no published score for these pairs
    assert notes == []
    _, notes = build(["hopper-random", "hopper-medium", "Hopper-v5"])
    assert len(notes) == 1


def test_goal_tasks_show_ogbenchs_success_rates_under_their_own_mark_and_note(tmp_path):
    """pointmaze navigate rows are put beside OGBench's published success rates (ogbench.csv),
    headed and explained as OGBench's, not as D4RL-v2 scores; a hopper row in the same report
    keeps the D4RL note."""
    from bench.report import build_blocks

    root = tmp_path / "results"
    for seed in range(3):
        _run(root, "pointmaze-medium-navigate", "hiql", seed, 20.0 * seed)
        record = root / "pointmaze-medium-navigate" / "hiql" / "quick" / f"seed_{seed}" / "result.json"
        result = json.loads(record.read_text())
        # seed 0 reaches no goal, seed 1 task 1 only, seed 2 tasks 1 and 2: 0, 20 and 40%
        by_task = {f"task{k}": float(k <= seed) for k in range(1, 6)}
        record.write_text(json.dumps({**result, "success": {"rate": seed / 5, "by_task": by_task}}))
        _run(root, "hopper-medium", "bc", seed, 50.0)
    (tmp_path / "fig").mkdir()

    def build(datasets):
        blocks = build_blocks(root, tmp_path / "fig", datasets=datasets, reps=200)
        headers = {b[1][-1] for b in blocks if b[0] == "table" and b[1][-1].startswith("publ")}
        notes = [b[1][0] for b in blocks if b[0] == "p" and b[1][:1] in "†§"]
        scores = [b for b in blocks if b[0] != "table" or b[1][-1].startswith("published")]
        return _tables_by_heading(scores), headers, notes

    rows, headers, notes = build(["pointmaze-medium-navigate"])
    assert rows[("pointmaze-medium-navigate", "hiql")][6] == "79 (ogbench-copies) ‡"
    assert headers == {"published, OGBench §"} and notes == ["§"]
    blocks = build_blocks(root, tmp_path / "fig", datasets=["pointmaze-medium-navigate"], reps=200)
    per_task = next(b for b in blocks if b[0] == "table" and b[1][-1] == "overall")
    # task 1: 0, 100, 100 → 66.7; task 2: 0, 0, 100 → 33.3; overall 0, 20, 40 → 20 ± 49.7
    assert per_task[2] == [["hiql", "quick", "66.7", "33.3", "0.0", "0.0", "0.0", "20.0 ± 49.7"]]
    assert "success rate in percent" in blocks[1][1]
    rows, headers, notes = build(None)
    assert headers == {"published, OGBench §", "published, D4RL-v2 †"} and notes == ["†", "§"]


def test_bootstrap_intervals_are_the_same_on_every_build():
    """rliable's stratified bootstrap draws from NumPy's global generator whatever random_state
    it is given: unseeded, the same scores gave different CIs from one build to the next. The
    caller's global generator is left as it was."""
    import numpy as np

    from bench.report import aggregate_intervals, iqm_intervals

    scores = {"a": np.array([[10.0, 1.0], [20.0, 2.0], [30.0, 3.0]]),
              "b": np.array([[5.0, 50.0], [6.0, 60.0], [7.0, 90.0]])}
    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    first = aggregate_intervals(scores, 500)
    assert np.random.rand() == expected_next
    for _ in range(3):
        assert aggregate_intervals(scores, 500).equals(first)
    per_task = {"a": np.array([1.0, 5.0, 2.0, 8.0, 3.0])}
    assert iqm_intervals(per_task, 500).equals(iqm_intervals(per_task, 500))
    # A label's interval does not depend on which other labels are in the report.
    both = {**per_task, "b": np.array([4.0, 9.0, 1.0, 7.0, 2.0])}
    alone = iqm_intervals({"b": both["b"]}, 500).set_index("label").loc["b"]
    assert iqm_intervals(both, 500).set_index("label").loc["b"].equals(alone)
    b_alone = aggregate_intervals({"b": scores["b"]}, 500).set_index("label").loc["b"]
    assert aggregate_intervals(scores, 500).set_index("label").loc["b"].equals(b_alone)


def _small_root(root: Path) -> None:
    for seed in range(3):
        _run(root, "hopper-medium", "bc", seed, 10.0 * (seed + 1))
        _run(root, "hopper-random", "bc", seed, 1.0 + seed)


def test_odd_result_and_binary_metrics_are_skipped_not_a_crash(tmp_path, capsys):
    """A result.json holding `{}` (KeyError), and a finished run's metrics.jsonl of binary bytes
    (UnicodeDecodeError), cost the whole report: the first is listed as unreadable, the second
    run counts in the tables and is left out of the curves only."""
    from bench.cli import main

    root = tmp_path / "results"
    _small_root(root)
    bad = root / "hopper-medium" / "bc" / "quick" / "seed_3"
    bad.mkdir()
    (bad / "result.json").write_text("{}")
    (root / "hopper-medium" / "bc" / "quick" / "seed_0" / "metrics.jsonl").write_bytes(
        b"\xff\xfe\x00\x01")
    assert main(["report", "--out", str(root), "--to", str(tmp_path / "rep"), "--reps", "50"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert _row(md, "| hopper-medium | bc | quick | 3 | unreadable |") == (
        "| hopper-medium | bc | quick | 3 | unreadable | result.json: 'dataset' is missing, "
        "not a string |")
    # seed 3 is named missing: it has a run directory, with no readable result
    assert _row(md, "| bc | quick | 3 (missing 3) |").startswith(
        "| bc | quick | 3 (missing 3) | 20.0 ± 24.8 |")
    assert "hopper-medium, `loss`" in md  # the curve, from the two readable seeds


@pytest.mark.parametrize("reps", ["0", "-5"])
def test_reps_below_one_is_a_usage_error(tmp_path, capsys, reps):
    from bench.cli import main

    _small_root(tmp_path / "results")
    to = tmp_path / "rep"
    assert main(["report", "--out", str(tmp_path / "results"), "--to", str(to),
                 "--reps", reps]) == 2
    err = capsys.readouterr().err
    assert "--reps must be a whole number of at least 1" in err and f"not {reps}" in err
    assert not to.exists()


@pytest.mark.parametrize("under", [False, True])
def test_report_to_a_file_is_a_usage_error(tmp_path, capsys, under):
    from bench.cli import main

    _small_root(tmp_path / "results")
    blocker = tmp_path / "taken"
    blocker.write_text("mine")
    to = blocker / "sub" if under else blocker
    assert main(["report", "--out", str(tmp_path / "results"), "--to", str(to),
                 "--reps", "50"]) == 2
    err = capsys.readouterr().err
    assert f"--to {to}" in err and "a file, not a folder" in err
    assert blocker.read_text() == "mine"


def test_rebuild_removes_only_its_own_figures_and_only_once_built(tmp_path, monkeypatch):
    """A rebuild removed every *.png in figures/, a user's own images too, and did so before
    building: a build that then failed left report.md linking figures that were gone."""
    import bench.report
    from bench.report import build_report

    root, to = tmp_path / "results", tmp_path / "rep"
    _small_root(root)
    first = build_report(root, to, reps=50)
    assert {f.name for f in first.figures} >= {"bars_hopper-random.png",
                                                "profiles_offline_datasets.png"}
    mine = to / "figures" / "mine.png"
    mine.write_bytes(b"a user's own image")
    md = first.markdown.read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("a build that fails midway")

    with monkeypatch.context() as m:
        m.setattr(bench.report, "_runtime_section", broken)
        with pytest.raises(RuntimeError):
            build_report(root, to, datasets=["hopper-medium"], reps=50)
    assert first.markdown.read_text() == md  # the previous report, whole, with its figures
    assert all(f.exists() for f in first.figures) and mine.exists()

    second = build_report(root, to, datasets=["hopper-medium"], reps=50)
    pngs = {f.name for f in (to / "figures").glob("*.png")}
    assert pngs == {f.name for f in second.figures} | {"mine.png"}
    assert "bars_hopper-random.png" not in pngs and "profiles_offline_datasets.png" not in pngs
    assert mine.read_bytes() == b"a user's own image"
    for f in second.figures:
        assert f"](figures/{f.name})" in second.markdown.read_text()


def test_a_report_that_cannot_be_written_is_a_clear_error(tmp_path, monkeypatch, capsys):
    """An OSError while writing (no permission, disk full) is a message, not a traceback."""
    import bench.report
    from bench.cli import main

    _small_root(tmp_path / "results")

    def denied(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(bench.report, "atomic_write_bytes", denied)
    assert main(["report", "--out", str(tmp_path / "results"), "--to", str(tmp_path / "rep"),
                 "--reps", "50"]) == 1
    assert "cannot write the report to" in capsys.readouterr().err


def test_data_section_tells_different_datasets_from_draws_of_one_recipe(tmp_path):
    import json

    from bench.report import _data_section
    from bench.results import load_results

    def write(dataset, seed, dataset_id, sha, refs):
        d = tmp_path / dataset / "bc" / "quick" / f"seed_{seed}"
        d.mkdir(parents=True)
        d.joinpath("result.json").write_text(json.dumps({
            "dataset": dataset, "algo": "bc", "seed": seed, "budget": "quick",
            "variant": "quick", "normalized_score": 50.0, "episode_returns": [1.0],
            "dataset_id": dataset_id, "dataset_sha256": sha, "ref_min": refs[0],
            "ref_max": refs[1]}))

    write("hopper-expert", 0, "mujoco/hopper/expert-v0", "a" * 64, (-20.27, 3234.3))
    write("hopper-expert", 1, "bench/hopper/expert-v0", "b" * 64, (15.65, 3093.2))
    write("hopper-medium", 0, "bench/hopper/medium-v0", "c" * 64, (15.65, 3093.2))
    write("hopper-medium", 1, "bench/hopper/medium-v0", "d" * 64, (15.65, 3093.2))
    text = "\n".join(str(b[-1]) for b in _data_section(load_results(tmp_path, timings=True))
                     if b[0] == "p")
    assert "**Different data behind one name:** runs of `hopper-expert`" in text
    assert "**Mixed data:** runs of `hopper-medium`" in text
    assert "`hopper-expert`" not in text.split("**Mixed data:**")[1]


def test_evaluation_curves_end_with_the_final_evaluation(tmp_path):
    """Evaluations during training stop before the last update; the final one (result.json) is
    the curve's last point. A run without evaluations during training gets no curve from it."""
    from bench.report import curve_bands
    from bench.results import load_results

    for seed, final in ((0, 30.0), (1, 50.0)):
        _run(tmp_path, "hopper-medium", "bc", seed, final)
        d = tmp_path / "hopper-medium" / "bc" / "quick" / f"seed_{seed}"
        (d / "metrics.jsonl").write_text("".join(
            json.dumps({"step": s, "eval/normalized_score": v}) + "\n"
            for s, v in ((10, 10.0), (20, 20.0))))
        result = json.loads((d / "result.json").read_text())
        result["timings"]["steps"] = 30
        (d / "result.json").write_text(json.dumps(result))
    _run(tmp_path, "hopper-medium", "dt", 0, 70.0)  # its metrics.jsonl logs only a loss
    bands = curve_bands(load_results(tmp_path, timings=True))
    band = bands["eval/normalized_score"]["bc [quick]"]
    assert band["step"].iloc[-1] == 30 and band["mean"].iloc[-1] == pytest.approx(40.0)
    assert band["mean"].iloc[0] == pytest.approx(10.0)
    assert "dt [quick]" not in bands["eval/normalized_score"]


def test_an_actor_critic_without_evaluations_is_drawn_by_its_critics_loss(tmp_path):
    """td3_bc logs `critic` and `actor`, no `loss`: its training curve is its critics' loss
    (Algorithm.training_loss), labelled so; an algorithm not installed here falls back to `loss`."""
    from bench.report import curve_bands, training_loss_key
    from bench.results import load_results

    for seed in (0, 1):
        _run(tmp_path, "hopper-medium", "td3_bc", seed, 30.0)
        d = tmp_path / "hopper-medium" / "td3_bc" / "quick" / f"seed_{seed}"
        (d / "metrics.jsonl").write_text("".join(
            json.dumps({"step": s, "critic": 5.0 / s, "actor": -1.0}) + "\n" for s in (10, 20)))
    bands = curve_bands(load_results(tmp_path, timings=True))
    band = bands["loss"]["td3_bc [quick] (critic)"]
    assert band["mean"].iloc[0] == pytest.approx(0.5) and band["mean"].iloc[-1] == pytest.approx(0.25)
    assert training_loss_key("cql") == "td" and training_loss_key("not-installed") == "loss"


def test_a_report_whose_filters_select_nothing_is_refused(tmp_path):
    _run(tmp_path, "hopper-medium", "td3_bc", 0, 30.0)
    typo = run_cli("report", "--out", str(tmp_path), "--algo", "td3bc",
                   "--to", str(tmp_path / "rep"))
    assert typo.returncode == 2 and "has algo 'td3bc'; did you mean: td3_bc?" in typo.stderr
    assert not (tmp_path / "rep").exists()
    partial = run_cli("report", "--out", str(tmp_path), "--algo", "td3_bc", "dt",
                      "--to", str(tmp_path / "rep"))
    assert partial.returncode == 0 and "has algo 'dt'" in partial.stderr
    _run(tmp_path, "hopper-random", "bc", 0, 3.0)  # each name has runs, the two together none
    neither = run_cli("report", "--out", str(tmp_path), "--algo", "bc", "--dataset",
                      "hopper-medium", "--to", str(tmp_path / "rep2"))
    assert neither.returncode == 2 and "together" in neither.stderr
    assert not (tmp_path / "rep2").exists()
