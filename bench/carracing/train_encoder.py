"""Training the Car Racer vision encoder once (then it is frozen and committed).

``python -m bench.carracing train-encoder`` drives CarRacing-v3 with the track driver at three
levels (expert, medium, and a "wild" expert with action noise 0.4 that leaves the road often, so
the encoder also sees grass, skids and recoveries), keeps every second frame with the driver's
privileged driving state, trains the autoencoder of ``bench.carracing.encoder`` on the frames of
80% of the episodes, and fits a linear probe (ridge regression) from latents to speed, heading
error, lateral offset and bend ahead on those episodes, scored (R²) on the held-out 20%. The
encoder and a card (objective, data, epochs, final loss, probe R², how to retrain) are written to
``assets/carracing/encoder.{pt,json}``.

Episodes use seeds 2,000,000 + i: disjoint from the datasets' (0, 1, ...) and the reference
card's (1,000,000 + i). With one seed the whole procedure is deterministic on CPU.
"""
from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.carracing.driver import DRIVER_LEVELS, DRIVING_FIELDS
from bench.carracing.encoder import (FrameDecoder, FrameEncoder, encode_frames, encoder_path,
                                     reconstruction_loss, save_encoder)

EPISODE_SEED = 2_000_000
WILD_NOISE = 0.4


@dataclass
class EncoderTraining:
    episodes: int = 45  # cycling expert / medium / wild; 80% train, 20% probe test
    frame_stride: int = 2  # keep every second frame (neighbours are near duplicates)
    max_episode_steps: int = 1000
    epochs: int = 8
    batch_size: int = 128
    lr: float = 1e-3
    probe_ridge: float = 1e-2
    seed: int = 0
    workers: int = 2


def _level(episode: int) -> tuple[str, Any]:
    name = ("expert", "medium", "wild")[episode % 3]
    params = DRIVER_LEVELS["expert" if name == "wild" else name]
    if name == "wild":
        params = dataclasses.replace(params, action_noise=WILD_NOISE)
    return name, params


def _drive_episode(args: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, 96, 96, 3) and driving states (T, 4) of one driver episode."""
    import gymnasium as gym

    from bench.carracing.driver import DriverActionWrapper

    episode, stride, max_steps = args
    torch.set_num_threads(1)
    env = DriverActionWrapper(gym.make("CarRacing-v3", continuous=True,
                                       max_episode_steps=max_steps), _level(episode)[1])
    frames, states = [], []
    obs, info = env.reset(seed=EPISODE_SEED + episode)
    for t in range(max_steps):
        if t % stride == 0:
            frames.append(obs)
            states.append(info["driving"])
        obs, _, terminated, truncated, info = env.step(info["driver_action"])
        if terminated or truncated:
            break
    env.close()
    return np.asarray(frames, np.uint8), np.asarray(states, np.float32)


def collect_frames(cfg: EncoderTraining) -> list[tuple[np.ndarray, np.ndarray]]:
    from bench.progress import progress_bar

    jobs = [(i, cfg.frame_stride, cfg.max_episode_steps) for i in range(cfg.episodes)]
    with ProcessPoolExecutor(cfg.workers) as pool, \
            progress_bar(total=cfg.episodes, desc="encoder frames", unit="ep") as bar:
        out = []
        for result in pool.map(_drive_episode, jobs):
            out.append(result)
            bar.update(1)
    return out


def linear_probe_r2(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                    test_y: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """R² per target of a ridge regression (standardized latents, intercept) on held-out data."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    a = np.c_[(train_x - mu) / sd, np.ones(len(train_x))]
    b = np.c_[(test_x - mu) / sd, np.ones(len(test_x))]
    reg = ridge * len(a) * np.eye(a.shape[1])
    reg[-1, -1] = 0.0
    w = np.linalg.solve(a.T @ a + reg, a.T @ train_y)
    residual = ((b @ w - test_y) ** 2).sum(0)
    total = ((test_y - test_y.mean(0)) ** 2).sum(0)
    return 1.0 - residual / total


def train_encoder(cfg: EncoderTraining, out: Path | None = None) -> dict[str, Any]:
    from bench.progress import progress_bar

    if cfg.episodes < 2:
        raise ValueError("encoder training needs at least 2 episodes (train and probe test)")
    start = time.time()
    episodes = collect_frames(cfg)
    collect_s = time.time() - start
    n_train = min(len(episodes) - 1, int(round(0.8 * len(episodes))))
    train_frames = np.concatenate([f for f, _ in episodes[:n_train]])
    torch.manual_seed(cfg.seed)
    encoder, decoder = FrameEncoder(), FrameDecoder()
    params = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    frames_t = torch.from_numpy(train_frames)
    steps_per_epoch = len(frames_t) // cfg.batch_size
    losses: list[float] = []
    train_start = time.time()
    with progress_bar(total=cfg.epochs * steps_per_epoch, desc="encoder training",
                      unit="batch") as bar:
        for epoch in range(cfg.epochs):
            order = torch.randperm(len(frames_t), generator=generator)
            epoch_loss = 0.0
            for k in range(steps_per_epoch):
                batch = frames_t[order[k * cfg.batch_size:(k + 1) * cfg.batch_size]]
                loss = reconstruction_loss(batch, decoder(encoder(batch)))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                epoch_loss += loss.item()
                bar.update(1)
            losses.append(epoch_loss / max(steps_per_epoch, 1))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    train_s = time.time() - train_start
    encoder.eval().requires_grad_(False)

    def latents_and_states(part):
        return (encode_frames(encoder, np.concatenate([f for f, _ in part])),
                np.concatenate([s for _, s in part]))

    train_x, train_y = latents_and_states(episodes[:n_train])
    test_x, test_y = latents_and_states(episodes[n_train:])
    r2 = linear_probe_r2(train_x, train_y, test_x, test_y, cfg.probe_ridge)
    card = {
        "what": "frozen vision encoder of the Car Racer datasets: CarRacing-v3 frame (96x96x3 "
                "uint8) -> 64-d latent",
        "architecture": "bench.carracing.encoder.FrameEncoder",
        "objective": "autoencoder, dashboard-weighted (x10) pixel MSE; decoder discarded",
        "data": {"episodes": cfg.episodes, "levels": "expert / medium / wild (expert with action "
                 f"noise {WILD_NOISE}) in turn", "episode_seeds": f"{EPISODE_SEED} + i",
                 "frame_stride": cfg.frame_stride, "train_frames": int(len(train_frames)),
                 "probe_test_frames": int(len(test_x))},
        "training": {**dataclasses.asdict(cfg), "loss_per_epoch": [round(x, 5) for x in losses],
                     "collect_seconds": round(collect_s, 1), "train_seconds": round(train_s, 1),
                     "torch": torch.__version__},
        "linear_probe_r2": {name: round(float(v), 3) for name, v in zip(DRIVING_FIELDS, r2)},
        "retrain": "python -m bench.carracing train-encoder  (changes the sha256: every Car Racer "
                   "dataset made with the old encoder must be remade)",
    }
    path = Path(out) if out is not None else encoder_path()
    card["sha256"] = save_encoder(encoder, path, card)
    return card
