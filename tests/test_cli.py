import json

import pytest

from conftest import run_cli


@pytest.mark.parametrize("algo", ["bc", "dt", "dt_noreturn"])
def test_each_algorithm_runs_at_smoke_through_the_cli(algo, tiny_dataset, tmp_path):
    proc = run_cli("run", "--algo", algo, "--dataset", tiny_dataset, "--budget", "smoke",
                   "--out", str(tmp_path), "--eval-episodes", "2", "--seed", "0", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("normalized score") == 2
    results = list(tmp_path.rglob("result.json"))
    assert len(results) == 2
    r = json.loads(results[0].read_text())
    assert r["algo"] == algo and r["budget"] == "smoke" and len(r["episode_returns"]) == 2


@pytest.mark.parametrize("args, needle", [
    (["run", "--algo", "dtt", "--dataset", "hopper-random"], "Did you mean: dt"),
    (["run", "--algo", "dt", "--dataset", "hoper-random"], "Did you mean: hopper-random"),
    (["run", "--algo", "dt", "--dataset", "hopper-random", "--set", "embed_dimm=3"], "embed_dim"),
    (["run", "--algo", "dt", "--dataset", "hopper-random", "--set", "lr=fast"], "bad value for lr"),
    (["run", "--algo", "dt", "--dataset", "hopper-random", "--set", "lr"], "key=value"),
    (["run", "--algo", "dt", "--dataset", "hopper-random", "--budget", "huge"], "invalid choice"),
    (["run", "--algo", "dt", "--dataset", "hopper-random", "--device", "tpu"], "unknown device"),
    (["run", "--algo", "dt", "--dataset", "hopper-random", "--device", "gpu"], "--device cuda"),
    (["datasets", "make", "hopper-rando"], "Did you mean: hopper-random"),
    (["run", "--algo", "dt", "--dataset", "hopper-random", "--seed", "-1"], "0..4294967295"),
    (["run", "--algo", "dt", "--dataset", "hopper-random", "--set", "n_heads=3"], "divisible by n_heads"),
    (["run", "--algo", "bc", "--dataset", "hopper-random", "--set", "batch_size=0"], "batch_size must be >= 1"),
    (["run", "--algo", "gcsl_idm", "--dataset", "hopper-random", "--set", "extra_goal_sources=foo"],
     "extra_goal_sources"),
    (["datasets", "make", "hopper-medium-replay", "--seed", "3"], "do not apply"),
    (["run", "--algo", "bc", "--dataset", "hopper-random", "--set", "lr=-1"], "lr must be a finite number > 0"),
    (["run", "--algo", "dt", "--dataset", "hopper-random", "--set", "lr=inf"], "lr must be a finite number"),
    (["run", "--algo", "dt", "--dataset", "hopper-random", "--set", "weight_decay=-1"],
     "weight_decay must be >= 0"),  # the optimizer refused it after the run directory existed
    (["run", "--algo", "gs_ppo_joint", "--env", "Hopper-v5", "--set", "idm_lr=0"], "idm_lr must be"),
    # Only PPO's Gaussian actor is a standalone policy; a goal-setter's actor emits goals.
    (["run", "--algo", "dt", "--dataset", "hopper-random", "--set", "snapshot_every=5"],
     "algorithms with policy snapshots: ppo, ppo_vicreg"),
    (["run", "--algo", "gs_ppo_joint", "--env", "Hopper-v5", "--set", "snapshot_every=5"],
     "gs_ppo_joint cannot export a standalone policy"),
])
def test_usage_errors_exit_2_with_close_matches(args, needle, tmp_path):
    proc = run_cli(*args, "--out", str(tmp_path)) if args[0] == "run" else run_cli(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert needle in proc.stderr
    assert not any(tmp_path.iterdir()), "a usage error writes nothing"


@pytest.mark.parametrize("args, needle", [
    (["run", "--algo", "bc", "--dataset", "hopper-random", "--out", ""], "an empty path"),
    (["results", "--out", ""], "an empty path"),
    (["report", "--to", ""], "an empty path"),
    (["sweep", "--algo", "bc", "--dataset", "hopper-random", "--out", "  "], "an empty path"),
])
def test_an_empty_output_path_is_a_usage_error(args, needle, tmp_path):
    """`--out ""` (a script's unset variable) wrote runs into the current directory."""
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
    assert not any(tmp_path.iterdir())


def test_repeated_flags_add_up(tiny_dataset, tmp_path):
    """--seed 0 --seed 1 runs both seeds (the last flag alone used to win), and the results
    filters take several names after one flag as well as the flag repeated."""
    proc = run_cli("run", "--algo", "bc", "--dataset", tiny_dataset, "--budget", "smoke",
                   "--out", str(tmp_path), "--eval-episodes", "2", "--seed", "0", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("normalized score") == 2
    for filters in (["--algo", "bc", "dt"], ["--algo", "dt", "--algo", "bc"]):
        rows = json.loads(run_cli("results", "--out", str(tmp_path), "--format", "json",
                                  *filters).stdout)
        assert [r["seeds"] for r in rows] == [2]
    dry = run_cli("sweep", "--algo", "bc", "--algo", "dt", "--dataset", tiny_dataset,
                  "--budget", "smoke", "--out", str(tmp_path), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "/bc/smoke/seed_0" in dry.stdout and "/dt/smoke/seed_0" in dry.stdout


def test_resume_with_nothing_to_resume_says_it_starts_afresh(tiny_dataset, tmp_path):
    args = ("run", "--algo", "bc", "--dataset", tiny_dataset, "--budget", "smoke",
            "--out", str(tmp_path), "--eval-episodes", "1", "--resume")
    first = run_cli(*args)
    assert first.returncode == 0 and "has no checkpoint; starting at step 0" in first.stderr
    assert "in " + str(tmp_path) in first.stdout  # the last line names the run directory
    assert "no checkpoint" not in run_cli(*args).stderr  # finished: its result is shown


def test_a_finished_run_says_when_it_was_evaluated_differently(tiny_dataset, tmp_path):
    args = ("run", "--algo", "bc", "--dataset", tiny_dataset, "--budget", "smoke",
            "--out", str(tmp_path))
    assert run_cli(*args, "--eval-episodes", "2").returncode == 0
    again = run_cli(*args, "--eval-episodes", "3")
    assert again.returncode == 0
    assert "evaluated on 2 episodes, not the 3 asked for now" in again.stderr
    assert "asked for now" not in run_cli(*args, "--eval-episodes", "2").stderr


def test_list_and_dataset_info(tiny_dataset):
    proc = run_cli("list")
    assert proc.returncode == 0
    for name in ("bc", "dt", "dt_noreturn", "hopper-random", "hopper-medium-expert"):
        assert name in proc.stdout
    info = run_cli("datasets", "info", tiny_dataset)
    assert info.returncode == 0
    data = json.loads(info.stdout)
    assert data["dataset_id"] == tiny_dataset and data["provenance"]["source"] == "self-generated"
    ok = run_cli("datasets", "verify", tiny_dataset)
    assert ok.returncode == 0 and ok.stdout.startswith("ok")


def test_results_table_formats(tiny_dataset, tmp_path):
    assert run_cli("run", "--algo", "bc", "--dataset", tiny_dataset, "--budget", "smoke",
                   "--out", str(tmp_path), "--eval-episodes", "2", "--seed", "0", "1", "2").returncode == 0
    md = run_cli("results", "--out", str(tmp_path))
    assert md.returncode == 0 and "bc [smoke]" in md.stdout and "(n=3)" in md.stdout
    rows = json.loads(run_cli("results", "--out", str(tmp_path), "--format", "json").stdout)
    assert rows[0]["seeds"] == 3 and rows[0]["algo"] == "bc"
    csv = run_cli("results", "--out", str(tmp_path), "--format", "csv").stdout
    assert csv.splitlines()[0].startswith("dataset,algo,variant,mean,ci95,seeds")
    assert not csv.endswith("\n\n"), "no blank line after the csv rows"
    missing = run_cli("results", "--out", str(tmp_path / "nope"))
    assert missing.returncode == 2
    only_bc = json.loads(run_cli("results", "--out", str(tmp_path), "--format", "json",
                                 "--algo", "bc", "--dataset", tiny_dataset).stdout)
    assert len(only_bc) == 1 and only_bc[0]["seeds"] == 3
    assert json.loads(run_cli("results", "--out", str(tmp_path), "--format", "json",
                              "--algo", "dt").stdout) == []
    typo = run_cli("results", "--out", str(tmp_path), "--algo", "bcc")
    assert typo.returncode == 0 and "has algo 'bcc'; did you mean: bc?" in typo.stderr
    assert json.loads(run_cli("results", "--out", str(tmp_path), "--format", "json",
                              "--variant", "quick").stdout) == []  # the runs are smoke


def test_verify_all_local_datasets_detects_a_flipped_byte(tiny_dataset, tmp_path):
    import os
    import shutil

    root = tmp_path / "minari"
    shutil.copytree(os.path.join(os.environ["MINARI_TEST_ROOT"], tiny_dataset), root / tiny_dataset)
    env = dict(os.environ, MINARI_DATASETS_PATH=str(root))
    import subprocess
    import sys

    def verify():
        return subprocess.run([sys.executable, "-m", "bench", "datasets", "verify"],
                              capture_output=True, text=True, env=env)

    ok = verify()
    assert ok.returncode == 0 and f"ok {tiny_dataset}" in ok.stdout
    data = root / tiny_dataset / "data" / "main_data.hdf5"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    bad = verify()
    assert bad.returncode == 1 and f"MISMATCH {tiny_dataset}" in bad.stdout


def test_out_of_memory_is_a_clear_error_and_other_errors_still_surface(monkeypatch, capsys):
    from bench import cli

    def too_big(args):  # what torch raises for --set hidden=1000000000 on this machine
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 44000000000 bytes.")

    monkeypatch.setitem(cli.COMMANDS, "list", too_big)
    assert cli.main(["list"]) == 1
    err = capsys.readouterr().err
    assert "out of memory" in err and "--set" in err

    def bug(args):
        raise RuntimeError("shape mismatch")

    monkeypatch.setitem(cli.COMMANDS, "list", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        cli.main(["list"])


def test_datasets_list_tells_missing_from_incomplete(tmp_path, monkeypatch):
    """A dataset directory without its data file (a killed `datasets make`) is not "missing
    (made on first use)": first use refuses it, so the listing says how to remake it."""
    from bench.cli import _dataset_status
    from bench.data import storage
    from bench.data.catalog import ALIASES

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    alias = ALIASES["hopper-medium"]
    assert _dataset_status(alias) == ("missing (made on first use)", alias.local_id)
    storage.dataset_dir(alias.local_id).mkdir(parents=True)
    assert _dataset_status(alias) == ("incomplete (make --force)", alias.local_id)
