"""The frozen vision encoder of the Car Racer family: a 96×96×3 CarRacing frame → a 64-d latent.

Architecture: four stride-2 4×4 convolutions (16, 32, 64, 128 channels, ReLU; 96 → 47 → 22 →
10 → 4 pixels) and a linear map of the 2,048 features to 64 numbers, about 11M multiply-adds a
frame (the channel widths of the World Models encoder, halved: a quarter of the cost, so that
training on a laptop CPU takes minutes and encoding never limits data generation). One frame is enough: CarRacing draws its dashboard (speed bar, ABS lights, steering and
gyroscope bars) into the bottom of every frame.

Objective (trained once, then frozen): a convolutional autoencoder. A decoder mirrors the encoder
(linear to 128×4×4, four transposed convolutions back to 96×96×3, sigmoid) and the pair minimises
the mean squared error of the frame in [0, 1], with the dashboard rows weighted ×10 so that the
few pixels carrying speed and steering are not drowned out by the grass. Only the encoder is kept;
its weights are committed under ``assets/carracing/`` with their sha256 and a card, and a linear
probe from latents to the driver's privileged quantities (speed, heading error, lateral offset,
bend ahead) reports what the latents carry (R²).
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

LATENT_DIM = 64
FRAME_SHAPE = (96, 96, 3)
DASHBOARD_ROWS = slice(84, 96)  # CarRacing's indicator strip at the bottom of the frame
DASHBOARD_WEIGHT = 10.0


class FrameEncoder(nn.Module):
    def __init__(self, latent_dim: int = LATENT_DIM) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(3, 16, 4, stride=2), nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 128, 4, stride=2), nn.ReLU(),
        )
        self.head = nn.Linear(128 * 4 * 4, latent_dim)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 96, 96, 3) uint8 → (B, latent_dim) float32."""
        x = frames.permute(0, 3, 1, 2).float().div_(255.0)
        return self.head(self.conv(x).flatten(1))


class FrameDecoder(nn.Module):
    """Only for training the encoder (the autoencoder objective); never shipped."""

    def __init__(self, latent_dim: int = LATENT_DIM) -> None:
        super().__init__()
        self.head = nn.Linear(latent_dim, 128 * 4 * 4)
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, stride=2), nn.ReLU(),  # 4 → 10
            nn.ConvTranspose2d(64, 32, 4, stride=2), nn.ReLU(),  # 10 → 22
            nn.ConvTranspose2d(32, 16, 4, stride=2, output_padding=1), nn.ReLU(),  # 22 → 47
            nn.ConvTranspose2d(16, 3, 4, stride=2, output_padding=0), nn.Sigmoid(),  # 47 → 96
        )

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) → (B, 3, 96, 96) in [0, 1]."""
        return self.deconv(self.head(latents).view(-1, 128, 4, 4))


def reconstruction_loss(frames: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Dashboard-weighted MSE between uint8 frames (B, 96, 96, 3) and reconstructions (B, 3, 96, 96)."""
    target = frames.permute(0, 3, 1, 2).float() / 255.0
    weight = torch.ones(1, 1, 96, 1, device=frames.device)
    weight[:, :, DASHBOARD_ROWS] = DASHBOARD_WEIGHT
    return (((recon - target) ** 2) * weight).mean()


@torch.inference_mode()
def encode_frames(encoder: FrameEncoder, frames: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Latents (N, 64) float32 of uint8 frames (N, 96, 96, 3), in batches."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[1:] != FRAME_SHAPE or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames of shape (N, 96, 96, 3), got {frames.dtype} "
                         f"{frames.shape}")
    out = [encoder(torch.from_numpy(np.ascontiguousarray(frames[i:i + batch_size]))).numpy()
           for i in range(0, len(frames), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, LATENT_DIM), np.float32)


# -- the committed, frozen encoder ----------------------------------------------------------
def encoder_path() -> Path:
    from bench.data.cards import reference_dir

    return reference_dir() / "carracing" / "encoder.pt"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_encoder(encoder: FrameEncoder, path: Path, card: dict[str, Any]) -> str:
    """Write the encoder's weights (and the card beside them, with their sha256) atomically."""
    import json

    from bench.io import atomic_write_bytes

    buf = io.BytesIO()
    torch.save({"state_dict": encoder.state_dict(), "latent_dim": LATENT_DIM}, buf)
    data = buf.getvalue()
    sha = sha256_bytes(data)
    atomic_write_bytes(path, data)
    atomic_write_bytes(path.with_suffix(".json"),
                       (json.dumps({**card, "sha256": sha}, indent=2) + "\n").encode())
    return sha


_LOADED: dict[str, tuple[FrameEncoder, str]] = {}


def load_encoder(path: Path | None = None) -> tuple[FrameEncoder, str]:
    """The frozen encoder and its sha256, checked against its card; cached per process."""
    import json

    from bench.errors import DatasetError

    path = Path(path) if path is not None else encoder_path()
    key = str(path.resolve())
    if key in _LOADED:
        return _LOADED[key]
    if not path.exists():
        raise DatasetError(f"the Car Racer vision encoder is missing at {path}; train it with "
                           "`python -m bench.carracing train-encoder` (or set BENCH_REFERENCE_DIR "
                           "to a directory holding carracing/encoder.pt).")
    data = path.read_bytes()
    sha = sha256_bytes(data)
    card_path = path.with_suffix(".json")
    if card_path.exists():
        expected = json.loads(card_path.read_text()).get("sha256")
        if expected and expected != sha:
            raise DatasetError(f"{path} has sha256 {sha[:16]}… but its card {card_path} says "
                               f"{expected[:16]}…; restore the file (git checkout) or retrain it.")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    encoder = FrameEncoder(state["latent_dim"])
    encoder.load_state_dict(state["state_dict"])
    encoder.eval().requires_grad_(False)
    _LOADED[key] = (encoder, sha)
    return encoder, sha
