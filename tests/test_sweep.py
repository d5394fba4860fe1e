"""`bench sweep`: the grid it expands to, skipping and resuming, failures, parallel workers, Ray."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.errors import UsageError
from bench.run import RunRequest, execute, run_dir
from conftest import SimulatedKill, kill_after
from bench.sweep import expand, expand_all, load_sweep_file, make_spec, run_sweep
from conftest import run_cli

SMOKE = ["--budget", "smoke", "--eval-episodes", "2"]


def _summary(root: Path) -> dict:
    (path,) = sorted((root / "sweeps").glob("*.json"))
    return json.loads(path.read_text())


def test_sweep_file_expands_to_the_grid_and_flags_override_it(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('algo = ["bc", "ppo"]\ndataset = "hopper-random"\nenv = ["Hopper-v5"]\n'
                     'seed = [0, 1]\nbudget = "quick"\n[set]\nlog_every = 7\n')
    (grid,) = load_sweep_file(sweep)
    spec = make_spec(grid, {"budget": "smoke", "seed": None})
    assert spec.budget == "smoke" and spec.seed == [0, 1] and spec.overrides == {"log_every": "7"}
    runs = expand(spec, tmp_path / "out")
    # bc and ppo on the dataset; only the online ppo on the bare env.
    assert [(r.algo, r.dataset or r.env, r.seed) for r in runs] == [
        ("bc", "hopper-random", 0), ("bc", "hopper-random", 1),
        ("ppo", "hopper-random", 0), ("ppo", "hopper-random", 1),
        ("ppo", "Hopper-v5", 0), ("ppo", "Hopper-v5", 1)]
    assert all(r.resume and r.budget == "smoke" for r in runs)
    assert run_dir(runs[0]) == tmp_path / "out/hopper-random/bc/smoke,log_every=7/seed_0"


def test_grids_share_top_level_keys_and_add_their_own(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('dataset = ["hopper-random"]\nseed = [0, 1]\nbudget = "smoke"\n'
                     '[set]\nlog_every = 7\n'
                     '[[grid]]\nalgo = ["bc"]\nset = { eval_every = 10 }\n'
                     '[[grid]]\nalgo = ["dt"]\nseed = [3]\n'
                     '[[grid]]\nalgo = ["bc"]\nset = { eval_every = 10 }\n')  # a repeat
    specs = [make_spec(g, {}) for g in load_sweep_file(sweep)]
    runs = expand_all(specs, tmp_path)
    assert [(r.algo, r.seed, r.overrides) for r in runs] == [
        ("bc", 0, {"log_every": "7", "eval_every": "10"}),
        ("bc", 1, {"log_every": "7", "eval_every": "10"}),
        ("dt", 3, {"log_every": "7"})]


@pytest.mark.parametrize("text, message", [
    ('algo = ["bc"]\ndatasets = ["x"]\n', "unknown key"),
    ('algo = ["bcc"]\ndataset = ["x"]\n', "Did you mean: bc"),
    ('algo = ["bc"]\ndataset = ["x"]\n[set]\nlr = "fast"\n', "bad value for lr"),
    ('algo = ["bc"]\n', "at least one dataset or env"),
    ('algo = ["bc"]\nenv = ["Hopper-v5"]\n', "envs pair only with online algorithms"),
    ('dataset = ["x"]\n[[grid]]\nalgo = ["bc"]\n[[grid]]\nalgos = ["dt"]\n', "unknown key"),
    ('algo = ["bc"]\ndataset = ["hoper-random"]\n', "Did you mean: hopper-random"),
    ('algo = ["ppo"]\nenv = ["Hoper-v5"]\n', "Did you mean: Hopper-v5"),
    ('algo = 5\ndataset = ["hopper-random"]\n', "'algo' must be a str"),
    ('algo = "bc"\ndataset = "hopper-random"\nseed = [0, -1]\n', "0..4294967295"),
    ('algo = "bc"\ndataset = "hopper-random"\nbudget = 1\n', "budget must be one of"),
    ('algo = "bc"\ndataset = "hopper-random"\neval_episodes = "ten"\n', "eval_episodes must be"),
    ('algo = "bc"\ndataset = "hopper-random"\neval_mode = "fast"\n', "unknown eval mode"),
    ('algo = "bc"\ndataset = "hopper-random"\ndevice = "tpu"\n', "unknown device"),
    ('algo = []\ndataset = "hopper-random"\n', "at least one algorithm"),
    ('algo = "dt"\ndataset = "hopper-random"\n[set]\nn_heads = 3\n', "divisible by n_heads"),
    ('algo = ["ppo", "bc"]\ndataset = "hopper-random"\n[set]\nsnapshot_every = 5\n',
     "bc cannot export a standalone policy"),
])
def test_bad_sweeps_are_usage_errors(tmp_path, text, message):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(text)
    with pytest.raises(UsageError, match=message):
        expand_all([make_spec(g, {}) for g in load_sweep_file(sweep)], tmp_path)


def test_sweep_files_that_cannot_be_read_are_usage_errors(tmp_path):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe algo = 1")
    with pytest.raises(UsageError, match="is not UTF-8 text"):
        load_sweep_file(binary)
    with pytest.raises(UsageError, match="is a directory, not a file"):
        load_sweep_file(tmp_path)
    empty = tmp_path / "empty.toml"
    empty.write_text('algo = "bc"\ndataset = "hopper-random"\ngrid = []\n')
    with pytest.raises(UsageError, match="`grid` is empty"):
        load_sweep_file(empty)


def test_a_sweep_into_a_file_exits_2_and_leaves_it(tmp_path):
    target = tmp_path / "afile"
    target.write_text("keep me")
    for extra in ([], ["--dry-run"]):
        proc = run_cli("sweep", "--algo", "bc", "--dataset", "hopper-random", "--budget", "smoke",
                       "--out", str(target), *extra)
        assert proc.returncode == 2 and "is a file, not a directory" in proc.stderr, proc.stderr
    assert target.read_text() == "keep me"


def test_sweep_without_dataset_exits_2(tmp_path):
    proc = run_cli("sweep", "--algo", "bc", "--out", str(tmp_path))
    assert proc.returncode == 2 and "at least one dataset or env" in proc.stderr


def test_sweep_skips_finished_resumes_interrupted_and_records_failures(tiny_dataset, tmp_path):
    def req(seed: int, **kw) -> RunRequest:
        return RunRequest(algo="bc", dataset=tiny_dataset, seed=seed, budget="smoke",
                          out=tmp_path, eval_episodes=2, **kw)

    execute(req(0), log=lambda m: None)
    finished = run_dir(req(0)) / "result.json"
    stamp = finished.stat().st_mtime_ns
    with pytest.raises(SimulatedKill):  # seed 1 "killed" after its first checkpoint
        execute(req(1), log=lambda m: None, callbacks=kill_after(10))
    assert (run_dir(req(1)) / "checkpoint.pt").exists()

    proc = run_cli("sweep", "--algo", "bc", "--dataset", tiny_dataset, "test/hopper/missing-v0",
                   "--seed", "0", "1", "2", *SMOKE, "--out", str(tmp_path))
    assert proc.returncode == 1, proc.stderr  # a run failed; the others still ran
    assert "6 runs" in proc.stdout and "1 done, 1 resumed, 1 skipped, 3 failed, 0 busy" in proc.stdout
    assert finished.stat().st_mtime_ns == stamp  # the finished run was not touched
    for seed in (1, 2):
        assert (run_dir(req(seed)) / "result.json").exists()
    assert "resuming" in (run_dir(req(1)) / "sweep.log").read_text()
    for seed in (0, 1, 2):
        error = json.loads((tmp_path / "test__hopper__missing-v0/bc/smoke" / f"seed_{seed}"
                            / "error.json").read_text())
        assert "missing-v0" in error["message"] and error["type"] == "DatasetError"
    summary = _summary(tmp_path)
    assert summary["counts"] == {"done": 1, "resumed": 1, "skipped": 1, "failed": 3, "busy": 0}
    assert sorted(r["status"] for r in summary["runs"]) == [
        "done", "failed", "failed", "failed", "resumed", "skipped"]


def test_parallel_workers_lose_no_results(tiny_dataset, tmp_path):
    proc = run_cli("sweep", "--algo", "bc", "--dataset", tiny_dataset, "--seed", "0", "1", "2",
                   "3", *SMOKE, "--jobs", "2", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    dirs = sorted((tmp_path / tiny_dataset.replace("/", "__") / "bc/smoke").glob("seed_*"))
    assert [d.name for d in dirs] == ["seed_0", "seed_1", "seed_2", "seed_3"]
    for d in dirs:
        assert json.loads((d / "result.json").read_text())["seed"] == int(d.name[5:])
        # parallel workers train with one torch thread each
        assert json.loads((d / "env.json").read_text())["torch_threads"] == 1
    summary = _summary(tmp_path)
    assert summary["counts"]["done"] == 4 and len(summary["runs"]) == 4
    assert len({r["run_dir"] for r in summary["runs"]}) == 4


def test_ray_backend_runs_a_tiny_sweep(tiny_dataset, tmp_path):
    pytest.importorskip("ray")
    spec = make_spec({}, {"algo": ["bc"], "dataset": [tiny_dataset], "seed": [0, 1],
                          "budget": "smoke", "eval_episodes": 2})
    report = run_sweep([spec], tmp_path, backend="ray", jobs=1, log=lambda m: None)
    assert report.count("done") == 2 and not report.unfinished
    for seed in (0, 1):
        d = tmp_path / tiny_dataset.replace("/", "__") / "bc/smoke" / f"seed_{seed}"
        assert json.loads((d / "result.json").read_text())["seed"] == seed
        assert json.loads((d / "env.json").read_text())["torch_threads"] == 1
    again = run_sweep([spec], tmp_path, backend="ray", jobs=1, log=lambda m: None)
    assert again.count("skipped") == 2  # and Ray is not even started for nothing to run


def test_a_run_busy_in_another_process_is_left_alone(tiny_dataset, tmp_path):
    from bench.locks import file_lock

    directory = tmp_path / tiny_dataset.replace("/", "__") / "bc/smoke/seed_0"
    with file_lock(directory / ".lock", blocking=False):  # "another process" is running it
        proc = run_cli("sweep", "--algo", "bc", "--dataset", tiny_dataset, *SMOKE,
                       "--out", str(tmp_path))
    assert proc.returncode == 1 and "0 failed, 1 busy" in proc.stdout
    assert "BUSY bc" in proc.stdout
    assert not (directory / "error.json").exists() and not (directory / "result.json").exists()


def test_a_damaged_result_is_reported_not_counted_finished_nor_overwritten(tiny_dataset, tmp_path):
    spec = make_spec({}, {"algo": ["bc"], "dataset": [tiny_dataset], "seed": [0, 1],
                          "budget": "smoke", "eval_episodes": 2})
    first = run_sweep([spec], tmp_path, log=lambda m: None)
    assert first.count("done") == 2
    damaged = tmp_path / tiny_dataset.replace("/", "__") / "bc/smoke/seed_1/result.json"
    damaged.write_text('{"algo": "bc", "normalized')  # torn by a full disk, say
    lines: list[str] = []
    assert run_sweep([spec], tmp_path, dry_run=True, log=lines.append) is None
    assert [line.split("\t")[0] for line in lines] == ["finished", "damaged"]
    assert "result.json is damaged" in lines[1] and "move it aside" in lines[1]

    again = run_sweep([spec], tmp_path, log=lambda m: None)
    skipped, failed = sorted(again.outcomes, key=lambda o: o.seed)
    assert skipped.status == "skipped" and isinstance(skipped.normalized_score, float)
    assert failed.status == "failed" and "is damaged" in failed.error
    assert damaged.read_text() == '{"algo": "bc", "normalized'  # left for the user to look at
    assert again.unfinished == [failed]


def test_a_run_another_sweep_finished_meanwhile_counts_as_skipped(tiny_dataset, tmp_path):
    """Two sweeps over one grid: the second listed a run as unfinished while the first was
    still training it; when its worker reaches the run, the first has written the result.
    That run was not resumed by the second sweep (it only read the result back)."""
    import time

    from bench.sweep import run_one

    req = RunRequest(algo="bc", dataset=tiny_dataset, seed=0, budget="smoke", out=tmp_path,
                     eval_episodes=2)
    execute(req, log=lambda m: None)  # "the other sweep"
    time.sleep(0.05)  # this sweep's worker starts after the result was written
    outcome = run_one(req, None)
    assert outcome.status == "skipped", outcome
    assert outcome.normalized_score == json.loads(
        (run_dir(req) / "result.json").read_text())["normalized_score"]
