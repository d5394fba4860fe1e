import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from bench import reference
from bench.data import storage
from bench.data.catalog import ALIASES
from bench.data.resolve import resolve
from bench.making.makers import make_alias
from bench.errors import DatasetError
from bench.run import RunRequest, execute, run_dir


@pytest.fixture(scope="module")
def picked(tmp_path_factory):
    """A (tiny, barely trained) PPO run's snapshots picked as hopper reference policies."""
    tmp = tmp_path_factory.mktemp("ref")
    req = RunRequest(algo="ppo", dataset=None, env="Hopper-v5", seed=0, budget="smoke",
                     overrides={"snapshot_every": "256"}, eval_episodes=2, out=tmp / "runs")
    execute(req, log=lambda m: None)
    mp = pytest.MonkeyPatch()
    mp.setattr(reference, "REFERENCE_EPISODES", 4)
    mp.setattr(reference, "SCREEN_EPISODES", 2)
    # A barely trained PPO's screening order is noise, and pick refuses a run whose first
    # snapshot screens best (no earlier one can be the medium policy): later snapshots screen a
    # little higher here; the expert and medium returns are measured as they are. Such an
    # expert may not beat the random policy, which pick refuses (no usable reference pair):
    # the random policy measures 1000 lower here.
    real, order = reference._returns, itertools.count()
    mp.setattr(reference, "_returns", lambda policy, env_id, episodes, seed: (
        real(policy, env_id, episodes, seed)
        + (1000.0 * next(order) if episodes == reference.SCREEN_EPISODES else 0.0)
        - (1000.0 if isinstance(policy, reference.UniformRandomPolicy) else 0.0)))
    card = reference.pick(run_dir(req), "Hopper-v5", tmp / "refs" / "hopper", log=lambda m: None)
    mp.setenv("BENCH_REFERENCE_DIR", str(tmp / "refs"))
    yield card, tmp
    mp.undo()


def test_pick_records_policies_with_checksums_and_returns(picked):
    card, tmp = picked
    assert [s["file"] for s in card["screening"]] == [f"step_{n:09d}.pt" for n in (256, 512, 768, 1024)]
    best = max(card["screening"], key=lambda s: s["mean_return_10"])
    assert card["expert"]["snapshot"] == best["file"]
    assert card["medium"]["env_steps"] < card["expert"]["env_steps"]
    for which in ("expert", "medium"):
        assert card[which]["sha256"] == reference.file_sha256(tmp / "refs" / "hopper" / f"{which}.pt")
    assert "random" in card and card["episodes"] == 4
    text = (tmp / "refs" / "hopper" / "README.md").read_text()
    assert card["expert"]["sha256"] in text and "Retraining" in text


def test_a_run_whose_first_snapshot_screens_best_has_no_medium_policy(picked, monkeypatch):
    """The medium policy is an earlier snapshot than the expert; with none earlier, pick used to
    copy the expert as medium.pt silently."""
    _, tmp = picked
    req = RunRequest(algo="ppo", dataset=None, env="Hopper-v5", seed=0, budget="smoke",
                     overrides={"snapshot_every": "256"}, eval_episodes=2, out=tmp / "runs")
    screens = iter([100.0, 50.0, 40.0, 30.0])
    monkeypatch.setattr(reference, "_returns",
                        lambda policy, env_id, episodes, seed: np.full(episodes, next(screens)))
    with pytest.raises(DatasetError, match="screens best, so no earlier snapshot"):
        reference.pick(run_dir(req), "Hopper-v5", tmp / "other", log=lambda m: None)
    assert not (tmp / "other").exists()


def test_pick_takes_the_earlier_snapshot_nearest_a_third_of_the_expert(picked, monkeypatch):
    """The D4RL recipe with known returns: expert = the best screen (step 1024, 900); medium =
    of the earlier snapshots, the one whose measured return is nearest 900 / 3 = 300 (step 512,
    screened 320, measured 310), not simply the one before the expert."""
    from pathlib import Path

    _, tmp = picked
    req = RunRequest(algo="ppo", dataset=None, env="Hopper-v5", seed=0, budget="smoke",
                     overrides={"snapshot_every": "256"}, eval_episodes=2, out=tmp / "runs")
    screens = {256: 100.0, 512: 320.0, 768: 700.0, 1024: 900.0}
    measured = {256: 110.0, 512: 310.0, 768: 690.0, 1024: 900.0}
    monkeypatch.setattr(reference, "load_policy", lambda path, **kw: path)

    def returns(policy, env_id, episodes, seed):
        if not isinstance(policy, Path):  # the uniform random policy
            return np.full(episodes, 5.0)
        table = screens if episodes == reference.SCREEN_EPISODES else measured
        return np.full(episodes, table[int(policy.stem.split("_")[1])])

    monkeypatch.setattr(reference, "_returns", returns)
    card = reference.pick(run_dir(req), "Hopper-v5", tmp / "rule", log=lambda m: None)
    assert card["expert"]["env_steps"] == 1024 and card["expert"]["mean_return"] == 900.0
    assert card["medium"]["env_steps"] == 512 and card["medium"]["mean_return"] == 310.0


def test_an_expert_no_better_than_random_is_refused(picked, monkeypatch):
    """Issue 24 row 6: the card's random and expert returns normalize every score of the family;
    an expert that does not beat the random policy (ref_max <= ref_min) made cards whose every
    score was -inf or upside down. Refused before anything is written."""
    from pathlib import Path

    _, tmp = picked
    req = RunRequest(algo="ppo", dataset=None, env="Hopper-v5", seed=0, budget="smoke",
                     overrides={"snapshot_every": "256"}, eval_episodes=2, out=tmp / "runs")
    monkeypatch.setattr(reference, "load_policy", lambda path, **kw: path)
    monkeypatch.setattr(reference, "_returns", lambda policy, env_id, episodes, seed: np.full(
        episodes, 20.0 if not isinstance(policy, Path) else int(policy.stem.split("_")[1]) / 100))
    with pytest.raises(DatasetError, match="ref_max above ref_min.*train longer"):
        reference.pick(run_dir(req), "Hopper-v5", tmp / "worse", log=lambda m: None)
    assert not (tmp / "worse").exists()


def test_policy_datasets_and_their_union(picked, tmp_path, monkeypatch):
    card, _ = picked
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    make_alias(ALIASES["hopper-medium-expert"], num_transitions=400, seed=0)
    meta = {k: storage.read_metadata(ALIASES[k].local_id) for k in ("hopper-medium", "hopper-expert",
                                                                    "hopper-medium-expert")}
    for k, m in meta.items():
        assert m["ref_min_score"] == card["random"]["mean_return"]
        assert m["ref_max_score"] == card["expert"]["mean_return"]
        assert m["bench_provenance"]["source"] == "self-generated"
    assert meta["hopper-expert"]["bench_provenance"]["policy_sha256"] == card["expert"]["sha256"]
    assert meta["hopper-medium"]["bench_provenance"]["policy_sha256"] == card["medium"]["sha256"]
    # medium-expert = medium ∪ expert, episode for episode.
    flats = {k: storage.load_flat(ALIASES[k].local_id, m["data_sha256"]) for k, m in meta.items()}
    both = flats["hopper-medium-expert"]
    np.testing.assert_array_equal(both.actions, np.concatenate([flats["hopper-medium"].actions,
                                                                flats["hopper-expert"].actions]))
    assert both.num_episodes == flats["hopper-medium"].num_episodes + flats["hopper-expert"].num_episodes
    cold = storage._read_episodes(storage.data_file(ALIASES["hopper-medium-expert"].local_id))
    np.testing.assert_array_equal(cold.observations, both.observations)
    assert resolve("hopper-medium-expert").ref_scores.ref_max == card["expert"]["mean_return"]
    # The union records how it was made: both parts made now, with this seed and a share of the size.
    union = meta["hopper-medium-expert"]["bench_provenance"]
    assert (union["seed"], union["requested_transitions"]) == (0, 400) and union["versions"]
    assert [(c["made_now"], c["seed"], c["requested_transitions"]) for c in union["components"]] \
        == [(True, 0, 200), (True, 0, 200)]
    # Remade with --force, the present parts are reused as they are, and it says so.
    make_alias(ALIASES["hopper-medium-expert"], num_transitions=400, seed=5, force=True)
    again = storage.read_metadata(ALIASES["hopper-medium-expert"].local_id)["bench_provenance"]
    assert again["seed"] is None and [c["made_now"] for c in again["components"]] == [False, False]
    assert [c["seed"] for c in again["components"]] == [0, 0]


def test_tampered_reference_policy_is_refused(picked, tmp_path, monkeypatch):
    _, tmp = picked
    src = tmp / "refs" / "hopper"
    dst = tmp_path / "refs" / "hopper"
    dst.mkdir(parents=True)
    for f in src.iterdir():
        dst.joinpath(f.name).write_bytes(f.read_bytes())
    data = bytearray(dst.joinpath("expert.pt").read_bytes())
    data[-10] ^= 0xFF
    dst.joinpath("expert.pt").write_bytes(bytes(data))
    monkeypatch.setenv("BENCH_REFERENCE_DIR", str(tmp_path / "refs"))
    with pytest.raises(DatasetError, match="sha256"):
        reference.load_reference_policy("hopper", "expert", seed=0)


def test_random_dataset_and_online_runs_use_the_family_reference_scores(picked, tmp_path, monkeypatch):
    from bench.data.cards import env_reference_scores

    card, _ = picked
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    meta = make_alias(ALIASES["hopper-random"], num_transitions=200, seed=0, log=lambda m: None)
    assert (meta["ref_min_score"], meta["ref_max_score"]) == (card["random"]["mean_return"],
                                                              card["expert"]["mean_return"])
    assert "reference.json" in meta["bench_provenance"]["ref_scores_source"]
    assert env_reference_scores("Hopper-v5").ref_max == card["expert"]["mean_return"]


def test_medium_replay_is_the_training_that_led_to_the_medium_policy(picked, tmp_path, monkeypatch):
    card, _ = picked
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    meta = make_alias(ALIASES["hopper-medium-replay"], log=lambda m: None)
    assert meta["bench_provenance"]["policy_sha256"] == card["medium"]["sha256"]
    assert meta["bench_provenance"]["replay_max_parameter_difference"] == 0.0  # same machine
    flat = storage.load_flat(ALIASES["hopper-medium-replay"].local_id, meta["data_sha256"])
    # Complete episodes from training order: at most the medium snapshot's env steps.
    assert 0 < flat.num_transitions <= card["medium"]["env_steps"]
    assert (flat.terminations | flat.truncations).sum() == flat.num_episodes
    # Made twice, the same arrays (the replay is deterministic).
    make_alias(ALIASES["hopper-medium-replay"], force=True, log=lambda m: None)
    again = storage.load_flat(ALIASES["hopper-medium-replay"].local_id,
                              storage.read_metadata(ALIASES["hopper-medium-replay"].local_id)["data_sha256"])
    np.testing.assert_array_equal(again.observations, flat.observations)


def test_medium_replay_on_a_cpu_that_computes_differently_is_labelled_or_refused(
        picked, tmp_path, monkeypatch):
    """A replay that does not end exactly at medium.pt (here: the reference nudged by 1e-3, as a
    CPU with other vector instructions would do) is written with replay_verified saying NO and the
    difference, or refused with BENCH_STRICT_REPLAY=1, leaving nothing behind."""
    import torch

    _, tmp = picked
    refs = tmp_path / "refs" / "hopper"
    refs.mkdir(parents=True)
    for f in (tmp / "refs" / "hopper").iterdir():
        refs.joinpath(f.name).write_bytes(f.read_bytes())
    medium = torch.load(refs / "medium.pt", weights_only=False)
    first = next(iter(medium["actor_mean"]))
    medium["actor_mean"][first] = medium["actor_mean"][first] + 1e-3
    torch.save(medium, refs / "medium.pt")
    monkeypatch.setenv("BENCH_REFERENCE_DIR", str(tmp_path / "refs"))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    alias = ALIASES["hopper-medium-replay"]

    monkeypatch.setenv("BENCH_STRICT_REPLAY", "1")
    with pytest.raises(DatasetError, match="BENCH_STRICT_REPLAY"):
        make_alias(alias, log=lambda m: None)
    assert not storage.data_file(alias.local_id).exists()

    monkeypatch.delenv("BENCH_STRICT_REPLAY")
    meta = make_alias(alias, log=lambda m: None)
    provenance = meta["bench_provenance"]
    assert provenance["replay_verified"].startswith("NO")
    assert provenance["replay_max_parameter_difference"] == pytest.approx(1e-3, rel=1e-3)
    assert storage.data_file(alias.local_id).exists()


def test_a_sac_card_names_its_trainer_and_retraining_command():
    """A card picked from a SAC run says SAC, retrains with --algo sac, and does not claim the
    hopper PPO replay (the committed hopper card, re-labelled as a Walker2d SAC run)."""
    card = json.loads((Path(__file__).parents[1] / "assets/hopper/reference.json").read_text())
    card["env_id"] = "Walker2d-v5"
    card["training"] = {**card["training"], "algo": "sac", "env_id": "Walker2d-v5"}
    card["expert"]["train_overrides"] = {"snapshot_every": "50000"}
    text = reference.render_card(card)
    assert "snapshots of one SAC run" in text and "| SAC env steps |" in text
    assert "bench run --algo sac --env Walker2d-v5 --budget full" in text
    assert "pick results/Walker2d-v5/sac/<variant>/seed_0 --env Walker2d-v5 --out assets/walker2d" in text
    assert "PPO" not in text and "hopper-medium-replay" not in text
