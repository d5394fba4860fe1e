"""Experiment loggers (``--logger tensorboard`` / ``wandb``): the same rows as metrics.jsonl, the
final headline metrics and the run's settings; resuming; missing packages and unknown names."""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.errors import UsageError
from bench.run import RunRequest, execute, run_dir
from conftest import SimulatedKill, kill_after, run_cli

SETTINGS = {"num_updates": "12", "checkpoint_every": "4", "log_every": "2", "eval_every": "6"}


def _req(tiny_dataset, out, **kw) -> RunRequest:
    base = dict(algo="bc", dataset=tiny_dataset, seed=3, budget="smoke", overrides=SETTINGS,
                out=out, eval_episodes=2, eval_mode="sync", loggers=("tensorboard",))
    base.update(kw)
    return RunRequest(**base)


def _rows(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]


def _events(directory: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def _assert_scalars_are_the_rows(directory: Path, result: dict) -> None:
    rows, acc = _rows(directory), _events(directory)
    keys = {k for row in rows for k in row if k != "step"}
    assert {"loss", "time/train_seconds", "time/updates_per_s", "eval/return",
            "eval/normalized_score"} <= keys
    for key in keys:
        expected = [(r["step"], r[key]) for r in rows if key in r]
        got = [(e.step, e.value) for e in acc.Scalars(key)]
        assert [s for s, _ in got] == [s for s, _ in expected], key  # each step once, in order
        np.testing.assert_allclose([v for _, v in got], np.float32([v for _, v in expected]),
                                   rtol=1e-6, err_msg=key)
    assert [e.step for e in acc.Scalars("eval/return")] == [6]
    (final,) = acc.Scalars("final/normalized_score")
    assert final.step == 12 and final.value == pytest.approx(result["normalized_score"], rel=1e-6)
    (mean,) = acc.Scalars("final/mean_return")
    assert mean.value == pytest.approx(result["mean_return"], rel=1e-6)
    assert set(acc.Tags()["scalars"]) == keys | {"final/normalized_score", "final/mean_return"}


def _hparams(directory: Path) -> dict:
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = _events(directory).PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
            for k, v in start.hparams.items()}


def test_tensorboard_logs_the_metrics_rows_the_final_score_and_the_settings(tiny_dataset,
                                                                            tmp_path):
    result = execute(_req(tiny_dataset, tmp_path), log=lambda m: None)
    directory = run_dir(_req(tiny_dataset, tmp_path))
    _assert_scalars_are_the_rows(directory, result)
    hparams = _hparams(directory)
    assert hparams["algo"] == "bc" and hparams["seed"] == 3 and hparams["budget"] == "smoke"
    assert hparams["variant"] == directory.parent.name and hparams["num_updates"] == 12


def test_cli_logger_flag_writes_the_same_rows(tiny_dataset, tmp_path):
    proc = run_cli("run", "--algo", "bc", "--dataset", tiny_dataset, "--seed", "3", "--budget",
                   "smoke", *[a for k, v in SETTINGS.items() for a in ("--set", f"{k}={v}")],
                   "--eval-episodes", "2", "--eval-mode", "sync", "--out", str(tmp_path),
                   "--logger", "tensorboard,tensorboard")
    assert proc.returncode == 0, proc.stderr
    directory = run_dir(_req(tiny_dataset, tmp_path))
    result = json.loads((directory / "result.json").read_text())
    _assert_scalars_are_the_rows(directory, result)


def test_a_resumed_run_appends_one_readable_tensorboard_stream(tiny_dataset, tmp_path):
    with pytest.raises(SimulatedKill):  # killed at step 7: rows 2, 4, 6 logged, checkpoint at 4
        execute(_req(tiny_dataset, tmp_path), log=lambda m: None, callbacks=kill_after(7))
    directory = run_dir(_req(tiny_dataset, tmp_path))
    assert [e.step for e in _events(directory).Scalars("loss")] == [2, 4, 6]
    result = execute(_req(tiny_dataset, tmp_path, resume=True), log=lambda m: None)
    assert len(list((directory / "tensorboard").glob("events.out.tfevents.*"))) == 2
    # Row 6 of the killed attempt is hidden by the resumed one: each step once, the values of
    # metrics.jsonl (trimmed back to the checkpoint, then written again from there).
    assert [r["step"] for r in _rows(directory)] == [2, 4, 6, 8, 10, 12]
    _assert_scalars_are_the_rows(directory, result)


def test_a_missing_logger_package_is_a_usage_error_before_anything_is_written(
        tiny_dataset, tmp_path, monkeypatch, capsys):
    from bench.cli import main

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` fails
    message = "--logger tensorboard needs the tensorboard package: pip install -e '.[tensorboard]'"
    with pytest.raises(UsageError) as err:
        execute(_req(tiny_dataset, tmp_path / "api"), log=lambda m: None)
    assert str(err.value) == message
    code = main(["run", "--algo", "bc", "--dataset", tiny_dataset, "--budget", "smoke",
                 "--out", str(tmp_path / "cli"), "--logger", "tensorboard"])
    assert code == 2 and f"bench: error: {message}" in capsys.readouterr().err
    code = main(["sweep", "--algo", "bc", "--dataset", tiny_dataset, "--budget", "smoke",
                 "--out", str(tmp_path / "sweep"), "--logger", "tensorboard"])
    assert code == 2 and f"bench: error: {message}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # no run directory, no results root, no sweep summary


def test_unknown_logger_names_are_usage_errors(tiny_dataset, tmp_path):
    with pytest.raises(UsageError, match="unknown logger 'tensorbord'.*Known: tensorboard, wandb"):
        execute(_req(tiny_dataset, tmp_path, loggers=("tensorbord",)), log=lambda m: None)
    proc = run_cli("run", "--algo", "bc", "--dataset", tiny_dataset, "--budget", "smoke",
                   "--out", str(tmp_path), "--logger", "tensorboard,mlflow")
    assert proc.returncode == 2 and "unknown logger 'mlflow'" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_sweep_file_and_flags_give_every_run_its_loggers(tmp_path):
    from bench.sweep import expand, load_sweep_file, make_spec

    sweep = tmp_path / "sweep.toml"
    sweep.write_text('algo = "bc"\ndataset = "hopper-random"\nseed = [0, 1]\n'
                     'logger = ["tensorboard"]\nwandb_project = "mine"\n')
    (grid,) = load_sweep_file(sweep)
    runs = expand(make_spec(grid, {"logger": None}), tmp_path / "out")
    assert [(r.loggers, r.wandb_project) for r in runs] == [(("tensorboard",), "mine")] * 2
    flags = expand(make_spec(grid, {"logger": []}), tmp_path / "out")
    assert [r.loggers for r in flags] == [()] * 2  # a flag replaces the file's value
    sweep.write_text('algo = "bc"\ndataset = "hopper-random"\nlogger = "tensorboard,tb"\n')
    with pytest.raises(UsageError, match="unknown logger 'tb'"):
        make_spec(load_sweep_file(sweep)[0], {})


def test_a_sweep_run_logs_to_tensorboard(tiny_dataset, tmp_path):
    proc = run_cli("sweep", "--algo", "bc", "--dataset", tiny_dataset, "--seed", "3", "--budget",
                   "smoke", "--set", "log_every=3", "--eval-episodes", "2", "--out",
                   str(tmp_path), "--logger", "tensorboard")
    assert proc.returncode == 0, proc.stderr
    directory = run_dir(_req(tiny_dataset, tmp_path, overrides={"log_every": "3"}))
    rows = _rows(directory)
    assert [e.step for e in _events(directory).Scalars("loss")] == [r["step"] for r in rows]


# --- Weights & Biases (offline) ----------------------------------------------------------------

def _wandb_records(path: Path) -> list:
    """The records of a ``.wandb`` file: W&B's LevelDB-style log (a 7-byte header, then 32 KiB
    blocks of chunks, each ``crc32 u32, length u16, type u8``: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # too little room left for a header: padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _wandb_run(run_path: Path) -> dict:
    """What one offline run recorded: its run record, config, history rows and summary."""
    (file,) = run_path.glob("run-*.wandb")
    out = {"run": None, "config": {}, "history": [], "summary": {}}
    for record in _wandb_records(file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
            out["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                     for i in record.history.item}
            out["history"].append({k: v for k, v in items.items() if not k.startswith("_")}
                                  | {"step": record.history.step.num})
        elif kind == "summary":
            out["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                   for i in record.summary.update})
    return out


def test_wandb_offline_run_holds_the_rows_the_final_score_and_resumes_its_id(
        tiny_dataset, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for var in ("WANDB_MODE", "WANDB_PROJECT", "WANDB_API_KEY", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "home" / var))
    monkeypatch.setenv("WANDB_SILENT", "true")
    req = _req(tiny_dataset, tmp_path / "out", loggers=("wandb",), wandb_project="bench-tests")
    with pytest.raises(SimulatedKill):
        execute(req, log=lambda m: None, callbacks=kill_after(7))
    directory = run_dir(req)
    run_id = (directory / "wandb_id").read_text()
    result = execute(RunRequest(**{**req.__dict__, "resume": True}), log=lambda m: None)
    assert "WANDB_MODE" not in __import__("os").environ  # offline by argument, not by setting it
    # Offline, each session is its own offline run of the same id (`wandb sync` joins them).
    first, second = sorted((directory / "wandb").glob(f"offline-run-*-{run_id}"))
    killed, resumed = _wandb_run(first), _wandb_run(second)
    for run in (killed, resumed):
        assert run["run"].run_id == run_id and run["run"].project == "bench-tests"
        assert run["run"].display_name == "/".join(directory.parts[-4:])
        assert run["config"]["algo"] == "bc" and run["config"]["num_updates"] == 12
    rows = _rows(directory)
    logged = killed["history"][:2] + resumed["history"]  # the killed attempt's rows up to step 4
    assert [h["step"] for h in killed["history"]] == [2, 4, 6]
    assert [h["step"] for h in logged] == [r["step"] for r in rows]
    for got, row in zip(logged, rows):
        assert {k: got[k] for k in row} == pytest.approx(row, rel=1e-9)
    assert set(logged[-2]) == set(rows[-2])
    final = logged[-1]  # the last row, and the final headline at its step
    assert set(final) == set(rows[-1]) | {"final/normalized_score", "final/mean_return"}
    assert final["step"] == 12 and final["final/normalized_score"] == pytest.approx(
        result["normalized_score"]) and final["final/mean_return"] == pytest.approx(
        result["mean_return"])
    assert resumed["summary"]["final/normalized_score"] == pytest.approx(result["normalized_score"])
