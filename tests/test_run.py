import dataclasses
import json
import multiprocessing as mp

import numpy as np
import pytest
import torch

from bench.errors import BenchError, NonFiniteLossError, UsageError
from bench.run import RunRequest, eval_seed, execute, run_dir
from conftest import SimulatedKill, kill_after


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
def test_resume_after_a_kill_ends_like_an_uninterrupted_run(tiny_dataset, tmp_path, algo,
                                                            monkeypatch):
    from bench import registry

    cls = registry.get(algo).cls
    updates = []
    real_update = cls.update
    monkeypatch.setattr(cls, "update", lambda self, batch, step: updates.append(1) or real_update(self, batch, step))
    full = execute(_req(tiny_dataset, tmp_path / "a", algo=algo), log=lambda m: None)
    assert len(updates) == 12
    with pytest.raises(SimulatedKill):
        execute(_req(tiny_dataset, tmp_path / "b", algo=algo), log=lambda m: None,
                callbacks=kill_after(7))
    killed_dir = run_dir(_req(tiny_dataset, tmp_path / "b", algo=algo))
    assert not (killed_dir / "result.json").exists()
    # Without --resume, the unfinished run is protected (usage error, nothing overwritten).
    with pytest.raises(UsageError, match="--resume"):
        execute(_req(tiny_dataset, tmp_path / "b", algo=algo), log=lambda m: None)
    updates.clear()
    resumed = execute(_req(tiny_dataset, tmp_path / "b", algo=algo, resume=True), log=lambda m: None)
    # It continued from the step-4 checkpoint (killed at 7): 8 updates, not a silent restart of
    # 12, which a deterministic run would make look the same.
    assert len(updates) == 12 - 4
    assert _metrics(killed_dir) == _metrics(run_dir(_req(tiny_dataset, tmp_path / "a", algo=algo)))
    assert resumed["episode_returns"] == full["episode_returns"]


def test_a_checkpoint_made_on_other_data_is_not_resumed(tiny_dataset, tmp_path):
    # A run carried to another machine, whose self-made dataset came out with another checksum.
    req = _req(tiny_dataset, tmp_path, algo="bc")
    with pytest.raises(SimulatedKill):
        execute(req, log=lambda m: None, callbacks=kill_after(7))
    directory = run_dir(req)
    provenance = json.loads((directory / "dataset.json").read_text())
    checkpoint = (directory / "checkpoint.pt").read_bytes()
    (directory / "dataset.json").write_text(json.dumps({**provenance, "sha256": "0" * 64}))
    with pytest.raises(UsageError, match="sha256 000000000000.*Move the run directory away"):
        execute(dataclasses.replace(req, resume=True), log=lambda m: None)
    assert (directory / "checkpoint.pt").read_bytes() == checkpoint  # nothing on disk is lost
    assert not (directory / "result.json").exists()
    # With the checksum it was trained on, the same run resumes and finishes.
    (directory / "dataset.json").write_text(json.dumps(provenance))
    assert execute(dataclasses.replace(req, resume=True), log=lambda m: None)["seed"] == 3


def test_same_seed_twice_gives_identical_numbers(tiny_dataset, tmp_path):
    a = execute(_req(tiny_dataset, tmp_path / "a"), log=lambda m: None)
    b = execute(_req(tiny_dataset, tmp_path / "b"), log=lambda m: None)
    assert _metrics(run_dir(_req(tiny_dataset, tmp_path / "a"))) == \
        _metrics(run_dir(_req(tiny_dataset, tmp_path / "b")))
    assert a["episode_returns"] == b["episode_returns"]
    execute(_req(tiny_dataset, tmp_path / "c", seed=4), log=lambda m: None)
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
    # The score is the dataset's reference pair (tiny_dataset's: 0 and 100, conftest) applied to
    # these very returns.
    assert (result["ref_min"], result["ref_max"]) == (0.0, 100.0)
    span = result["ref_max"] - result["ref_min"]
    assert result["normalized_score"] == pytest.approx(
        100 * (np.mean(result["episode_returns"]) - result["ref_min"]) / span)
    assert result["evaluation"] == {"first_seed": eval_seed(3), "episodes": 2, "mode": "sync",
                                    "torch_threads": torch.get_num_threads(),
                                    "acting_threads": 1, "batch_invariant_act": True}
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

    def update(self, batch, step):
        calls["n"] += 1
        out = original(self, batch, step)
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



def test_damaged_records_give_clear_errors_and_are_kept(tiny_dataset, tmp_path):
    """A damaged checkpoint, result.json or metrics line: a BenchError naming the file (exit 1,
    no traceback), nothing deleted; a damaged metrics line is dropped like a torn one."""
    quiet = lambda m: None  # noqa: E731
    with pytest.raises(SimulatedKill):
        execute(_req(tiny_dataset, tmp_path, algo="bc"), log=quiet, callbacks=kill_after(7))
    directory = run_dir(_req(tiny_dataset, tmp_path, algo="bc"))
    ckpt = directory / "checkpoint.pt"
    good = ckpt.read_bytes()
    for content, message in [(good[:len(good) // 2], "cannot be read"), (b"", "cannot be read"),
                             (b"\x00garbage" * 10, "cannot be read")]:
        ckpt.write_bytes(content)
        with pytest.raises(BenchError, match="checkpoint .* " + message):
            execute(_req(tiny_dataset, tmp_path, algo="bc", resume=True), log=quiet)
        assert ckpt.read_bytes() == content
    torch.save({"step": 3}, ckpt)  # a readable file that is not this run's checkpoint
    with pytest.raises(BenchError, match="does not hold this run's state"):
        execute(_req(tiny_dataset, tmp_path, algo="bc", resume=True), log=quiet)
    ckpt.write_bytes(good)
    metrics = directory / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '5\n{"foo": 1}\n')
    finished = execute(_req(tiny_dataset, tmp_path, algo="bc", resume=True), log=quiet)
    assert all(isinstance(json.loads(l).get("step"), int) for l in metrics.read_text().splitlines())
    result = directory / "result.json"
    for content in (b"{}", b"[]", b"\xff\xfe binary", b'{"normalized_score": 1'):
        result.write_bytes(content)
        with pytest.raises(BenchError, match="result.json is damaged"):
            execute(_req(tiny_dataset, tmp_path, algo="bc"), log=quiet)
        assert result.read_bytes() == content
    result.write_text(json.dumps(finished))
    assert execute(_req(tiny_dataset, tmp_path, algo="bc"), log=quiet) == finished


def test_settings_never_share_a_run_directory(tiny_dataset, tmp_path):
    from bench.records import variant_name

    # Characters a directory name cannot keep: a hash of the exact text keeps them apart.
    a, b = variant_name("smoke", {"lr": "１e-3"}), variant_name("smoke", {"lr": "９e-3"})
    assert a != b and a.startswith("smoke,lr=_e-3~")
    assert variant_name("quick", {"lr": "0.001"}) == "quick,lr=0.001"  # plain names unchanged
    long = variant_name("smoke", {"hidden": ",".join(["8"] * 150)})
    assert len(long) < 150 and long != variant_name("smoke", {"hidden": ",".join(["8"] * 151)})
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("keep me")
    with pytest.raises(UsageError, match="is a file, not a directory"):
        execute(_req(tiny_dataset, not_a_dir), log=lambda m: None)
    assert not_a_dir.read_text() == "keep me"


def test_an_identical_run_that_finished_meanwhile_is_not_redone(tiny_dataset, tmp_path, monkeypatch):
    """The finished check is repeated under the run directory's lock: an identical run that
    finished between this run's first look and its taking the lock is returned, not resumed
    from its final checkpoint and evaluated (and written) again."""
    import bench.run as run_module

    original = run_module.DataSource.from_request.__func__
    meanwhile = {}

    def finish_the_other_first(cls, req, log):
        if not meanwhile:
            meanwhile["result"] = None  # the other run, start to end, after our first look
            meanwhile["result"] = execute(_req(tiny_dataset, tmp_path, algo="bc"), log=lambda m: None)
        return original(cls, req, log)

    monkeypatch.setattr(run_module.DataSource, "from_request", classmethod(finish_the_other_first))
    directory = run_dir(_req(tiny_dataset, tmp_path, algo="bc"))
    result = execute(_req(tiny_dataset, tmp_path, algo="bc"), log=lambda m: None)
    written = (directory / "result.json").read_bytes()
    assert result == meanwhile["result"] == json.loads(written)
    assert json.loads(written)["timings"] == meanwhile["result"]["timings"]  # not evaluated again


def test_checkpoints_keep_the_cuda_generators_on_cuda(monkeypatch):
    """On CUDA, dropout and PPO's noise draw from the CUDA generators, so a checkpoint keeps them;
    torch.load maps the saved states to the run's device, and they are restored from CPU copies.
    (No GPU here: the CUDA calls are stand-ins that record what they get.)"""
    import torch

    from bench.run import restore_rng_state, rng_state

    cuda_states = [torch.arange(4, dtype=torch.uint8), torch.arange(4, 8, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: cuda_states)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.extend)
    assert "cuda_rng" not in rng_state(torch.device("cpu"))
    saved = rng_state(torch.device("cuda"))
    assert saved["cuda_rng"] is cuda_states
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    saved = rng_state(torch.device("cuda"))
    torch.rand(3)  # move on, as training does
    restore_rng_state(saved, torch.device("cuda"))
    assert torch.equal(torch.rand(3), expected)
    assert [s.tolist() for s in restored] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    restored.clear()
    restore_rng_state({"torch_rng": saved["torch_rng"]}, torch.device("cuda"))  # an older checkpoint
    assert restored == []


def test_a_run_records_the_code_it_started_with_not_head_at_its_end(tiny_dataset, tmp_path,
                                                                   monkeypatch):
    """A commit made while a run trains is not the run's code: result.json keeps the commit read
    when the run started (as env.json does)."""
    import bench.run as run_module

    commits = iter([{"commit": "c-start", "dirty": False}] + [{"commit": "c-later", "dirty": False}] * 5)
    monkeypatch.setattr(run_module, "git_commit", lambda: next(commits))
    result = execute(_req(tiny_dataset, tmp_path / "a"), log=lambda m: None)
    assert result["git"]["commit"] == "c-start"
    run = next((tmp_path / "a").rglob("result.json")).parent
    assert json.loads((run / "env.json").read_text())["git"]["commit"] == "c-start"
