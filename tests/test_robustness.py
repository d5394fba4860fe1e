"""Robustness found by the adversarial probe (issue 24): an --out that cannot be written, two
sweeps over one grid, output into a closed pipe, inline markup in the HTML report's tables, a
cache entry of another dataset, and SIGTERM."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.data import storage
from bench.run import RunRequest, run_dir
from bench.sweep import make_spec, run_sweep
from conftest import make_flat, run_cli

SMOKE = ["--budget", "smoke", "--eval-episodes", "2"]


def _record(dataset: str, seed: int, score) -> dict:
    """A result.json as a finished run writes it (the fields results and sweeps read)."""
    return {"dataset": dataset, "algo": "bc", "seed": seed, "budget": "smoke", "variant": "smoke",
            "normalized_score": score, "mean_return": 1.0, "episode_returns": [1.0, 1.0],
            "dataset_id": dataset, "dataset_source": "local", "dataset_sha256": "ab" * 32}


# ---- row 5: --out that cannot be written

def test_a_sweep_into_a_path_under_a_file_is_refused_before_listing(tiny_dataset, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for extra in ([], ["--dry-run"]):
        proc = run_cli("sweep", "--algo", "bc", "--dataset", tiny_dataset, *SMOKE,
                       "--out", str(afile / "out"), *extra)
        assert proc.returncode == 2, (extra, proc.stdout, proc.stderr)
        assert f"{afile} is a file, not a directory" in proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""  # nothing listed or run
    assert afile.read_text() == "keep me"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes through any permission bits; the path-under-a-file "
                           "case is tested above")
def test_a_sweep_into_a_folder_that_cannot_be_written_is_a_clear_error(tiny_dataset, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for out in (locked, locked / "new"):
            proc = run_cli("sweep", "--algo", "bc", "--dataset", tiny_dataset, *SMOKE,
                           "--out", str(out))
            assert proc.returncode == 1 and "bench: error: --out" in proc.stderr, proc.stderr
            assert "not writable" in proc.stderr and "Traceback" not in proc.stderr
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


# ---- row 9: two sweeps over one grid

def test_a_run_another_process_locks_after_the_busy_check_is_busy_not_failed(
        tiny_dataset, tmp_path, monkeypatch):
    """The race of two sweeps: the other one takes the run's lock between this sweep's look
    (is_busy) and execute's own lock. That is the same busy run, not a failure with an
    error.json (which the other sweep deletes once it finishes)."""
    import bench.sweep as sweep
    from bench.locks import file_lock

    req = RunRequest(algo="bc", dataset=tiny_dataset, budget="smoke", out=tmp_path,
                     eval_episodes=2, resume=True)
    directory = run_dir(req)
    monkeypatch.setattr(sweep, "is_busy", lambda d: False)  # the look came just before
    with file_lock(directory / ".lock", blocking=False):  # the other sweep's run
        outcome = sweep.run_one(req, None)
    assert outcome.status == "busy", outcome
    assert not (directory / "error.json").exists()


def test_dry_run_and_sweep_judge_a_result_as_results_does(tiny_dataset, tmp_path):
    """A result.json whose score is text: unreadable for `bench results`, so damaged for the
    sweep and its dry run (never finished), and left as it is."""
    from bench.results import load_results

    spec = make_spec({}, {"algo": ["bc"], "dataset": [tiny_dataset], "seed": [0, 1],
                          "budget": "smoke", "eval_episodes": 2})
    directory = tmp_path / tiny_dataset.replace("/", "__") / "bc" / "smoke"
    for seed, score in ((0, "12.3"), (1, 12.3)):
        (directory / f"seed_{seed}").mkdir(parents=True)
        (directory / f"seed_{seed}" / "result.json").write_text(
            json.dumps(_record(tiny_dataset, seed, score)))
    text = (directory / "seed_0" / "result.json").read_text()

    skipped = load_results(tmp_path).attrs["skipped"]
    assert list(skipped["status"]) == ["unreadable"] and skipped["seed"].tolist() == [0]
    lines: list[str] = []
    assert run_sweep([spec], tmp_path, dry_run=True, log=lines.append) is None
    assert [line.split("\t")[0] for line in lines] == ["damaged", "finished"]
    assert "'normalized_score' is '12.3'" in lines[0]
    report = run_sweep([spec], tmp_path, log=lambda m: None)
    damaged, finished = sorted(report.outcomes, key=lambda o: o.seed)
    assert damaged.status == "failed" and "is damaged" in damaged.error
    assert finished.status == "skipped" and finished.normalized_score == 12.3
    assert (directory / "seed_0" / "result.json").read_text() == text


# ---- row 10: output into a pipe nobody reads

def test_output_into_a_closed_pipe_stops_quietly():
    read_end, write_end = os.pipe()
    os.close(read_end)  # `bench list | head -n 1` once head has exited
    try:
        proc = subprocess.run([sys.executable, "-m", "bench", "list"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ),
                              timeout=300)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""  # no traceback, no "Exception ignored"


# ---- row 11: the HTML report's tables

def test_inline_markup_renders_in_html_table_cells(tmp_path):
    from bench.report import _data_section, to_html
    from bench.results import load_results

    page = to_html([("table", ["a", "b", "c", "d"],
                     [["`x<y>`", "**bold** & `code`", "a stray ` stays", 3.5]])], "t")
    assert "<td><code>x&lt;y&gt;</code></td>" in page
    assert "<td><strong>bold</strong> &amp; <code>code</code></td>" in page
    assert "<td>a stray ` stays</td>" in page and "<td>3.5</td>" in page
    # The Data table as a report builds it: its dataset ids and checksums are code, no backticks.
    d = tmp_path / "runs/hopper/bc/smoke/seed_0"
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps(_record("hopper", 0, 50.0)))
    page = to_html(_data_section(load_results(tmp_path / "runs")), "t")
    table = page[page.index("<table>"):page.index("</table>")]
    assert f"<code>{'ab' * 8}</code>" in table and "<code>hopper</code>" in table
    assert "`" not in table


# ---- row 12: a cache entry of another dataset

def test_a_cache_entry_of_another_dataset_is_rebuilt(tiny_dataset, tmp_path, monkeypatch):
    from bench.data.storage import _cache_path, _read_episodes

    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    sha = storage.read_metadata(tiny_dataset)["data_sha256"]
    other = "0" * 64
    storage.save_flat(other, make_flat([3, 4, 5]))  # another dataset's valid entry ...
    _cache_path(sha).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_cache_path(other), _cache_path(sha))  # ... copied over this one's name
    flat = storage.load_flat(tiny_dataset, sha)
    cold = _read_episodes(storage.data_file(tiny_dataset))
    for field in storage.FLAT_FIELDS:
        np.testing.assert_array_equal(getattr(flat, field), getattr(cold, field))
    again = storage.load_flat(tiny_dataset, sha)  # the entry was rewritten with this dataset
    np.testing.assert_array_equal(again.observations, cold.observations)


# ---- row 13: SIGTERM

LONG = ["num_updates=2000", "checkpoint_every=20", "log_every=100", "hidden=32,32"]
SET_LONG = [a for kv in LONG for a in ("--set", kv)]


def _long_run(dataset: str, out: Path) -> Path:
    from bench.config import parse_overrides

    return run_dir(RunRequest(algo="bc", dataset=dataset, budget="smoke", out=out,
                              overrides=parse_overrides(LONG)))


def _terminate_after_first_checkpoint(args: list[str], directory: Path) -> tuple[int, str]:
    """Start ``bench ARGS``, send it SIGTERM once the run has a checkpoint; (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    deadline = time.monotonic() + 240
    while not (directory / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)  # a sweep does not wait for its runs to finish
    assert not (directory / "result.json").exists(), "the run was stopped, not finished"
    return proc.returncode, err


def test_sigterm_stops_a_run_like_ctrl_c_and_it_resumes(tiny_dataset, tmp_path):
    args = ["run", "--algo", "bc", "--dataset", tiny_dataset, *SMOKE, *SET_LONG,
            "--out", str(tmp_path)]
    directory = _long_run(tiny_dataset, tmp_path)
    code, err = _terminate_after_first_checkpoint(args, directory)
    assert code == 143, err
    assert "terminated (SIGTERM)" in err and "--resume" in err and "Traceback" not in err
    resumed = run_cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and (directory / "result.json").exists()


def test_sigterm_stops_a_sweep_and_its_runs_like_ctrl_c(tiny_dataset, tmp_path):
    args = ["sweep", "--algo", "bc", "--dataset", tiny_dataset, *SMOKE, *SET_LONG,
            "--out", str(tmp_path)]
    directory = _long_run(tiny_dataset, tmp_path)
    code, err = _terminate_after_first_checkpoint(args, directory)
    assert code == 143, err
    assert "sweep interrupted; run the same command again" in err and "Traceback" not in err
    again = run_cli(*args)
    assert again.returncode == 0 and "1 resumed" in again.stdout, again.stderr
    assert (directory / "result.json").exists()


def test_sigterm_during_an_evaluation_in_worker_processes_stops_it(tiny_dataset, tmp_path):
    """SIGTERM reaches the run's process, not its env workers: a run stopped while they step
    must stop them, not wait for their step forever (it hung in AsyncVectorEnv.close)."""
    args = ["run", "--algo", "bc", "--dataset", tiny_dataset, "--budget", "smoke",
            "--eval-episodes", "4000", "--eval-mode", "async", "--out", str(tmp_path)]
    directory = run_dir(RunRequest(algo="bc", dataset=tiny_dataset, budget="smoke", out=tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    deadline = time.monotonic() + 240
    while not (directory / "checkpoint.pt").exists():  # the final one: evaluation comes next
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(1.5)  # the worker envs are stepping
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)  # before the fix: never returned
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    assert not (directory / "result.json").exists()
