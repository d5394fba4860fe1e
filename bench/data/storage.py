"""Reading Minari datasets fast and safely: checksums, metadata, and flat contiguous arrays.

Minari stores one HDF5 group per episode; reading the 45k short episodes of hopper-random takes
~45 s even with raw h5py, so the flattened arrays are cached (keyed by the data file's sha256)
under ``$BENCH_CACHE`` (default ``~/.cache/bench``): 0.4 s to open afterwards. Datasets the suite
makes are cached straight from the collected episodes, so they are never read cold.

The cache is content-addressed for real: an entry is only ever made from a data file whose bytes
hash to its key, and it is only used while that file is unchanged (same path, size and mtime as
when it was last hashed; otherwise the file is hashed again). So a damaged file is reported
rather than trained on, and a repaired one is never shadowed by arrays read from its damaged
state.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from bench.errors import DatasetError
from bench.io import atomic_write_bytes

DATA_FILE = "main_data.hdf5"


def minari_root() -> Path:
    root = os.environ.get("MINARI_DATASETS_PATH") or os.path.join(
        os.path.expanduser("~"), ".minari", "datasets")
    return Path(root)


def dataset_dir(dataset_id: str) -> Path:
    return minari_root() / dataset_id


def data_file(dataset_id: str) -> Path:
    return dataset_dir(dataset_id) / "data" / DATA_FILE


def metadata_file(dataset_id: str) -> Path:
    return dataset_dir(dataset_id) / "data" / "metadata.json"


def is_present(dataset_id: str) -> bool:
    return data_file(dataset_id).exists() and metadata_file(dataset_id).exists()


def incomplete_reason(dataset_id: str, metadata: dict) -> str | None:
    """Why a present dataset is not whole (a phrase), or None. The suite's own datasets must
    carry the checksum and provenance stamped as the last step of making them; any dataset's
    data file must hold the number of episodes its metadata records (Minari writes the metadata
    first: a write cut short leaves fewer)."""
    ours = dataset_id.startswith("bench/") or "bench_provenance" in metadata
    if ours and not metadata.get("data_sha256"):
        return "it records no checksum (its making stopped before the last step)"
    if ours and not isinstance(metadata.get("bench_provenance"), dict):
        return "it records no provenance (its making stopped before the last step)"
    expected = metadata.get("total_episodes")
    if not isinstance(expected, int) or isinstance(expected, bool):
        return None
    try:
        with h5py.File(data_file(dataset_id), "r") as f:
            found = sum(1 for name in f.keys() if name.startswith("episode_"))
    except (OSError, ValueError):  # damaged: the checksum check (or reading it) names that
        return None
    if found != expected:
        return f"its data file holds {found} episodes where its metadata records {expected}"
    return None


def read_metadata(dataset_id: str) -> dict:
    path = metadata_file(dataset_id)
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"dataset {dataset_id!r} has no metadata file at {path}.") from None
    except ValueError as exc:  # invalid JSON, or bytes that are not UTF-8
        raise DatasetError(f"metadata file {path} is not valid JSON ({exc}); move the dataset "
                           f"directory {dataset_dir(dataset_id)} away and make it again.") from None
    if not isinstance(metadata, dict):
        raise DatasetError(f"metadata file {path} holds no JSON object; move the dataset "
                           f"directory {dataset_dir(dataset_id)} away and make it again.")
    return metadata


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class FlatEpisodes:
    """All episodes of a dataset in contiguous arrays.

    Transition ``i`` has observation ``observations[obs_index[i]]`` and next observation
    ``observations[obs_index[i] + 1]``; each episode stores one more observation than steps.
    """

    observations: np.ndarray  # (N + E, obs_dim) float32
    actions: np.ndarray  # (N, act_dim) float32
    rewards: np.ndarray  # (N,) float32
    terminations: np.ndarray  # (N,) bool
    truncations: np.ndarray  # (N,) bool
    episode_lengths: np.ndarray  # (E,) int64
    # Goal-env data (Dict observations): each observation's ``achieved_goal``, (N + E, goal_dim)
    # float32, the goal space goal-conditioned learners relabel from; None elsewhere.
    achieved_goals: np.ndarray | None = None

    def __post_init__(self) -> None:
        lengths = self.episode_lengths.astype(np.int64)
        self.episode_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.episode_of = np.repeat(np.arange(len(lengths)), lengths)
        self.timesteps = np.arange(len(self.actions)) - self.episode_starts[self.episode_of]
        self.obs_index = np.arange(len(self.actions)) + self.episode_of
        # Undiscounted return-to-go within each episode, computed with one reversed cumsum.
        csum = np.concatenate([[0.0], np.cumsum(self.rewards, dtype=np.float64)])
        ends = (self.episode_starts + lengths)[self.episode_of]
        self.returns_to_go = (csum[ends] - csum[np.arange(len(self.rewards))]).astype(np.float32)
        self.episode_returns = csum[self.episode_starts + lengths] - csum[self.episode_starts]

    @property
    def num_transitions(self) -> int:
        return len(self.actions)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_lengths)

    @property
    def goal_states(self) -> np.ndarray:
        """What a goal is, per observation row: its ``achieved_goal`` in goal-env data, else
        the observation itself."""
        return self.observations if self.achieved_goals is None else self.achieved_goals

    def state_observations(self) -> np.ndarray:
        """Observations at which an action was taken (excludes each episode's final one)."""
        return self.observations[self.obs_index]


def _read_episodes(path: Path) -> FlatEpisodes:
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read dataset file {path}: {exc}. The file is missing, "
                           "truncated or corrupt. Nothing was deleted; move its dataset directory "
                           "away and make it again (`bench datasets make <alias> --force` keeps a "
                           "backup), or restore it from where it came.") from None
    try:
        with f:
            names = sorted((k for k in f.keys() if k.startswith("episode_")),
                           key=lambda k: int(k.split("_")[1]))
            if not names:
                raise DatasetError(f"dataset file {path} holds no episodes.")
            obs, goals, act, rew, term, trunc, lengths = [], [], [], [], [], [], []
            for name in names:
                g = f[name]
                o = g["observations"]
                if isinstance(o, h5py.Group):  # Dict observations: only goal envs' are read
                    if not {"observation", "achieved_goal", "desired_goal"} <= set(o.keys()):
                        raise DatasetError(
                            f"{path}: episode {name} has Dict observations with keys "
                            f"{', '.join(o.keys())}; only Box observations and goal-env Dicts "
                            "(observation, achieved_goal, desired_goal) are supported.")
                    goals.append(o["achieved_goal"][()])
                    o = o["observation"]
                a = g["actions"][()]
                obs.append(o[()])
                act.append(a.reshape(len(a), -1))
                rew.append(g["rewards"][()])
                term.append(g["terminations"][()])
                trunc.append(g["truncations"][()])
                lengths.append(len(a))
    except (OSError, KeyError) as exc:
        raise DatasetError(f"dataset file {path} is corrupt ({exc}). Nothing was deleted; move its "
                           "dataset directory away and make it again.") from None
    return FlatEpisodes(
        observations=np.concatenate(obs).astype(np.float32).reshape(sum(len(o) for o in obs), -1),
        actions=np.concatenate(act).astype(np.float32),
        rewards=np.concatenate(rew).astype(np.float32),
        terminations=np.concatenate(term).astype(bool),
        truncations=np.concatenate(trunc).astype(bool),
        episode_lengths=np.asarray(lengths, dtype=np.int64),
        achieved_goals=np.concatenate(goals).astype(np.float32) if goals else None,
    )


FLAT_FIELDS = ("observations", "actions", "rewards", "terminations", "truncations", "episode_lengths")


def cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE") or Path.home() / ".cache" / "bench")


def _cache_path(sha256: str) -> Path:
    return cache_dir() / "flat" / f"{sha256}.npz"


def _stamp_path(sha256: str) -> Path:
    return cache_dir() / "flat" / f"{sha256}.source.json"


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _remember_checked(sha256: str, path: Path) -> None:
    """Record that ``path``, as it is now, hashes to ``sha256``."""
    atomic_write_bytes(_stamp_path(sha256), json.dumps(_stamp(path)).encode())


def save_flat(sha256: str, flat: FlatEpisodes, data_path: Path | None = None) -> None:
    """Cache ``flat`` under ``sha256``; ``data_path``: the data file it was made with (whose
    bytes hash to ``sha256``), so that opening it later need not hash it again."""
    import io

    buf = io.BytesIO()
    # The key is stored inside too: an entry copied over another one's name is then told apart.
    extra = {} if flat.achieved_goals is None else {"achieved_goals": flat.achieved_goals}
    np.savez(buf, sha256=np.array(sha256), **{k: getattr(flat, k) for k in FLAT_FIELDS}, **extra)
    atomic_write_bytes(_cache_path(sha256), buf.getvalue())
    if data_path is not None:
        _remember_checked(sha256, data_path)


def checked_data_file(dataset_id: str, sha256: str) -> Path:
    """``dataset_id``'s data file, after making sure its bytes hash to ``sha256`` (skipped while
    the file is unchanged since it last did)."""
    path = data_file(dataset_id)
    if not path.is_file():
        raise DatasetError(f"dataset {dataset_id!r} has no data file at {path}. Nothing was "
                           "deleted; make the dataset again (`bench datasets make <alias> --force` "
                           "keeps a backup) or restore the file from where it came.")
    try:
        seen = json.loads(_stamp_path(sha256).read_text())
    except (OSError, ValueError):
        seen = None
    if seen == _stamp(path):
        return path
    actual = sha256_file(path)
    if actual != sha256:
        raise DatasetError(
            f"data file {path} does not match the sha256 recorded for dataset {dataset_id!r} "
            f"(it hashes to {actual[:16]}..., recorded {sha256[:16]}...): it was changed or "
            "damaged. Nothing was deleted; restore it, or make the dataset again "
            "(`bench datasets make <alias> --force`); `bench datasets verify` checks every one.")
    _remember_checked(sha256, path)
    return path


def flat_from_buffers(buffers: list) -> FlatEpisodes:
    """The flat arrays of freshly collected episodes (what ``_read_episodes`` would read back)."""
    return FlatEpisodes(
        observations=np.concatenate([np.asarray(b.observations, np.float32) for b in buffers]),
        actions=np.concatenate([np.asarray(b.actions, np.float32).reshape(len(b.actions), -1)
                                for b in buffers]),
        rewards=np.concatenate([np.asarray(b.rewards, np.float32) for b in buffers]),
        terminations=np.concatenate([np.asarray(b.terminations, bool) for b in buffers]),
        truncations=np.concatenate([np.asarray(b.truncations, bool) for b in buffers]),
        episode_lengths=np.array([len(b.actions) for b in buffers], dtype=np.int64),
    )


def load_flat(dataset_id: str, sha256: str) -> FlatEpisodes:
    """Flat arrays of ``dataset_id``, whose data file must hash to ``sha256``; read once and
    cached by that hash."""
    path = checked_data_file(dataset_id, sha256)
    cache = _cache_path(sha256)
    if cache.exists():
        try:
            with np.load(cache) as z:
                # An entry of another dataset (copied over this one's name), or one from before
                # entries named their data file, is rebuilt like a broken one.
                if "sha256" in z.files and str(z["sha256"]) == sha256:
                    goals = z["achieved_goals"] if "achieved_goals" in z.files else None
                    return FlatEpisodes(**{k: z[k] for k in FLAT_FIELDS}, achieved_goals=goals)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # a broken cache entry is rebuilt below; the dataset itself is untouched
    flat = _read_episodes(path)
    save_flat(sha256, flat)
    return flat
