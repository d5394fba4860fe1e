"""Progress when stderr is not a terminal (issue 24, row 15): a batch job's log shows dataset
making, training and evaluation alive, in plain lines."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from bench.progress import LogProgress, progress_bar


def test_log_lines_come_at_each_tenth_and_at_the_end(monkeypatch, capsys):
    monkeypatch.setenv("BENCH_PROGRESS_EVERY", "3600")  # only the tenths count here
    with LogProgress(total=200, desc="work", unit="upd") as bar:
        for _ in range(200):
            bar.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10, lines  # 10%, ..., 90%, then the closing line
    assert lines[0].startswith("[bench] work: 20/200 upd (10%)")
    assert re.search(r"upd/s, \d+:\d\d elapsed, \d+:\d\d left$", lines[0]), lines[0]
    assert lines[-1].startswith("[bench] work: 200/200 upd (100%)") and lines[-1].endswith("(done)")


def test_log_lines_come_at_the_interval_between_tenths(monkeypatch, capsys):
    monkeypatch.setenv("BENCH_PROGRESS_EVERY", "0")
    bar = LogProgress(total=10**9, desc="slow")
    bar.update(1)
    bar.update(1)
    assert len(capsys.readouterr().err.splitlines()) == 2


def test_the_bar_or_nothing_where_asked(monkeypatch, capsys):
    monkeypatch.setenv("BENCH_PROGRESS", "0")
    with progress_bar(total=10, desc="quiet") as bar:
        bar.update(10)
    assert capsys.readouterr().err == ""
    monkeypatch.delenv("BENCH_PROGRESS")
    assert isinstance(progress_bar(total=10), LogProgress)  # pytest's stderr is no terminal


def test_a_run_writing_to_a_file_logs_progress_of_making_training_and_evaluating(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "BENCH_PROGRESS"}
    env.update(MINARI_DATASETS_PATH=str(tmp_path / "minari"), BENCH_CACHE=str(tmp_path / "cache"))
    log = tmp_path / "job.log"
    commands = [["datasets", "make", "hopper-random", "--transitions", "2000"],
                ["run", "--algo", "bc", "--dataset", "hopper-random", "--budget", "smoke",
                 "--eval-episodes", "3", "--set", "num_updates=50", "--out",
                 str(tmp_path / "results")]]
    with open(log, "w") as f:  # as a batch job's output file
        for args in commands:
            proc = subprocess.run([sys.executable, "-m", "bench", *args], stdout=f,
                                  stderr=subprocess.STDOUT, env=env, timeout=600)
            assert proc.returncode == 0, log.read_text()
    text = log.read_text()
    for what in ("hopper-random: ", "bc on hopper-random: ", "evaluating default: "):
        assert re.search(rf"^\[bench\] {what}.*\(done\)$", text, re.M), (what, text)
    assert "\r" not in text  # no bar redrawn in place
    # The last episode of a make runs past the size asked for; the line still ends at 100%.
    percents = [int(p) for p in re.findall(r"\((\d+)%\)", text)]
    assert percents and max(percents) <= 100, text
