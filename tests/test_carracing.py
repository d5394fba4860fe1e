"""Car Racer: driver, encoder, latent env and a tiny latent dataset made here.

The tests use a randomly initialised encoder saved into a temporary reference directory (the
committed one is not needed to check the plumbing) and a reference card written by the test."""
from __future__ import annotations

import json
import os

import gymnasium as gym
import numpy as np
import pytest
import torch

from conftest import run_cli

TINY_CAR = "test/carracing/tiny-v0"


@pytest.fixture(scope="module")
def car_reference_dir(tmp_path_factory):
    from bench.carracing import encoder as enc

    root = tmp_path_factory.mktemp("car-reference")
    saved = os.environ.get("BENCH_REFERENCE_DIR")
    os.environ["BENCH_REFERENCE_DIR"] = str(root)
    torch.manual_seed(0)
    enc.save_encoder(enc.FrameEncoder(), root / "carracing" / "encoder.pt",
                     {"objective": "none: random weights for tests"})
    (root / "carracing" / "reference.json").write_text(json.dumps({
        "episodes": 2, "random": {"mean_return": -50.0}, "expert": {"mean_return": 900.0}}))
    enc._LOADED.clear()
    yield root
    enc._LOADED.clear()
    if saved is None:
        os.environ.pop("BENCH_REFERENCE_DIR", None)
    else:
        os.environ["BENCH_REFERENCE_DIR"] = saved


@pytest.fixture(scope="module")
def tiny_car_dataset(car_reference_dir):
    from bench.carracing.data import make_carracing_dataset

    make_carracing_dataset(TINY_CAR, "expert", num_episodes=3, seed=0, max_episode_steps=40,
                           num_envs=2)
    return TINY_CAR


def test_driver_reports_actions_and_driving_state_reproducibly():
    from bench.carracing.data import driver_env

    def episode():
        env = driver_env("medium", max_episode_steps=30)
        _, info = env.reset(seed=3)
        actions = []
        for _ in range(30):
            actions.append(info["driver_action"])
            _, _, term, trunc, info = env.step(info["driver_action"])
            if term or trunc:
                break
        assert info["driving"].shape == (4,)
        return np.array(actions)

    a, b = episode(), episode()
    np.testing.assert_array_equal(a, b)  # the noise is seeded from the reset seed
    assert a.shape[1] == 3 and (a[:, 1:] >= 0).all() and (np.abs(a) <= 1).all()


def test_encoder_is_deterministic_and_batch_consistent(car_reference_dir):
    from bench.carracing.encoder import encode_frames, load_encoder

    encoder, sha = load_encoder()
    frames = np.random.default_rng(0).integers(0, 256, (5, 96, 96, 3), dtype=np.uint8)
    z1, z2 = encode_frames(encoder, frames), encode_frames(encoder, frames)
    assert z1.shape == (5, 64) and z1.dtype == np.float32
    np.testing.assert_array_equal(z1, z2)
    np.testing.assert_allclose(encode_frames(encoder, frames[2:3])[0], z1[2], rtol=1e-5, atol=1e-6)
    # It encodes: distinct frames give distinct latents in every dimension's spread (a constant
    # or all-zero encoder passed the checks above).
    assert (z1.std(axis=0) > 1e-4).mean() > 0.5
    assert np.abs(z1[0] - z1[1]).max() > 1e-3
    with pytest.raises(ValueError, match="uint8"):
        encode_frames(encoder, frames.astype(np.float32))
    assert len(sha) == 64


def test_encoder_checksum_is_verified(tmp_path):
    from bench.carracing import encoder as enc
    from bench.errors import DatasetError

    path = tmp_path / "carracing" / "encoder.pt"
    enc.save_encoder(enc.FrameEncoder(), path, {"objective": "test"})
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="sha256"):
        enc.load_encoder(path)


def test_latent_env_observations_are_encoded_frames(car_reference_dir):
    from bench.carracing.encoder import encode_frames, load_encoder

    env = gym.make("bench/CarRacingLatent-v0")
    raw = gym.make("CarRacing-v3", continuous=True)
    obs, _ = env.reset(seed=5)
    frame, _ = raw.reset(seed=5)
    assert env.observation_space.shape == (64,) and obs.shape == (64,)
    encoder, _ = load_encoder()
    np.testing.assert_allclose(obs, encode_frames(encoder, frame[None])[0], rtol=1e-5, atol=1e-6)
    action = np.array([0.1, 0.5, 0.0], np.float32)
    obs, r1, *_ = env.step(action)
    frame, r2, *_ = raw.step(action)
    np.testing.assert_allclose(obs, encode_frames(encoder, frame[None])[0], rtol=1e-5, atol=1e-6)
    assert r1 == r2
    assert env.spec.max_episode_steps == 1000


def test_tiny_dataset_opens_with_minari_and_recovers_the_latent_env(tiny_car_dataset):
    import minari

    from bench.data.storage import read_metadata

    ds = minari.load_dataset(tiny_car_dataset)
    assert ds.total_episodes == 3
    episode = next(iter(ds.iterate_episodes()))
    assert episode.observations.shape[1] == 64 and episode.actions.shape[1] == 3
    env = ds.recover_environment()
    assert env.observation_space.shape == (64,)
    meta = read_metadata(tiny_car_dataset)
    prov = meta["bench_provenance"]
    assert prov["source"] == "self-generated" and len(prov["encoder_sha256"]) == 64
    assert prov["driver"]["level"] == "expert"
    assert meta["ref_min_score"] == -50.0 and meta["ref_max_score"] == 900.0


def test_tiny_dataset_verifies(tiny_car_dataset):
    proc = run_cli("datasets", "verify", tiny_car_dataset)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# The research notes' Car Racer plan: steps 2 (the transformer IDM and a GCSL IDM trained on the
# latent data, evaluated as policies) and 3-4 (a goal-setter PPO in the latent env, its IDM
# pretrained on the data and frozen).
@pytest.mark.parametrize("algo", ["dt", "gcsl_idm", "transformer_idm", "gs_ppo", "ppo"])
def test_algorithms_run_on_the_latent_dataset(tmp_path, tiny_car_dataset, algo):
    proc = run_cli("run", "--algo", algo, "--dataset", tiny_car_dataset, "--budget", "smoke",
                   "--eval-episodes", "2", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(next(tmp_path.rglob("result.json")).read_text())
    assert result["dataset_id"] == tiny_car_dataset
    assert all(n <= 40 for n in result["conditions"][result["condition"]]["episode_lengths"])
    assert np.isfinite(result["normalized_score"])


def test_expert_driver_stays_on_the_road_and_collects_tiles():
    from bench.carracing.data import driver_env

    env = driver_env("expert", max_episode_steps=300)
    _, info = env.reset(seed=11)
    total, offsets = 0.0, []
    for _ in range(300):
        _, reward, term, trunc, info = env.step(info["driver_action"])
        total += reward
        offsets.append(abs(info["driving"][2]))
        if term or trunc:
            break
    # 300 steps at racing speed cover well over 100 of a lap's ~300 tiles (1000/N reward each);
    # a random policy barely leaves the start (about -20 over the same steps).
    assert total > 250
    assert max(offsets) < 7.0  # the road's half-width is 6.7


def test_linear_probe_scores_linear_targets_high_and_noise_low():
    from bench.carracing.train_encoder import linear_probe_r2

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 64))
    w = rng.normal(size=(64, 2))
    y = np.c_[x @ w[:, 0], rng.normal(size=2000)]
    r2 = linear_probe_r2(x[:1500], y[:1500], x[1500:], y[1500:], ridge=1e-4)
    assert r2[0] > 0.99 and r2[1] < 0.05


def test_encoder_training_reduces_reconstruction_loss_and_writes_a_verified_card(tmp_path):
    from bench.carracing import encoder as enc
    from bench.carracing.train_encoder import EncoderTraining, train_encoder

    cfg = EncoderTraining(episodes=2, max_episode_steps=40, epochs=5, batch_size=4, workers=1)
    card = train_encoder(cfg, tmp_path / "encoder.pt")
    losses = card["training"]["loss_per_epoch"]
    assert len(losses) == 5 and losses[-1] < losses[0]
    assert set(card["linear_probe_r2"]) == {"speed", "heading_error", "lateral_offset",
                                            "bend_ahead"}
    saved = json.loads((tmp_path / "encoder.json").read_text())
    encoder, sha = enc.load_encoder(tmp_path / "encoder.pt")
    assert saved["sha256"] == sha == card["sha256"]
    # one seed, one encoder: retraining gives the same weights
    again = train_encoder(cfg, tmp_path / "again" / "encoder.pt")
    assert again["sha256"] == card["sha256"]


def test_evaluator_runs_the_latent_env_in_workers_with_batched_encoding(car_reference_dir,
                                                                        monkeypatch):
    import functools

    import bench.evaluate
    from bench.evaluate import PolicyAgent, evaluate, worker_split

    batches = []  # the frames encoded per call in the evaluator's process

    def spied_split(env):
        make_inner, transform = worker_split(env)
        return make_inner, lambda frames: batches.append(len(frames)) or transform(frames)

    monkeypatch.setattr(bench.evaluate, "worker_split", spied_split)

    make_env = functools.partial(gym.make, "bench/CarRacingLatent-v0", max_episode_steps=25)
    probe = make_env()
    make_inner, _ = worker_split(probe)
    inner = make_inner()
    assert inner.observation_space.shape == (96, 96, 3) and inner.spec.max_episode_steps == 25
    probe.close()
    inner.close()

    def policy(obs):  # acts on the latents, so wrong observations would change the returns
        return np.c_[np.tanh(obs[:, :1]), np.full((len(obs), 1), 0.3), np.zeros((len(obs), 1))]

    workers = evaluate(PolicyAgent(policy), make_env, episodes=3, seed=7, mode="auto")
    in_process = evaluate(PolicyAgent(policy), make_env, episodes=3, seed=7, mode="sync")
    np.testing.assert_array_equal(workers.lengths, [25, 25, 25])
    np.testing.assert_allclose(workers.returns, in_process.returns, rtol=1e-4)
    assert batches and set(batches) == {3}, "auto: 3 envs in workers, their frames encoded at once"


def test_latent_datasets_are_reproducible_from_their_seed(tiny_car_dataset):
    from bench.carracing.data import make_carracing_dataset
    from bench.data import load_flat
    from bench.data.storage import read_metadata

    again = "test/carracing/tiny-again-v0"
    make_carracing_dataset(again, "expert", num_episodes=3, seed=0, max_episode_steps=40,
                           num_envs=2)
    a, b = (load_flat(d, read_metadata(d)["data_sha256"]) for d in (tiny_car_dataset, again))
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.rewards, b.rewards)


def test_a_run_refuses_latents_of_another_encoder(tmp_path, tiny_car_dataset, car_reference_dir,
                                                  monkeypatch):
    """Data encoded with one encoder, evaluation env with another (after train-encoder, or
    another BENCH_REFERENCE_DIR): a clear error before training, naming both and the fix."""
    from bench.carracing import encoder as enc
    from bench.data.resolve import resolve

    other = tmp_path / "other-reference"
    torch.manual_seed(1)
    enc.save_encoder(enc.FrameEncoder(), other / "carracing" / "encoder.pt",
                     {"objective": "none: other random weights"})
    (other / "carracing" / "reference.json").write_text(
        (car_reference_dir / "carracing" / "reference.json").read_text())
    monkeypatch.setenv("BENCH_REFERENCE_DIR", str(other))
    proc = run_cli("run", "--algo", "bc", "--dataset", tiny_car_dataset, "--budget", "smoke",
                   "--eval-episodes", "2", "--out", str(tmp_path / "results"))
    assert proc.returncode == 1, proc.stderr
    assert "was encoded with the Car Racer encoder" in proc.stderr
    assert "bench datasets make" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()  # bad input leaves nothing behind
    # The same data with the encoder they were made with: no complaint.
    monkeypatch.setenv("BENCH_REFERENCE_DIR", str(car_reference_dir))
    enc._LOADED.clear()
    dataset = resolve(tiny_car_dataset, download=False, log=lambda m: None)
    env = dataset.make_env_fn()()
    try:
        dataset.check_env(env)
        assert dataset.recorded_encoders() == {env.get_wrapper_attr("encoder_sha256")}
    finally:
        env.close()
