"""D4RL-style flat dictionaries, so code written for ``d4rl`` runs on Minari data.

``get_dataset`` mirrors ``env.get_dataset()``; ``qlearning_dataset`` mirrors
``d4rl.qlearning_dataset`` (adds ``next_observations``), with one difference: d4rl drops the last
transition of every time-limited episode (it had no next observation), while Minari stores each
episode's final observation, so those transitions are kept, each with its true next observation,
and a ``timeouts`` key marks them. Both use the suite's dataset resolution (making a missing
alias on first use). ``bench.data`` exports both too.
"""
from __future__ import annotations

import numpy as np

from bench.data.resolve import resolve
from bench.data.storage import load_flat
from bench.making.makers import make_on_first_use


def _arrays(name: str, with_next: bool) -> dict[str, np.ndarray]:
    ds = resolve(name, make=make_on_first_use)
    flat = load_flat(ds.dataset_id, ds.sha256)
    out = {"observations": flat.state_observations(), "actions": flat.actions}
    if with_next:
        out["next_observations"] = flat.observations[flat.obs_index + 1]
    out.update(rewards=flat.rewards, terminals=flat.terminations, timeouts=flat.truncations)
    return out


def get_dataset(name: str) -> dict[str, np.ndarray]:
    """Flat arrays: observations, actions, rewards, terminals, timeouts (one row per step)."""
    return _arrays(name, with_next=False)


def qlearning_dataset(name: str) -> dict[str, np.ndarray]:
    """As :func:`get_dataset` plus ``next_observations`` (the true next state, episode-aware)."""
    return _arrays(name, with_next=True)
