import json
import math

import numpy as np
import pytest

from bench.results import format_table, load_results, score_table, t_interval


def _write(root, dataset, algo, seed, score, variant="quick", **fields):
    d = root / dataset / algo / variant / f"seed_{seed}"
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps({
        "dataset": dataset, "algo": algo, "seed": seed, "budget": "quick", "variant": variant,
        "normalized_score": score, "mean_return": score * 10, "episode_returns": [score * 10],
        **fields}))


def test_t_interval_matches_hand_computation():
    # n=3, values 1,2,3: sd=1, t(0.975, 2)=4.302653, half-width = 4.302653/sqrt(3) = 2.484138
    assert t_interval(np.array([1.0, 2.0, 3.0])) == pytest.approx(2.484138, abs=1e-5)
    assert math.isnan(t_interval(np.array([5.0])))


def test_score_table_groups_and_counts_seeds(tmp_path):
    for seed, score in enumerate([10.0, 20.0, 30.0]):
        _write(tmp_path, "hopper-random", "dt", seed, score)
    _write(tmp_path, "hopper-random", "bc", 0, 5.0)
    (tmp_path / "hopper-random" / "bc" / "quick" / "seed_1").mkdir()  # unfinished: no result
    table = score_table(load_results(tmp_path))
    dt = table[table.algo == "dt"].iloc[0]
    assert dt["mean"] == 20.0 and dt["seeds"] == 3
    assert dt["ci95"] == pytest.approx(4.302653 * 10 / math.sqrt(3), rel=1e-5)
    bc = table[table.algo == "bc"].iloc[0]
    assert bc["seeds"] == 1 and math.isnan(bc["ci95"])
    md = format_table(table)
    assert "20.0 ± 24.8 (n=3)" in md and "5.0 (n=1)" in md


def test_a_run_found_twice_counts_once_and_unreadable_records_are_listed(tmp_path, capsys):
    from bench.cli import main

    for report in ("report_a", "report_b"):  # the same three seeds copied into two reports
        for seed, score in enumerate([10.0, 20.0, 30.0]):
            _write(tmp_path / report, "hopper-medium", "dt", seed, score)
    _write(tmp_path / "report_b", "hopper-medium", "dt", 3, 99.0)
    (tmp_path / "report_b" / "hopper-medium" / "dt" / "quick" / "seed_3" / "result.json").write_text("{")
    runs = load_results(tmp_path)
    row = score_table(runs).iloc[0]
    assert row["seeds"] == 3 and row["mean"] == pytest.approx(20.0)
    skipped = runs.attrs["skipped"]
    assert sorted(skipped["status"]) == ["duplicate"] * 3 + ["unreadable"]
    assert set(skipped.loc[skipped["status"] == "unreadable", "seed"]) == {3}
    assert main(["results", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "3 duplicate run record(s) counted once" in err and "1 unreadable" in err


def test_cells_pooling_data_files_or_code_versions_say_so(tmp_path):
    """Seeds that trained on different data files of a dataset, or ran different commits, are
    not draws of one experiment: the table counts both and the Markdown cell says it."""
    sha_a, sha_b = "a" * 64, "b" * 64
    for seed, (sha, commit, dirty) in enumerate([(sha_a, "c1", False), (sha_a, "c1", True),
                                                 (sha_b, "c2", False)]):
        _write(tmp_path, "hopper-medium", "dt", seed, 10.0 * seed, dataset_sha256=sha,
               git={"commit": commit, "dirty": dirty})
    for seed in range(2):
        _write(tmp_path, "hopper-medium", "bc", seed, 5.0, dataset_sha256=sha_a,
               git={"commit": "c1", "dirty": False})
    _write(tmp_path, "Hopper-v5", "ppo", 0, 50.0)  # online, and no commit recorded
    # a record without a commit beside recorded ones is one more version; a malformed git field
    # (hand-made records) is no commit, not a crash
    _write(tmp_path, "hopper-expert", "bc", 0, 1.0, git={"commit": "c1", "dirty": False})
    _write(tmp_path, "hopper-expert", "bc", 1, 2.0)
    _write(tmp_path, "hopper-expert", "bc", 2, 3.0, git="c1")
    full = score_table(load_results(tmp_path))
    table = full[full["dataset"] != "hopper-expert"].set_index("algo")
    # c1, c1+dirty (uncommitted changes) and c2 are three code versions
    assert (table.loc["dt", "data_files"], table.loc["dt", "commits"]) == (2, 3)
    assert (table.loc["bc", "data_files"], table.loc["bc", "commits"]) == (1, 1)
    assert (table.loc["ppo", "data_files"], table.loc["ppo", "commits"]) == (0, 0)
    expert = full[full["dataset"] == "hopper-expert"].iloc[0]
    assert (expert["data_files"], expert["commits"]) == (0, 2)
    md = format_table(full)
    assert "(n=3) (2 data files, 3 commits)" in md
    assert "5.0 ± 0.0 (n=2) |" in md and "50.0 (n=1) |" in md
    assert "pools runs that trained on different data files" in md


@pytest.mark.parametrize("content", [b"{}", b"[]", b"\xff\xfe\x00\x01binary",
                                     b'{"dataset": "hopper-medium", "algo": "dt", "seed": 3, '
                                     b'"budget": "quick", "normalized_score": "high"}'],
                         ids=["empty-object", "array", "binary", "text-score"])
def test_an_odd_result_json_is_skipped_and_named_not_a_crash(tmp_path, capsys, content):
    """A result.json that is valid JSON but no run record, not UTF-8, or has a score that is text
    cost the whole table (KeyError, TypeError, UnicodeDecodeError, ValueError): it is skipped and
    named as unreadable, like invalid JSON, and the other runs make the table."""
    from bench.cli import main

    for seed, score in enumerate([10.0, 20.0, 30.0]):
        _write(tmp_path, "hopper-medium", "dt", seed, score)
    bad = tmp_path / "hopper-medium" / "dt" / "quick" / "seed_3"
    bad.mkdir()
    (bad / "result.json").write_bytes(content)
    for conditions in (False, True):
        runs = load_results(tmp_path, timings=True, conditions=conditions)
        assert score_table(runs).iloc[0]["seeds"] == 3
        skipped = runs.attrs["skipped"]
        assert list(skipped["status"]) == ["unreadable"] and list(skipped["seed"]) == [3]
        assert skipped["error"].iloc[0].startswith("result.json: ")
    assert main(["results", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "20.0 ± 24.8 (n=3)" in out
    assert "1 unreadable run record(s) left out" in err and str(bad) in err


def test_results_of_a_file_is_a_usage_error(tmp_path, capsys):
    """--out naming a file printed "No finished runs found." and exited 0."""
    from bench.cli import main

    (tmp_path / "results").write_text("not a folder")
    assert main(["results", "--out", str(tmp_path / "results")]) == 2
    out, err = capsys.readouterr()
    assert "is not a directory" in err and "--out" in err and "No finished runs" not in out


def test_cells_pooling_different_datasets_or_normalizations_are_flagged(tmp_path):
    """One alias resolves to the official data on one machine and to the suite's own on another,
    normalized with different reference returns: such a cell is not comparable and says so."""
    _write(tmp_path, "hopper-expert", "bc", 0, 60.0, dataset_id="mujoco/hopper/expert-v0",
           ref_min=-20.27, ref_max=3234.3)
    _write(tmp_path, "hopper-expert", "bc", 1, 70.0, dataset_id="bench/hopper/expert-v0",
           ref_min=15.65, ref_max=3093.2)
    _write(tmp_path, "Hopper-v5", "ppo", 0, 50.0, ref_min=15.65, ref_max=3093.2)
    _write(tmp_path, "Hopper-v5", "ppo", 1, 55.0, ref_min=-20.27, ref_max=3234.3)
    _write(tmp_path, "hopper-medium", "bc", 0, 30.0, dataset_id="bench/hopper/medium-v0",
           ref_min=15.65, ref_max=3093.2)
    _write(tmp_path, "hopper-medium", "bc", 1, 35.0, dataset_id="bench/hopper/medium-v0",
           ref_min=15.65, ref_max=3093.2)
    table = score_table(load_results(tmp_path)).set_index("dataset")
    assert (table.loc["hopper-expert", "datasets"], table.loc["hopper-expert", "normalizations"]) == (2, 2)
    assert (table.loc["Hopper-v5", "datasets"], table.loc["Hopper-v5", "normalizations"]) == (0, 2)
    assert (table.loc["hopper-medium", "datasets"], table.loc["hopper-medium", "normalizations"]) == (1, 1)
    md = format_table(table.reset_index())
    assert "(n=2) (2 datasets, 2 normalizations)" in md and "(n=2) (2 normalizations)" in md
    assert "32.5 ± 31.8 (n=2) |" in md  # hopper-medium: nothing to flag
    assert "are not comparable" in md


def test_conditions_view_marks_the_headline_condition(tmp_path):
    for seed in range(2):
        _write(tmp_path, "hopper-medium", "dt", seed, 60.0, condition="target=3600", conditions={
            "target=3600": {"normalized_score": 60.0, "mean_return": 600.0},
            "target=1800": {"normalized_score": 75.0, "mean_return": 750.0}})
    table = score_table(load_results(tmp_path, conditions=True)).set_index("condition")
    assert table.loc["target=3600", "headline"] and not table.loc["target=1800", "headline"]
    md = format_table(table.reset_index())
    assert "dt [quick] target=3600 (headline) |" in md and "dt [quick] target=1800 |" in md


def test_unfinished_runs_are_found_at_any_depth(tmp_path):
    from bench.results import incomplete_runs

    _write(tmp_path / "sweep_a", "hopper-medium", "bc", 0, 10.0)
    failed = tmp_path / "sweep_a" / "hopper-medium" / "bc" / "quick" / "seed_3"
    failed.mkdir(parents=True)
    (failed / "error.json").write_text(json.dumps({"message": "out of memory"}))
    status = incomplete_runs(tmp_path)
    assert status[["dataset", "algo", "seed", "status", "error"]].values.tolist() == [
        ["hopper-medium", "bc", 3, "failed", "out of memory"]]


def test_results_name_runs_left_out_for_having_no_score(tmp_path, capsys):
    from bench.cli import main

    _write(tmp_path, "hopper-medium", "bc", 0, 10.0)
    _write(tmp_path, "MyEnv-v0", "ppo", 0, 1.0, normalized_score=None)
    assert main(["results", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "MyEnv-v0" not in captured.out
    assert "1 run(s) left out: no normalized score" in captured.err and "MyEnv-v0" in captured.err


def test_the_table_names_the_datasets_the_suite_made(tmp_path):
    """A reader must not take a suite-made dataset's row for one on D4RL's file: the Markdown
    note names the self-generated datasets and no other; CSV has each row's source."""
    _write(tmp_path, "hopper-medium", "bc", 0, 40.0, dataset_source="self-generated")
    _write(tmp_path, "walker2d-medium", "bc", 0, 70.0, dataset_source="official (local)")
    _write(tmp_path, "Hopper-v5", "ppo", 0, 50.0)  # online: no data at all
    table = score_table(load_results(tmp_path)).set_index("dataset")
    assert table.loc["hopper-medium", "source"] == "self-generated"
    assert table.loc["walker2d-medium", "source"] == "official (local)"
    assert table.loc["Hopper-v5", "source"] == ""
    note = format_table(table.reset_index()).split("\n\n", 1)[1]
    assert "not the published files (D4RL's, OGBench's): hopper-medium (" in note
    assert "walker2d-medium" not in note and "Hopper-v5" not in note
    official_only = score_table(load_results(tmp_path)).query("dataset != 'hopper-medium'")
    assert "not the published files" not in format_table(official_only)
    alone = format_table(score_table(load_results(tmp_path)).query("dataset == 'hopper-medium'"))
    assert "OGBench's): hopper-medium (" in alone  # one dataset is named, not "every dataset"
    _write(tmp_path, "hopper-expert", "bc", 0, 90.0, dataset_source="self-generated")
    suite_only = score_table(load_results(tmp_path)).query("dataset != 'walker2d-medium'")
    assert "(D4RL's, OGBench's): every dataset here (" in format_table(suite_only)
    # OGBench's own file converted by the suite is not suite-made data
    _write(tmp_path, "pointmaze-large-navigate", "gcbc", 0, 50.0,
           dataset_source="official (converted)")
    note = format_table(score_table(load_results(tmp_path))).split("\n\n", 1)[1]
    made = note.split("Made by the suite")[1].split("(`bench datasets info")[0]
    assert "every dataset" not in made and "pointmaze" not in made and "hopper-medium" in made
    # a dataset whose runs read both kinds of file is not called suite-made
    _write(tmp_path, "walker2d-medium", "dt", 0, 60.0, dataset_source="self-generated")
    note = format_table(score_table(load_results(tmp_path))).split("\n\n", 1)[1]
    made, partly = note.split("Made by the suite")[1].split("Some runs on the suite's own data")
    assert "walker2d-medium" not in made and "walker2d-medium" in partly
