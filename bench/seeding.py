"""One call that seeds every random stream a run draws from (Python, numpy's global generator,
torch's CPU and CUDA generators)."""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
