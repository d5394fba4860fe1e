"""Medium-replay for families whose reference policies SAC trained: the training run's own
transitions, rebuilt in the simulator from its recorded actions.

D4RL's medium-replay datasets are the replay buffer of the SAC run that produced the medium
policy, up to the step that policy was saved at (Fu et al. 2020, section 5). A SAC reference
run trained with ``--set record_steps=N`` keeps every env action, reward and episode end of its
first N steps in its checkpoint (``bench.algos.sac.TrainingRecord``). ``bench.reference pick``
cuts that record at the medium snapshot's env step, keeps the complete episodes and commits it
as ``<family>/medium_replay.npz`` (24 bytes per step for Walker2d's six actions: the
observations are left to the simulator). ``replay`` then steps a fresh env through the same
actions from the same first reset seed, later episodes resetting from the env's own generator
exactly as the training env did, and checks every episode's length, ending and return against
the recorded ones.

MuJoCo is deterministic for a given build, so on the machines tried the replay reproduces the
training bit for bit; where a simulator computes differently, the replay follows the simulator
(an episode ends where it ends it) and the dataset says how many episodes differ.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from bench.errors import DatasetError
from bench.policies import file_sha256
from bench.progress import progress_bar

FORMAT = "bench.action_record.v1"
ENDS = {0: "running", 1: "terminated", 2: "truncated"}


def save_action_record(checkpoint: Path, env_steps: int, out: Path) -> dict[str, Any]:
    """Write the first ``env_steps`` steps recorded in a SAC run's ``checkpoint``, cut after
    the last episode that ended by then, to ``out`` (compressed npz); return the card's entry
    for it (file, sha256, sizes, first reset seed)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    record = state.get("algo", {}).get("record")
    if record is None:
        raise DatasetError(f"{checkpoint} holds no training record, so no medium-replay dataset "
                           "can be made from this run; train the reference run with "
                           "--set record_steps=N (N at least the medium policy's env step).")
    if record["size"] < env_steps:
        raise DatasetError(f"{checkpoint} recorded {record['size']:,} env steps but the medium "
                           f"policy is at step {env_steps:,}; train the reference run with "
                           f"--set record_steps={env_steps} or more.")
    ends = np.asarray(record["ends"][:env_steps])
    stops = np.flatnonzero(ends) + 1  # one past each episode's last step
    if len(stops) == 0:
        raise DatasetError(f"no episode of {checkpoint}'s training ended within its first "
                           f"{env_steps:,} env steps; nothing to replay.")
    steps = int(stops[-1])  # complete episodes only
    starts = np.concatenate([[0], stops[:-1]])
    rewards = np.asarray(record["rewards"][:steps], np.float64)
    # np.sum over each episode's float64 rewards, as the replay sums them: equal bits.
    returns = np.array([float(np.sum(rewards[a:b])) for a, b in zip(starts, stops)])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, format=np.array(FORMAT), actions=record["actions"][:steps],
                        episode_lengths=(stops - starts).astype(np.int64),
                        episode_ends=ends[stops - 1].astype(np.int8), episode_returns=returns,
                        reset_seed=np.array(int(record["reset_seed"])))
    tmp.replace(out)
    return {"file": out.name, "sha256": file_sha256(out), "env_steps": int(env_steps),
            "transitions": steps, "episodes": len(stops),
            "reset_seed": int(record["reset_seed"])}


@dataclasses.dataclass
class Replay:
    episodes: list  # minari EpisodeBuffers, in training order
    differing: int  # episodes whose length, ending or return differ from the record
    max_return_difference: float  # largest |replayed − recorded| episode return


def load_action_record(path: Path, sha256: str) -> dict[str, np.ndarray]:
    actual = file_sha256(path) if path.exists() else None
    if actual != sha256:
        found = "is missing" if actual is None else f"has sha256 {actual[:16]}…"
        raise DatasetError(f"the action record {path} {found}, not the recorded "
                           f"{sha256[:16]}…; restore it from git (`git checkout -- assets/`).")
    with np.load(path) as data:
        record = {k: data[k] for k in data.files}
    if str(record.get("format")) != FORMAT:
        raise DatasetError(f"{path} is not a {FORMAT} file; restore it from git.")
    return record


def replay(env_id: str, record: dict[str, np.ndarray], desc: str = "replaying") -> Replay:
    """Step ``env_id`` through the recorded actions, episode by episode, from the recorded first
    reset seed; each episode ends where the simulator ends it (or, if the simulator runs on past
    the recorded end, at the recorded end, marked truncated)."""
    from minari.data_collector.episode_buffer import EpisodeBuffer

    env = gym.make(env_id)
    obs = np.asarray(env.reset(seed=int(record["reset_seed"]))[0])
    actions = record["actions"]
    episodes, differing, worst, cursor = [], 0, 0.0, 0
    lengths, recorded_ends = record["episode_lengths"], record["episode_ends"]
    with progress_bar(total=int(lengths.sum()), desc=desc, unit="step") as bar:
        for length, recorded_end, recorded_return in zip(lengths, recorded_ends,
                                                         record["episode_returns"]):
            observations, rewards, terms, truncs = [obs], [], [], []
            for action in actions[cursor:cursor + length]:
                obs, reward, term, trunc, _ = env.step(action)
                obs = np.asarray(obs)
                observations.append(obs)
                rewards.append(float(reward))
                terms.append(bool(term))
                truncs.append(bool(trunc))
                if term or trunc:
                    break
            n = len(rewards)
            total = float(np.sum(np.asarray(rewards, np.float64)))  # as save_action_record sums
            ended = 1 if terms[-1] else 2 if truncs[-1] else 0
            if ended == 0:  # the simulator went on where the training's episode had ended
                truncs[-1] = True
            same = n == length and ended == int(recorded_end) and total == float(recorded_return)
            differing += not same
            worst = max(worst, abs(total - float(recorded_return)))
            episodes.append(EpisodeBuffer(
                id=len(episodes), observations=np.asarray(observations),
                actions=np.asarray(actions[cursor:cursor + n]), rewards=rewards,
                terminations=terms, truncations=truncs))
            cursor += int(length)
            bar.update(int(length))
            obs = np.asarray(env.reset()[0])
    env.close()
    return Replay(episodes, differing, worst)
