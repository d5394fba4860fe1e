"""Datasets appear whole or not at all (issue 24, row 1): makers killed at the dangerous moments
leave nothing a run could use, a second maker waits for the first, and a dataset whose making
was cut short by an older version is called incomplete and refused."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import pytest

from bench.data import storage
from tests.conftest import run_cli

RANDOM_ID = "bench/hopper/random-v0"

# A child that writes a dataset and stops at a chosen moment, announcing it with a marker file,
# so the test kills it exactly there: "write" halfway through the HDF5 episodes, "checksum"
# after the HDF5 file is complete but before its checksum and provenance are stamped.
WRITER = r"""
import sys, time
import gymnasium as gym
from bench.data import storage
from bench.making.generate import UniformRandomPolicy, collect_episodes, write_dataset

moment, marker = sys.argv[1], sys.argv[2]

def make_env():
    return gym.make("Hopper-v5", max_episode_steps=20)

def stop_here():
    open(marker, "w").close()
    time.sleep(120)

env = make_env()
buffers = collect_episodes(make_env, UniformRandomPolicy(env.action_space.low,
                           env.action_space.high), num_episodes=200, seed=0, num_envs=4)

class StopHalfway(list):
    def __iter__(self):
        for i, buf in enumerate(list.__iter__(self)):
            if moment == "write" and i == len(self) // 2:
                stop_here()
            yield buf

if moment == "checksum":
    storage.sha256_file = lambda *args, **kwargs: stop_here()
write_dataset(sys.argv[3], StopHalfway(buffers), env, ref_min=0.0, ref_max=100.0,
              provenance={"generator": "tests"}, description="t", algorithm_name="t")
"""


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "minari"


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the child never reached the moment"
        time.sleep(0.02)


@pytest.mark.parametrize("moment", ["write", "checksum"])
def test_a_maker_killed_at_a_dangerous_moment_leaves_no_dataset(root, tmp_path, moment):
    marker = tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", WRITER, moment, str(marker), RANDOM_ID],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    try:
        _wait_for(marker, child)
        if moment == "write":  # the HDF5 file is half written at this moment
            staged_files = list((root / ".bench-staging").rglob(storage.DATA_FILE))
            assert staged_files and staged_files[0].stat().st_size > 0
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    assert not storage.dataset_dir(RANDOM_ID).exists()
    listed = run_cli("datasets", "list")
    line = next(l for l in listed.stdout.splitlines() if l.startswith("hopper-random "))
    assert "missing" in line, line
    # The killed maker's leftovers are cleared by the next maker, which makes it whole.
    made = run_cli("datasets", "make", "hopper-random", "--transitions", "500")
    assert made.returncode == 0, made.stderr
    assert list((root / ".bench-staging").glob("*.stage-*")) == []
    info = json.loads(run_cli("datasets", "info", "hopper-random").stdout)
    assert info["status"] == "complete" and info["provenance"]["source"] == "self-generated"


def test_ctrl_c_during_make_leaves_nothing_and_says_how_to_start_again(root):
    proc = subprocess.Popen([sys.executable, "-m", "bench", "datasets", "make", "hopper-random",
                             "--transitions", "40000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    deadline = time.time() + 240
    while not list((root / ".bench-staging").rglob(storage.DATA_FILE)):  # writing has begun
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "bench datasets make hopper-random" in err and "--resume" not in err
    assert not storage.dataset_dir(RANDOM_ID).exists()
    assert list((root / ".bench-staging").glob("*.stage-*")) == []  # removed on the way out


def _popen_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def _read_until(proc: subprocess.Popen, text: str, timeout: float = 120) -> str:
    """stderr of ``proc`` up to the line holding ``text`` (fails after ``timeout`` s)."""
    lines: list[str] = []

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if text in line:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert any(text in line for line in lines), f"no {text!r} within {timeout} s: {lines}"
    return "".join(lines)


def test_a_second_maker_and_a_first_use_run_wait_for_the_first(root):
    from bench.data.catalog import ALIASES
    from bench.making.makers import make_random
    from bench.data.staging import maker_lock

    messages = []
    with maker_lock(RANDOM_ID, messages.append):
        make = _popen_cli("datasets", "make", "hopper-random", "--transitions", "500")
        run = _popen_cli("run", "--algo", "bc", "--dataset", "hopper-random", "--budget", "smoke",
                         "--eval-episodes", "2", "--out", str(root.parent / "results"))
        for proc in (make, run):
            said = _read_until(proc, "being made by process")
            assert f"process {os.getpid()}" in said and "waiting" in said
        assert make.poll() is None and run.poll() is None  # still waiting
        # This process is the first maker: it makes the dataset while the others wait.
        make_random(ALIASES["hopper-random"], num_transitions=500, seed=0)
    out, err = make.communicate(timeout=120)
    assert make.returncode == 1 and "already exists" in err and "Traceback" not in err
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    result = json.loads(next((root.parent / "results").rglob("result.json")).read_text())
    assert result["dataset_sha256"] == storage.read_metadata(RANDOM_ID)["data_sha256"]
    assert messages == []  # the lock was free when this process took it


@pytest.mark.parametrize("damage", ["no checksum", "fewer episodes"])
def test_a_dataset_cut_short_is_incomplete_and_refused(root, tiny_dataset, damage):
    # An older version's Ctrl-C or kill -9 left such datasets in the Minari root itself.
    src = Path(os.environ["MINARI_TEST_ROOT"]) / tiny_dataset
    shutil.copytree(src, root / RANDOM_ID)
    meta_path = storage.metadata_file(RANDOM_ID)
    meta = json.loads(meta_path.read_text())
    meta["dataset_id"] = RANDOM_ID
    if damage == "no checksum":
        del meta["data_sha256"], meta["bench_provenance"]
    else:
        with h5py.File(storage.data_file(RANDOM_ID), "a") as f:
            del f[f"episode_{meta['total_episodes'] - 1}"]
        meta["data_sha256"] = storage.sha256_file(storage.data_file(RANDOM_ID))
    meta_path.write_text(json.dumps(meta))

    listed = run_cli("datasets", "list")
    line = next(l for l in listed.stdout.splitlines() if l.startswith("hopper-random "))
    assert "incomplete (make --force)" in line, line
    info = json.loads(run_cli("datasets", "info", "hopper-random").stdout)
    assert info["status"].startswith("incomplete"), info["status"]
    out = root.parent / "results"
    proc = run_cli("run", "--algo", "bc", "--dataset", "hopper-random", "--budget", "smoke",
                   "--out", str(out))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "incomplete" in proc.stderr and "bench datasets make hopper-random --force" in proc.stderr
    assert not out.exists()  # refused before any run directory
    verify = run_cli("datasets", "verify")
    assert verify.returncode == 1 and f"INCOMPLETE {RANDOM_ID}" in verify.stdout
    assert storage.data_file(RANDOM_ID).exists()  # nothing deleted


def test_force_puts_the_old_dataset_back_when_making_fails(root, tiny_dataset, monkeypatch):
    from bench.making import makers
    from bench.data.catalog import ALIASES
    from bench.making.makers import make_alias

    shutil.copytree(Path(os.environ["MINARI_TEST_ROOT"]) / tiny_dataset, root / RANDOM_ID)
    before = storage.sha256_file(storage.data_file(RANDOM_ID))

    def failing(alias, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setitem(makers.MAKERS, "random", failing)
    with pytest.raises(KeyboardInterrupt):
        make_alias(ALIASES["hopper-random"], num_transitions=100, force=True, log=lambda m: None)
    assert storage.sha256_file(storage.data_file(RANDOM_ID)) == before


def test_a_forced_make_killed_midway_leaves_the_old_dataset_in_place(root, tiny_dataset):
    shutil.copytree(Path(os.environ["MINARI_TEST_ROOT"]) / tiny_dataset, root / RANDOM_ID)
    before = storage.sha256_file(storage.data_file(RANDOM_ID))
    proc = subprocess.Popen([sys.executable, "-m", "bench", "datasets", "make", "hopper-random",
                             "--transitions", "40000", "--force"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.time() + 240
    while not list((root / ".bench-staging").rglob(storage.DATA_FILE)):  # the new one is written
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    # Until the new dataset is whole, the old one stays where runs find it (it was moved to the
    # backups before making the new one, and a run then made a fresh 1M on first use).
    assert storage.sha256_file(storage.data_file(RANDOM_ID)) == before
