import json
import multiprocessing as mp

import pytest
import torch

from bench.errors import NonFiniteLossError, UsageError
from bench.run import RunRequest, SimulatedKill, execute, run_dir


def _metrics(directory):
    rows = [json.loads(l) for l in (directory / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def _req(tiny_dataset, tmp_path, **kw):
    base = dict(algo="dt", dataset=tiny_dataset, seed=3, budget="smoke",
                overrides={"num_updates": "12", "checkpoint_every": "4", "log_every": "2"},
                out=tmp_path, eval_episodes=2, eval_mode="sync")
    base.update(kw)
    return RunRequest(**base)


@pytest.mark.parametrize("algo", ["dt", "bc"])
def test_resume_after_a_kill_ends_like_an_uninterrupted_run(tiny_dataset, tmp_path, algo):
    full = execute(_req(tiny_dataset, tmp_path / "a", algo=algo), log=lambda m: None)
    with pytest.raises(SimulatedKill):
        execute(_req(tiny_dataset, tmp_path / "b", algo=algo, stop_after=7), log=lambda m: None)
    killed_dir = run_dir(_req(tiny_dataset, tmp_path / "b", algo=algo))
    assert not (killed_dir / "result.json").exists()
    # Without --resume, the unfinished run is protected (usage error, nothing overwritten).
    with pytest.raises(UsageError, match="--resume"):
        execute(_req(tiny_dataset, tmp_path / "b", algo=algo), log=lambda m: None)
    resumed = execute(_req(tiny_dataset, tmp_path / "b", algo=algo, resume=True), log=lambda m: None)
    assert _metrics(killed_dir) == _metrics(run_dir(_req(tiny_dataset, tmp_path / "a", algo=algo)))
    assert resumed["episode_returns"] == full["episode_returns"]


def test_same_seed_twice_gives_identical_numbers(tiny_dataset, tmp_path):
    a = execute(_req(tiny_dataset, tmp_path / "a"), log=lambda m: None)
    b = execute(_req(tiny_dataset, tmp_path / "b"), log=lambda m: None)
    assert _metrics(run_dir(_req(tiny_dataset, tmp_path / "a"))) == \
        _metrics(run_dir(_req(tiny_dataset, tmp_path / "b")))
    assert a["episode_returns"] == b["episode_returns"]
    c = execute(_req(tiny_dataset, tmp_path / "c", seed=4), log=lambda m: None)
    assert _metrics(run_dir(_req(tiny_dataset, tmp_path / "c", seed=4))) != \
        _metrics(run_dir(_req(tiny_dataset, tmp_path / "a")))


def test_run_directory_records_everything(tiny_dataset, tmp_path):
    result = execute(_req(tiny_dataset, tmp_path), log=lambda m: None)
    d = run_dir(_req(tiny_dataset, tmp_path))
    for name in ("config.json", "dataset.json", "env.json", "metrics.jsonl", "checkpoint.pt", "result.json"):
        assert (d / name).exists(), name
    for key in ("algo", "dataset", "seed", "budget", "episode_returns", "normalized_score"):
        assert key in result
    assert len(result["episode_returns"]) == 2
    assert set(result["conditions"]) == {"target=3600", "target=1800"}
    ds = json.loads((d / "dataset.json").read_text())
    assert ds["sha256"] and ds["provenance"]["source"] == "self-generated"
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["config"]["num_updates"] == 12 and cfg["overrides"]["num_updates"] == "12"
    # A finished run is not redone: the stored result comes back.
    assert execute(_req(tiny_dataset, tmp_path), log=lambda m: None) == result


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    from bench.algos.bc import BehaviourCloning

    original = BehaviourCloning.update
    calls = {"n": 0}

    def update(self, batch):
        calls["n"] += 1
        out = original(self, batch)
        if calls["n"] == 6:
            out["loss"] = float("nan")
        return out

    monkeypatch.setattr(BehaviourCloning, "update", update)
    req = _req(tiny_dataset, tmp_path, algo="bc")
    with pytest.raises(NonFiniteLossError, match="step 6"):
        execute(req, log=lambda m: None)
    d = run_dir(req)
    assert torch.load(d / "checkpoint.pt", weights_only=False)["step"] == 4
    assert json.loads((d / "error.json").read_text())["step"] == 6
    assert not (d / "result.json").exists()


def _worker(args):
    tiny, out, seed = args
    import os
    os.environ["BENCH_PROGRESS"] = "0"
    from bench.run import RunRequest, execute

    r = execute(RunRequest(algo="bc", dataset=tiny, seed=seed, budget="smoke", out=out,
                           eval_episodes=2, eval_mode="sync"), log=lambda m: None)
    return r["seed"]


def test_concurrent_runs_into_one_root_lose_nothing(tiny_dataset, tmp_path):
    from bench.results import load_results

    with mp.get_context("spawn").Pool(2) as pool:
        seeds = pool.map(_worker, [(tiny_dataset, tmp_path, s) for s in range(4)])
    assert sorted(seeds) == [0, 1, 2, 3]
    df = load_results(tmp_path)
    assert sorted(df["seed"]) == [0, 1, 2, 3]

