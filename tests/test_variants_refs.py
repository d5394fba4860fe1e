"""Issue 24, rows 6 and 8: reference scores that cannot normalize a score are refused where they
are read, records are strict JSON, and one setting spelled several ways is one run."""
import json
import math
import shutil

import pytest

from bench.errors import DatasetError
from conftest import run_cli


def _dataset_with_refs(tiny_dataset, name, ref_min, ref_max):
    """A copy of the tiny dataset under id ``test/hopper/<name>-v0`` whose metadata holds the
    given reference scores (written as Python's json writes them: NaN, Infinity); nothing
    else is changed, the recorded sha256 included."""
    from bench.data import storage

    dataset_id = f"test/hopper/{name}-v0"
    target = storage.dataset_dir(dataset_id)
    if not target.exists():
        shutil.copytree(storage.dataset_dir(tiny_dataset), target)
    meta_path = storage.metadata_file(dataset_id)
    meta = json.loads(meta_path.read_text())
    meta.update(ref_min_score=ref_min, ref_max_score=ref_max)
    meta_path.write_text(json.dumps(meta))
    return dataset_id


# ---- row 6: reference scores ----------------------------------------------------------------

@pytest.mark.parametrize("name, ref_min, ref_max, problem", [
    ("equalrefs", 100.0, 100.0, "ref_max above ref_min"),
    ("nanrefs", 0.0, math.nan, "not finite"),
    ("infrefs", -math.inf, 100.0, "not finite"),
])
def test_a_dataset_with_unusable_reference_scores_is_refused_before_its_run(
        tiny_dataset, tmp_path, name, ref_min, ref_max, problem):
    """Row 6: equal, NaN or infinite references made a -inf / NaN score with exit 0 (and a
    result.json that is not JSON); now exit 1 with one line naming the dataset and the fix,
    and no run directory."""
    dataset_id = _dataset_with_refs(tiny_dataset, name, ref_min, ref_max)
    out = tmp_path / "results"
    proc = run_cli("run", "--algo", "bc", "--dataset", dataset_id, "--budget", "smoke",
                   "--set", "num_updates=2", "--eval-episodes", "1", "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert dataset_id in lines[0] and problem in lines[0]
    assert "metadata.json" in lines[0]
    assert not any(out.rglob("seed_*"))


def test_reference_cards_and_tables_are_checked_where_read(tmp_path, monkeypatch):
    """Row 6: a reference card whose random and expert returns are equal or NaN is a
    DatasetError naming the card (it used to normalize an online run's score into -inf), not
    a silent fallback to the static table; RefScores itself refuses such a pair."""
    from bench.data.cards import env_reference_scores
    from bench.data.catalog import ENV_REFERENCE_SCORES, REFERENCE_SCORES, RefScores

    for lo, hi in [(1.0, 1.0), (0.0, math.nan), (0.0, math.inf), (5.0, 1.0)]:
        with pytest.raises(DatasetError, match="ref_max"):
            RefScores(lo, hi, "a test")
    for ref in list(REFERENCE_SCORES.values()) + list(ENV_REFERENCE_SCORES.values()):
        assert math.isfinite(ref.ref_min) and math.isfinite(ref.ref_max) and ref.ref_max > ref.ref_min

    monkeypatch.setenv("BENCH_REFERENCE_DIR", str(tmp_path))
    card = tmp_path / "hopper" / "reference.json"
    card.parent.mkdir()
    for random_return, expert_return in [(250.0, 250.0), (0.0, math.nan)]:
        card.write_text(json.dumps({"env_id": "Hopper-v5", "episodes": 100,
                                    "random": {"mean_return": random_return},
                                    "expert": {"mean_return": expert_return}}))
        with pytest.raises(DatasetError, match=r"reference card .*reference\.json.*restore"):
            env_reference_scores("Hopper-v5")


def test_json_records_refuse_non_finite_numbers(tmp_path):
    """Row 6: atomic_write_json writes strict JSON; NaN or inf is refused, the old file kept."""
    from bench.io import atomic_write_json

    path = tmp_path / "result.json"
    atomic_write_json(path, {"normalized_score": 1.5})
    for bad in (math.nan, -math.inf, [1.0, math.inf]):
        with pytest.raises(ValueError, match="non-finite"):
            atomic_write_json(path, {"normalized_score": bad})
        assert json.loads(path.read_text()) == {"normalized_score": 1.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]  # no temp file left


@pytest.mark.parametrize("text", ['-Infinity', 'NaN', '1e999'])
def test_results_treat_a_non_finite_score_as_unreadable(tmp_path, capsys, text):
    """Row 6: a result.json written by an older version with a -Infinity / NaN score is left
    out as unreadable (and named), never shown as "-inf (n=1)"."""
    from bench.cli import main
    from bench.results import load_results

    d = tmp_path / "test__hopper__equalrefs-v0" / "bc" / "smoke" / "seed_0"
    d.mkdir(parents=True)
    (d / "result.json").write_text(
        '{"dataset": "test/hopper/equalrefs-v0", "algo": "bc", "seed": 0, "budget": "smoke", '
        f'"variant": "smoke", "normalized_score": {text}, "mean_return": 3.0, '
        '"episode_returns": [3.0], "ref_min": 100.0, "ref_max": 100.0}')
    runs = load_results(tmp_path)
    assert runs.empty and list(runs.attrs["skipped"]["status"]) == ["unreadable"]
    assert main(["results", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "inf" not in captured.out.lower() and "nan" not in captured.out.lower()
    assert "1 unreadable" in captured.err


# ---- row 8: one setting, one variant ------------------------------------------------------

def _req(tiny_dataset, out, lr, **kw):
    from bench.run import RunRequest

    return RunRequest(algo="bc", dataset=tiny_dataset, seed=kw.pop("seed", 0), budget="smoke",
                      overrides={"lr": lr, "num_updates": "4", "log_every": "2",
                                 "checkpoint_every": "2"},
                      out=out, eval_episodes=1, eval_mode="sync", **kw)


def _count_updates(monkeypatch):
    from bench.algos.bc import BehaviourCloning

    calls = []
    real = BehaviourCloning.update
    monkeypatch.setattr(BehaviourCloning, "update",
                        lambda self, batch, step: calls.append(1) or real(self, batch, step))
    return calls


def test_spellings_of_one_value_are_one_run(tiny_dataset, tmp_path, monkeypatch):
    """Row 8: --set lr=1e-3, lr=0.001 and lr=0.0010 made three run directories; now the first
    runs and the others find its result (canonical name, config.json and result.json agree),
    and a sweep naming both spellings has one run per seed."""
    from bench.run import execute, run_dir
    from bench.sweep import expand_all, make_spec

    updates = _count_updates(monkeypatch)
    first = execute(_req(tiny_dataset, tmp_path, "1e-3"), log=lambda m: None)
    assert len(updates) == 4
    for spelling in ("0.001", "0.0010", ".001"):
        assert execute(_req(tiny_dataset, tmp_path, spelling), log=lambda m: None) == first
    assert len(updates) == 4  # nothing trained again
    variants = [d.name for d in (tmp_path / tiny_dataset.replace("/", "__") / "bc").iterdir()]
    assert variants == ["smoke,checkpoint_every=2,log_every=2,lr=0.001,num_updates=4"]
    assert first["variant"] == variants[0] and first["overrides"]["lr"] == "0.001"
    config = json.loads((run_dir(_req(tiny_dataset, tmp_path, "1e-3")) / "config.json").read_text())
    assert config["overrides"]["lr"] == "0.001"

    grids = [{"algo": ["bc"], "dataset": [tiny_dataset], "seed": [0, 1], "budget": "smoke",
              "overrides": {"lr": lr, "hidden": hidden}}
             for lr, hidden in [("1e-3", "64,64"), ("0.001", "[64, 64]"), ("1E-03", " 64,64,")]]
    requests = expand_all([make_spec(g, {}) for g in grids], tmp_path)
    assert [(r.seed, r.overrides) for r in requests] == [
        (0, {"lr": "0.001", "hidden": "64,64"}), (1, {"lr": "0.001", "hidden": "64,64"})]


def test_a_run_under_an_older_spelling_is_found_not_rerun(tiny_dataset, tmp_path, monkeypatch):
    """Row 8: runs made before names were canonical live in ``smoke,...,lr=1e-3``; asking for
    lr=0.001 shows the finished one (not retrained) and resumes the unfinished one where it
    is, and results count both spellings as one variant."""
    from bench.results import incomplete_runs, load_results, score_table
    from bench.run import execute
    from conftest import SimulatedKill, kill_after

    quiet = lambda m: None  # noqa: E731
    algo_dir = tmp_path / tiny_dataset.replace("/", "__") / "bc"
    canonical = "smoke,checkpoint_every=2,log_every=2,lr=0.001,num_updates=4"
    old = "smoke,checkpoint_every=2,log_every=2,lr=1e-3,num_updates=4"
    execute(_req(tiny_dataset, tmp_path, "0.001"), log=quiet)
    with pytest.raises(SimulatedKill):
        execute(_req(tiny_dataset, tmp_path, "0.001", seed=1), log=quiet, callbacks=kill_after(2))
    # As the old code left them: the directory and the records under the spelling typed.
    (algo_dir / canonical).rename(algo_dir / old)
    for record in (algo_dir / old).glob("seed_*/*.json"):
        data = json.loads(record.read_text())
        if "overrides" in data:
            data["overrides"]["lr"] = "1e-3"
            data["variant"] = old
            record.write_text(json.dumps(data))
    finished = json.loads((algo_dir / old / "seed_0" / "result.json").read_text())
    assert set(incomplete_runs(tmp_path)["variant"]) == {canonical}

    updates = _count_updates(monkeypatch)
    messages = []
    assert execute(_req(tiny_dataset, tmp_path, "0.001"), log=messages.append) == finished
    assert updates == [] and any("older spelling" in m for m in messages)
    resumed = execute(_req(tiny_dataset, tmp_path, "0.0010", seed=1, resume=True), log=quiet)
    assert len(updates) == 2  # from its step-2 checkpoint to 4, in the old directory
    assert resumed["variant"] == canonical
    assert sorted(d.name for d in algo_dir.iterdir()) == [old]
    assert (algo_dir / old / "seed_1" / "result.json").exists()

    execute(_req(tiny_dataset, tmp_path, "1e-3", seed=2), log=quiet)  # a new seed: canonical
    assert sorted(d.name for d in algo_dir.iterdir()) == sorted([old, canonical])
    table = score_table(load_results(tmp_path))
    assert list(table["variant"]) == [canonical] and list(table["seeds"]) == [3]


def test_an_infinite_bound_is_kept_in_strict_json(tiny_dataset, tmp_path):
    """Row 6 (strict JSON everywhere): --set grad_clip=inf ("no clipping") is a value, and its
    run's config.json holds it as the text "inf", which reads back as the number."""
    from bench.algos.dt import DTConfig
    from bench.config import config_from_dict
    from bench.run import RunRequest, execute, run_dir

    req = RunRequest(algo="dt", dataset=tiny_dataset, budget="smoke", out=tmp_path,
                     overrides={"grad_clip": "inf", "num_updates": "2"}, eval_episodes=1,
                     eval_mode="sync")
    execute(req, log=lambda m: None)

    def strict(constant):
        raise ValueError(f"{constant} is not JSON")

    saved = json.loads((run_dir(req) / "config.json").read_text(), parse_constant=strict)
    assert saved["config"]["grad_clip"] == "inf"
    assert config_from_dict(DTConfig, saved["config"]).grad_clip == math.inf


def test_a_set_equal_to_the_budgets_value_is_the_budgets_run(tmp_path):
    """``--budget smoke --set num_updates=20`` (bc's smoke value) is bc's smoke run, one
    directory; a value the budget does not give is a variant of its own."""
    from bench.run import RunRequest, run_dir

    def where(**overrides: str):
        return run_dir(RunRequest(algo="bc", dataset="hopper-random", budget="smoke",
                                  overrides=overrides, out=tmp_path))

    assert where(num_updates="20") == where() == where(num_updates="2e1")
    assert where(num_updates="21").parent.name == "smoke,num_updates=21"
    assert where(num_updates="20", lr="0.001").parent.name == "smoke,lr=0.001"
    # dt_vicreg's preset weight is its starting value: setting it again is the same run.
    assert (run_dir(RunRequest(algo="dt_vicreg", dataset="hopper-random", budget="smoke",
                               overrides={"vicreg_weight": "0.1"}, out=tmp_path))
            == run_dir(RunRequest(algo="dt_vicreg", dataset="hopper-random", budget="smoke",
                                  out=tmp_path)))


def test_records_made_before_a_field_was_renamed_are_found_under_the_new_name():
    """The committed goal-setter records live in ``full,max_offset=5,num_updates=300000``; the
    sweep now asks for ``total_env_steps=300000``: the same runs, found, not retrained (a
    field sorting before the renamed one must not swallow it)."""
    from pathlib import Path

    from bench.records import older_spelling

    records = Path(__file__).resolve().parents[1] / "reports/goal-setter/records/Hopper-v5"
    for algo, canonical in (("gs_ppo_joint", "full,max_offset=5,total_env_steps=300000"),
                            ("ppo", "full,total_env_steps=300000")):
        found = older_spelling(records / algo, algo, 0, canonical)
        assert found is not None and found.parent.name == canonical.replace(
            "total_env_steps", "num_updates"), (algo, found)
