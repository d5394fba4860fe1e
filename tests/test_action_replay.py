"""Medium-replay of SAC-trained families (issue 27): a SAC run's recorded actions, replayed in
the simulator, give back exactly the transitions its training saw (``bench.making.replay``)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SimulatedKill, kill_after

from bench.data import storage
from bench.data.catalog import ALIASES
from bench.errors import DatasetError
from bench.making.makers import make_alias
from bench.making.replay import load_action_record, replay, save_action_record
from bench.run import RunRequest, execute, run_dir

QUIET = lambda m: None
STEPS = 600
RUN = {"algo": "sac", "dataset": None, "env": "Hopper-v5", "budget": "smoke", "eval_episodes": 1,
       "eval_mode": "sync", "seed": 2}
OVERRIDES = {"total_env_steps": str(STEPS), "record_steps": str(STEPS), "buffer_size": "1000",
             "checkpoint_every": "200", "log_every": "200"}


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory):
    """A 600-step SAC run on Hopper-v5 (smoke networks) that records its training: dozens of
    short episodes, ended by falls (terminated)."""
    out = tmp_path_factory.mktemp("sac")
    req = RunRequest(out=out, overrides=OVERRIDES, **RUN)
    execute(req, log=QUIET)
    return run_dir(req)


def _checkpoint(directory: Path) -> dict:
    return torch.load(directory / "checkpoint.pt", map_location="cpu", weights_only=False)


def test_the_replayed_actions_give_back_every_transition_the_training_stored(sac_run, tmp_path):
    record = save_action_record(sac_run / "checkpoint.pt", 450, tmp_path / "medium_replay.npz")
    data = load_action_record(tmp_path / "medium_replay.npz", record["sha256"])
    # Cut after the last episode that ended by step 450.
    assert record["transitions"] == data["episode_lengths"].sum() <= 450
    assert record["episodes"] == len(data["episode_lengths"]) > 5
    result = replay("Hopper-v5", data, desc="test")
    assert result.differing == 0 and result.max_return_difference == 0.0

    # The training's own replay buffer (a row per env step: s | a | r | s' | terminated) holds
    # what the env gave: the replay's observations, rewards and terminations, to the bit.
    rows = _checkpoint(sac_run)["algo"]["buffer"]["rows"][:record["transitions"]].numpy()
    obs_dim = 11
    s, r, s_next, terminated = rows[:, :obs_dim], rows[:, obs_dim + 3], rows[:, -obs_dim - 1:-1], rows[:, -1]
    replayed = result.episodes
    np.testing.assert_array_equal(
        np.concatenate([e.observations[:-1] for e in replayed]).astype(np.float32), s)
    np.testing.assert_array_equal(
        np.concatenate([e.observations[1:] for e in replayed]).astype(np.float32), s_next)
    np.testing.assert_array_equal(np.concatenate([e.rewards for e in replayed]).astype(np.float32), r)
    np.testing.assert_array_equal(np.concatenate([e.terminations for e in replayed]), terminated == 1)


def test_a_changed_action_is_seen_as_a_different_training(sac_run, tmp_path):
    record = save_action_record(sac_run / "checkpoint.pt", 450, tmp_path / "medium_replay.npz")
    data = load_action_record(tmp_path / "medium_replay.npz", record["sha256"])
    data["actions"][3] += 0.5  # the first episode's fourth step
    result = replay("Hopper-v5", data, desc="test")
    assert result.differing >= 1 and result.max_return_difference > 0


def test_a_run_without_a_record_or_too_short_a_one_is_refused(sac_run, tmp_path):
    with pytest.raises(DatasetError, match="record_steps=900"):
        save_action_record(sac_run / "checkpoint.pt", 900, tmp_path / "r.npz")
    state = _checkpoint(sac_run)
    state["algo"]["record"] = None
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(DatasetError, match="--set record_steps=N"):
        save_action_record(tmp_path / "checkpoint.pt", 300, tmp_path / "r.npz")
    assert not (tmp_path / "r.npz").exists()


def test_the_record_survives_a_kill_and_resume(sac_run, tmp_path):
    req = RunRequest(out=tmp_path, overrides=OVERRIDES, **RUN)
    with pytest.raises(SimulatedKill):
        execute(req, log=QUIET, callbacks=kill_after(300))
    execute(RunRequest(out=tmp_path, overrides=OVERRIDES, resume=True, **RUN), log=QUIET)
    resumed, whole = _checkpoint(run_dir(req))["algo"]["record"], _checkpoint(sac_run)["algo"]["record"]
    assert resumed["size"] == whole["size"] == STEPS
    for key in ("actions", "rewards", "ends"):
        np.testing.assert_array_equal(resumed[key], whole[key])


def _sac_family(sac_run: Path, refs: Path) -> dict:
    """The committed hopper card, as if its policies came from ``sac_run`` with its record."""
    family = refs / "hopper"
    shutil.copytree(Path(__file__).parents[1] / "assets" / "hopper", family)
    card = json.loads((family / "reference.json").read_text())
    card["training"] = {**card["training"], "algo": "sac"}
    card["medium"]["env_steps"] = 450
    card["medium_replay"] = save_action_record(sac_run / "checkpoint.pt", 450,
                                               family / "medium_replay.npz")
    (family / "reference.json").write_text(json.dumps(card))
    return card


def test_medium_replay_of_a_sac_family_is_made_from_its_action_record(sac_run, tmp_path, monkeypatch):
    card = _sac_family(sac_run, tmp_path / "refs")
    monkeypatch.setenv("BENCH_REFERENCE_DIR", str(tmp_path / "refs"))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    alias = ALIASES["hopper-medium-replay"]
    meta = make_alias(alias, log=QUIET)
    provenance = meta["bench_provenance"]
    assert provenance["replay_differing_episodes"] == 0
    assert not provenance["replay_verified"].startswith("NO")
    assert meta["algorithm_name"] == "sac-training-replay"
    flat = storage.load_flat(alias.local_id, meta["data_sha256"])
    assert flat.num_transitions == card["medium_replay"]["transitions"]
    assert flat.num_episodes == card["medium_replay"]["episodes"]


def test_a_tampered_action_record_is_refused_before_anything_is_made(sac_run, tmp_path, monkeypatch):
    _sac_family(sac_run, tmp_path / "refs")
    path = tmp_path / "refs" / "hopper" / "medium_replay.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["actions"][0] += 0.25
    np.savez_compressed(path, **arrays)
    monkeypatch.setenv("BENCH_REFERENCE_DIR", str(tmp_path / "refs"))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    alias = ALIASES["hopper-medium-replay"]
    with pytest.raises(DatasetError, match="restore it from git"):
        make_alias(alias, log=QUIET)
    assert not storage.data_file(alias.local_id).exists()
