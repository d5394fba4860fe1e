import json
import os
import shutil

import minari
import numpy as np
import pytest

from bench.data import get_dataset, qlearning_dataset, resolve, storage
from bench.data.catalog import ALIASES, REFERENCE_SCORES
from bench.making.makers import make_alias
from bench.errors import DatasetError, UsageError
from conftest import run_cli


def test_tiny_dataset_is_a_real_minari_dataset_with_provenance(tiny_dataset):
    ds = minari.load_dataset(tiny_dataset)
    assert ds.total_episodes == 30
    meta = storage.read_metadata(tiny_dataset)
    assert meta["bench_provenance"]["source"] == "self-generated"
    assert "versions" in meta["bench_provenance"]
    assert meta["data_sha256"] == storage.sha256_file(storage.data_file(tiny_dataset))
    assert ds.recover_environment().spec.id == "Hopper-v5"


def test_resolve_local_id_and_provenance(tiny_dataset):
    ds = resolve(tiny_dataset)
    assert ds.source == "self-generated"
    prov = ds.provenance()
    assert prov["sha256"] == ds.metadata["data_sha256"]
    assert (prov["ref_min"], prov["ref_max"]) == (0.0, 100.0)


def test_unknown_dataset_names_close_matches():
    with pytest.raises(UsageError, match="hopper-medium"):
        resolve("hopper-meduim")


def test_missing_local_id_is_a_clear_error():
    with pytest.raises(DatasetError, match="MINARI_DATASETS_PATH"):
        resolve("nobody/hopper/none-v0")


def test_official_dataset_in_local_root_wins_over_own(tmp_path, tiny_dataset, monkeypatch):
    """(a) of the resolution order: an official dataset already on disk is used as is."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    src = os.path.join(os.environ["MINARI_TEST_ROOT"], tiny_dataset)
    shutil.copytree(src, tmp_path / "mujoco/hopper/medium-v0")
    meta_path = tmp_path / "mujoco/hopper/medium-v0/data/metadata.json"
    meta = json.loads(meta_path.read_text())
    for key in ("bench_provenance", "data_sha256", "ref_min_score", "ref_max_score"):
        meta.pop(key)  # official v0 metadata carries none of these
    meta_path.write_text(json.dumps(meta))
    ds = resolve("hopper-medium")
    assert ds.dataset_id == "mujoco/hopper/medium-v0" and ds.source == "official (local)"
    ref = ds.ref_scores
    assert ref == REFERENCE_SCORES["mujoco/hopper/medium-v0"] and "D4RL" in ref.source


def test_download_attempt_fails_fast_offline(monkeypatch):
    import importlib

    resolve_mod = importlib.import_module("bench.data.resolve")  # the module, not the function

    monkeypatch.delenv("BENCH_OFFLINE")
    monkeypatch.setattr(resolve_mod, "HUB_HOST", "hub.invalid")  # unresolvable: like offline
    messages = []
    import time

    start = time.perf_counter()
    assert resolve_mod.try_download("mujoco/hopper/medium-v0", log=messages.append) is False
    assert time.perf_counter() - start < 10
    assert "unreachable" in messages[0]


def test_medium_without_policy_explains_what_to_do(monkeypatch):
    from bench.making.makers import make_on_first_use

    with pytest.raises(DatasetError, match="reference policy"):
        resolve("hopper-medium", make=make_on_first_use)
    # Without a maker the data layer only reads: a missing alias says how to make it.
    with pytest.raises(DatasetError, match="bench datasets make hopper-medium"):
        resolve("hopper-medium")


def test_make_refuses_to_overwrite_and_force_keeps_a_backup(isolated_roots):
    alias = ALIASES["hopper-random"]
    meta = make_alias(alias, num_transitions=300, seed=0, log=lambda m: None)
    assert meta["total_steps"] >= 300
    prov = meta["bench_provenance"]
    assert prov["source"] == "self-generated" and prov["seed"] == 0
    assert "provisional" in prov["ref_max_source"]
    with pytest.raises(DatasetError, match="already exists"):
        make_alias(alias, num_transitions=300, seed=0)
    make_alias(alias, num_transitions=300, seed=1, force=True, log=lambda m: None)
    backups = list((isolated_roots["cache"] / "backups").iterdir())
    assert any(b.name.startswith("bench_hopper_random-v0") for b in backups)
    # Same seed → same data (checksum of the arrays, not the file: HDF5 stamps times).
    make_alias(alias, num_transitions=300, seed=0, force=True, log=lambda m: None)
    again = get_dataset("hopper-random")
    old = [b for b in backups][0]
    import h5py

    with h5py.File(old / "data" / "main_data.hdf5") as f:
        np.testing.assert_array_equal(f["episode_0"]["actions"][()], again["actions"][:len(f["episode_0"]["actions"])])


def test_d4rl_style_dicts(tiny_dataset):
    d = get_dataset(tiny_dataset)
    n = len(d["actions"])
    assert d["observations"].shape == (n, 11) and d["actions"].shape == (n, 3)
    assert d["rewards"].shape == d["terminals"].shape == d["timeouts"].shape == (n,)
    assert d["terminals"].sum() + d["timeouts"].sum() == 30
    q = qlearning_dataset(tiny_dataset)
    # next_observations[i] is observations[i+1] except at episode ends.
    inside = ~(q["terminals"] | q["timeouts"])
    np.testing.assert_array_equal(q["next_observations"][:-1][inside[:-1]],
                                  q["observations"][1:][inside[:-1]])


def test_corrupt_file_is_named_and_never_deleted(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    src = os.path.join(os.environ["MINARI_TEST_ROOT"], tiny_dataset)
    shutil.copytree(src, tmp_path / tiny_dataset)
    data = tmp_path / tiny_dataset / "data" / "main_data.hdf5"
    data.write_bytes(data.read_bytes()[:2000])  # truncated
    ds = resolve(tiny_dataset)
    from bench.data import load_flat

    with pytest.raises(DatasetError, match="main_data.hdf5") as err:
        load_flat(ds.dataset_id, storage.sha256_file(data))
    assert "make it again" in str(err.value)
    assert data.exists()
    # The CLI verify command reports the checksum mismatch with exit code 1.
    proc = run_cli("datasets", "verify", tiny_dataset)
    assert proc.returncode == 1 and "MISMATCH" in proc.stdout


def test_a_changed_data_file_is_reported_and_its_repair_never_shadowed(tiny_dataset, tmp_path,
                                                                       monkeypatch):
    from bench.data.storage import _cache_path, _read_episodes

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))  # empty: the first open reads
    shutil.copytree(os.path.join(os.environ["MINARI_TEST_ROOT"], tiny_dataset),
                    tmp_path / tiny_dataset)
    data = tmp_path / tiny_dataset / "data" / "main_data.hdf5"
    good = data.read_bytes()
    sha = storage.read_metadata(tiny_dataset)["data_sha256"]
    damaged = bytearray(good)
    damaged[len(good) // 2:len(good) // 2 + 64] = b"\xff" * 64  # same size, other bytes
    data.write_bytes(bytes(damaged))
    with pytest.raises(DatasetError, match="does not match the sha256"):
        storage.load_flat(tiny_dataset, sha)
    assert data.read_bytes() == bytes(damaged), "nothing is deleted or rewritten"
    assert not _cache_path(sha).exists(), "nothing read from a damaged file is cached"
    data.write_bytes(good)  # repaired: read, cached, equal to the good file's episodes
    flat = storage.load_flat(tiny_dataset, sha)
    np.testing.assert_array_equal(flat.observations, _read_episodes(data).observations)
    # Damaged again while a cache entry exists: reported, not trained on from the cache.
    data.write_bytes(bytes(damaged))
    with pytest.raises(DatasetError, match="does not match the sha256"):
        storage.load_flat(tiny_dataset, sha)
    data.unlink()
    with pytest.raises(DatasetError, match="has no data file"):
        storage.load_flat(tiny_dataset, sha)
    data.write_bytes(good)
    # A broken cache entry (empty, truncated) is rebuilt from the file, not a traceback.
    entry = _cache_path(sha)
    for broken in (b"", entry.read_bytes()[:100]):
        entry.write_bytes(broken)
        again = storage.load_flat(tiny_dataset, sha)
        np.testing.assert_array_equal(again.actions, flat.actions)


def test_verify_all_names_broken_datasets(tiny_dataset, tmp_path, monkeypatch):
    """`datasets verify` with no name: a dataset missing its metadata or its data file, or with
    metadata that is not a JSON object, is reported (exit 1), never skipped or a traceback."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    src = os.path.join(os.environ["MINARI_TEST_ROOT"], tiny_dataset)
    damage = {"metadata.json": None, "main_data.hdf5": None, "metadata.json ": "[]",
              "metadata.json  ": b"\xff\xfe"}
    for what, content in damage.items():
        target = tmp_path / tiny_dataset
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(src, target)
        path = target / "data" / what.strip()
        if content is None:
            path.unlink()
        else:
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        proc = run_cli("datasets", "verify")
        assert proc.returncode == 1, (what, proc.stdout, proc.stderr)
        assert tiny_dataset in proc.stdout and "Traceback" not in proc.stderr, (what, proc.stderr)


@pytest.mark.parametrize("field, value, message", [
    ("env_spec", "{not json", "env_spec cannot be read"),
    ("ref_min_score", "x", "reference scores are not numbers"),
])
def test_damaged_metadata_fields_are_clear_errors(tiny_dataset, tmp_path, monkeypatch, field, value,
                                                  message):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    shutil.copytree(os.path.join(os.environ["MINARI_TEST_ROOT"], tiny_dataset), tmp_path / tiny_dataset)
    path = storage.metadata_file(tiny_dataset)
    meta = json.loads(path.read_text())
    meta[field] = value
    path.write_text(json.dumps(meta))
    proc = run_cli("run", "--algo", "bc", "--dataset", tiny_dataset, "--budget", "smoke",
                   "--eval-episodes", "2", "--out", str(tmp_path / "runs"))
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_made_datasets_are_cached_flat_and_match_a_cold_read(tiny_dataset):
    from bench.data.storage import _cache_path, _read_episodes

    sha = storage.read_metadata(tiny_dataset)["data_sha256"]
    assert _cache_path(sha).exists(), "write_dataset caches the flat arrays"
    cached = storage.load_flat(tiny_dataset, sha)
    cold = _read_episodes(storage.data_file(tiny_dataset))
    for field in ("observations", "actions", "rewards", "terminations", "truncations",
                  "episode_lengths"):
        np.testing.assert_array_equal(getattr(cached, field), getattr(cold, field))


def test_async_and_sync_collection_give_identical_episodes(monkeypatch):
    import gymnasium as gym

    from bench.making.generate import UniformRandomPolicy, collect_episodes

    made = []  # the vector env classes collection used (forcing one for both passed before)
    for name in ("SyncVectorEnv", "AsyncVectorEnv"):
        real = getattr(gym.vector, name)
        monkeypatch.setattr(gym.vector, name, type(name, (real,), {
            "__init__": lambda self, *a, _real=real, _name=name, **k: (
                made.append(_name), _real.__init__(self, *a, **k))[1]}))

    def make_env():
        return gym.make("Hopper-v5", max_episode_steps=40)

    low, high = -np.ones(3, np.float32), np.ones(3, np.float32)
    runs = [collect_episodes(make_env, UniformRandomPolicy(low, high, seed=3), num_transitions=500,
                             seed=7, num_envs=4, vectorization=mode) for mode in ("sync", "async")]
    assert made == ["SyncVectorEnv", "AsyncVectorEnv"]
    assert len(runs[0]) == len(runs[1]) and sum(len(b.actions) for b in runs[0]) >= 500
    for a, b in zip(*runs):
        assert a.seed == b.seed
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
    # Episode i is reset with seed + i: the first episode starts where a plain reset does.
    first_obs, _ = make_env().reset(seed=7)
    np.testing.assert_array_equal(runs[0][0].observations[0], first_obs)


def test_making_a_dataset_twice_gives_byte_identical_files(tmp_path, monkeypatch):
    shas = []
    for name in ("a", "b"):
        monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / name))
        monkeypatch.setenv("BENCH_CACHE", str(tmp_path / name / "cache"))
        meta = make_alias(ALIASES["hopper-random"], num_transitions=400, seed=5, log=lambda m: None)
        shas.append(meta["data_sha256"])
    assert shas[0] == shas[1]


def test_combining_parts_of_different_encoders_is_refused(monkeypatch):
    """carracing-medium-expert from parts whose latents came from different encoders would mix
    two observation spaces: refused before anything is combined."""
    from bench.data import storage
    from bench.making import makers
    from bench.data.catalog import ALIASES
    from bench.errors import DatasetError

    metas = {ALIASES["carracing-medium"].local_id: {"bench_provenance": {"encoder_sha256": "a" * 64}},
             ALIASES["carracing-expert"].local_id: {"bench_provenance": {"encoder_sha256": "b" * 64}}}
    monkeypatch.setattr(storage, "is_present", lambda dataset_id: dataset_id in metas)
    monkeypatch.setattr(storage, "read_metadata", metas.__getitem__)
    alias = ALIASES["carracing-medium-expert"]
    with pytest.raises(DatasetError, match="different Car Racer encoders"):
        makers.MAKERS[alias.generator](alias, num_transitions=alias.default_transitions, seed=0)


def test_a_missing_official_id_names_minari_download_and_its_alias():
    """An official Minari id not on disk: how to fetch it, and the alias that takes it when
    present and otherwise makes the suite's own (an unknown id is offered the aliases)."""
    with pytest.raises(DatasetError, match=r"`minari download mujoco/hopper/medium-v0` fetches "
                       r"it.*`--dataset hopper-medium` uses it once it is there"):
        resolve("mujoco/hopper/medium-v0")
    with pytest.raises(DatasetError, match=r"or use an alias: .*hopper-medium"):
        resolve("mujoco/nothing/medium-v0")
