"""Make a Minari dataset from any batched policy, without JAX (no ``minari.DataCollector``).

Episodes are collected from several envs stepped together so a neural policy acts on a batch; each
episode ``i`` starts from ``env.reset(seed=seed + i)``, so a dataset is reproducible from its seed.
Provenance is written into the dataset's metadata so it can never pass for an official dataset.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from bench.data import storage
from bench.provenance import package_versions
from bench.perf import torch_threads
from bench.processes import terminate_workers
from bench.progress import progress_bar


class BatchPolicy(Protocol):
    """Maps a batch of observations (n, obs_dim) to a batch of actions (n, act_dim).

    A policy with ``uses_info = True`` is called as ``policy(observations, infos)`` with the
    latest info of every env (a dict of (n, ...) arrays): e.g. a driver that runs inside the env
    process and reports its action there (``bench.carracing.driver``)."""

    def __call__(self, observations: np.ndarray) -> np.ndarray: ...


class InfoActionPolicy:
    """Acts with the action each env put into ``info[key]``."""

    uses_info = True

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, observations: np.ndarray, infos: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(infos[self.key], dtype=np.float32)


@dataclass
class UniformRandomPolicy:
    """Uniform random actions in the action box, from its own seeded generator."""

    low: np.ndarray
    high: np.ndarray
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        n = len(observations)
        return self.rng.uniform(self.low, self.high, size=(n, len(self.low))).astype(np.float32)


def collect_episodes(
    make_env: Callable[[], gym.Env],
    policy: BatchPolicy,
    *,
    num_transitions: int | None = None,
    num_episodes: int | None = None,
    seed: int = 0,
    num_envs: int = 8,
    vectorization: str = "auto",
    desc: str = "collecting",
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    on_steps: Callable[[int], Any] | None = None,
) -> list:
    """Collect whole episodes until ``num_transitions`` steps or ``num_episodes`` episodes.

    Episodes still running when the target is met are dropped, so every episode is complete.
    ``vectorization``: "sync" steps the envs in this process, "async" in worker processes; both
    give identical data (episode i starts from ``reset(seed=seed + i)`` and the policy sees the
    same batches). "auto" is sync: for MuJoCo-sized envs the IPC of worker processes costs more
    than the stepping (Hopper with the expert policy, 8 envs: 6,600 steps/s in-process vs 2,700
    with workers); async is for expensive simulators.
    ``transform`` maps a batch of the envs' raw observations to what is stored and shown to the
    policy (e.g. frames → latents with a frozen encoder, batched in this process). ``on_steps``,
    when given, is told the steps of each finished episode instead of a progress bar being shown
    (a worker of ``collect_blocks``).
    """
    from minari.data_collector.episode_buffer import EpisodeBuffer

    if (num_transitions is None) == (num_episodes is None):
        raise ValueError("give exactly one of num_transitions or num_episodes")
    target = num_transitions if num_transitions is not None else num_episodes
    if vectorization == "auto":
        vectorization = "sync"
    vector_cls = gym.vector.AsyncVectorEnv if vectorization == "async" else gym.vector.SyncVectorEnv
    kwargs = {"context": "fork"} if vectorization == "async" else {}
    # Resets are ours (each with its episode's seed), so the vector env never autoresets.
    envs = vector_cls([make_env] * num_envs, autoreset_mode=gym.vector.AutoresetMode.DISABLED,
                      **kwargs)
    done_steps = 0
    finished: list[EpisodeBuffer] = []
    next_episode = 0
    slots: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    last_obs: np.ndarray | None = None
    last_infos: dict[str, np.ndarray] = {}
    uses_info = getattr(policy, "uses_info", False)

    def remember(obs: np.ndarray, infos: dict[str, Any], rows: np.ndarray) -> np.ndarray:
        """Transform the observations of ``rows``, store them as the envs' latest, keep infos."""
        nonlocal last_obs
        new = np.asarray(obs if transform is None else transform(np.asarray(obs)[rows]))
        if transform is None:
            new = new[rows]
        if last_obs is None:
            last_obs = np.zeros((num_envs, *new.shape[1:]), dtype=new.dtype)
        last_obs[rows] = new
        for key, value in infos.items():
            if key.startswith("_") or not isinstance(value, np.ndarray):
                continue
            if key not in last_infos:
                last_infos[key] = np.zeros_like(value)
            valid = infos.get("_" + key, np.ones(num_envs, dtype=bool))
            take = np.zeros(num_envs, dtype=bool)
            take[rows] = True
            take &= valid
            last_infos[key][take] = value[take]
        return new

    def start(mask: np.ndarray) -> None:
        nonlocal next_episode
        seeds = [0] * num_envs
        for j in np.flatnonzero(mask):
            seeds[j] = seed + next_episode
            slots[j] = {"id": next_episode, "seed": seed + next_episode, "obs": [], "act": [],
                        "rew": [], "term": [], "trunc": []}
            next_episode += 1
        obs, infos = envs.reset(seed=seeds, options={"reset_mask": mask})
        rows = np.flatnonzero(mask)
        new = remember(obs, infos, rows)
        for i, j in enumerate(rows):
            slots[j]["obs"].append(new[i])

    def reached() -> bool:
        return (done_steps if num_transitions is not None else len(finished)) >= target

    try:
        # One torch thread for the policy's small batches (see bench.perf.torch_threads).
        bar_kwargs = {"total": target, "desc": desc, "unit": "step" if num_transitions else "ep"}
        with torch_threads(1), \
                (progress_bar(**bar_kwargs) if on_steps is None else tqdm(disable=True,
                                                                         **bar_kwargs)) as bar:
            start(np.ones(num_envs, dtype=bool))
            while not reached():
                if uses_info:
                    infos_now = {k: v.copy() for k, v in last_infos.items()}
                    actions = np.asarray(policy(last_obs.copy(), infos_now))
                else:
                    actions = np.asarray(policy(last_obs.copy()))
                obs, rew, term, trunc, infos = envs.step(actions)
                new = remember(obs, infos, np.arange(num_envs))
                ended = np.zeros(num_envs, dtype=bool)
                for j in range(num_envs):
                    s = slots[j]
                    s["obs"].append(new[j])
                    s["act"].append(actions[j])
                    s["rew"].append(float(rew[j]))
                    s["term"].append(bool(term[j]))
                    s["trunc"].append(bool(trunc[j]))
                    if term[j] or trunc[j]:
                        finished.append(EpisodeBuffer(
                            id=s["id"], seed=s["seed"], observations=np.asarray(s["obs"]),
                            actions=np.asarray(s["act"]), rewards=s["rew"],
                            terminations=s["term"], truncations=s["trunc"]))
                        done_steps += len(s["act"])
                        if on_steps is not None:
                            on_steps(len(s["act"]))
                        # The last episode may run past the target size; the bar stops at 100%.
                        bar.update(min(len(s["act"]), bar.total - bar.n)
                                   if num_transitions is not None else 1)
                        if reached():
                            break
                        ended[j] = True
                if ended.any() and not reached():
                    start(ended)
    except BaseException:
        envs.close(terminate=True)  # worker envs may be mid-step (see bench.evaluate.evaluate)
        raise
    envs.close()
    # Episode ids follow completion order in the file; sort so the file order is the seed order.
    finished.sort(key=lambda b: b.id)
    return [dataclasses.replace(buf, id=new_id) for new_id, buf in enumerate(finished)]


# Block b of a blocked collection resets its episodes from seed + b · BLOCK_SEED_STRIDE + n and
# seeds its policy with seed + b · BLOCK_SEED_STRIDE: disjoint from every other block's episodes
# (a block holds far fewer), and from evaluation's seeds (10^9 up) for up to 9 blocks.
BLOCK_SEED_STRIDE = 100_000_000


def collect_blocks(make_env: Callable[[], gym.Env], make_policy: Callable[[int], BatchPolicy], *,
                   num_transitions: int, seed: int, blocks: int, desc: str,
                   workers: int | None = None) -> list:
    """``collect_episodes`` in ``blocks`` independent parts, side by side in up to ``workers``
    processes (default: one per block, at most the CPU count): block b collects a b-th share of
    ``num_transitions`` with the policy ``make_policy(seed + b · BLOCK_SEED_STRIDE)``, its episodes
    reset from ``seed + b · BLOCK_SEED_STRIDE + n``; the episodes are block 0's, then block 1's, ….
    The data depend on ``blocks``, never on ``workers`` (one core makes the same file, slower).
    ``make_env`` and ``make_policy`` must pickle (module-level functions, or partials of them):
    the workers are spawned. Why: a MuJoCo env steps on one core, and two blocks make Walker2d's
    1M expert transitions in about half the 312 s of one."""
    shares = [num_transitions * (b + 1) // blocks - num_transitions * b // blocks
              for b in range(blocks)]
    block_seeds = [seed + b * BLOCK_SEED_STRIDE for b in range(blocks)]
    workers = max(1, min(workers or os.cpu_count() or 1, blocks))
    parts: dict[int, list] = {}
    with progress_bar(total=num_transitions, desc=desc, unit="step") as bar:
        def advance(steps: int) -> None:
            bar.update(min(steps, bar.total - bar.n))

        if workers == 1:
            for b in range(blocks):
                parts[b] = collect_episodes(make_env, make_policy(block_seeds[b]),
                                            num_transitions=shares[b], seed=block_seeds[b],
                                            on_steps=advance)
        else:
            context = multiprocessing.get_context("spawn")
            progress = context.Queue()
            pool = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=context, initializer=_set_progress_queue, initargs=(progress,))
            try:
                futures = {pool.submit(_collect_block, make_env, make_policy, shares[b],
                                       block_seeds[b]): b for b in range(blocks)}
                pending = set(futures)
                while pending:
                    done, pending = concurrent.futures.wait(pending, timeout=0.5)
                    while not progress.empty():
                        advance(progress.get())
                    for future in done:
                        parts[futures[future]] = future.result()
            except BaseException:
                # A failed block, Ctrl-C or SIGTERM (which reaches this process alone): stop the
                # other blocks now rather than wait minutes for them to finish their share.
                terminate_workers(pool)
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
    episodes = [buf for b in range(blocks) for buf in parts[b]]
    return [dataclasses.replace(buf, id=new_id) for new_id, buf in enumerate(episodes)]


_progress_queue: Any = None  # a blocked collection's worker reports its steps here


def _set_progress_queue(queue: Any) -> None:
    global _progress_queue
    # Progress counts may be lost, but a worker must never wait at exit for a full pipe that the
    # parent no longer reads (after another block failed: thousands of short episodes' counts).
    queue.cancel_join_thread()
    _progress_queue = queue


def _collect_block(make_env: Callable[[], gym.Env], make_policy: Callable[[int], BatchPolicy],
                   num_transitions: int, seed: int) -> list:
    """One block of ``collect_blocks``, in a worker process."""
    return collect_episodes(make_env, make_policy(seed), num_transitions=num_transitions,
                            seed=seed, on_steps=_progress_queue.put)


def write_dataset(
    dataset_id: str,
    buffers: list,
    env: gym.Env,
    *,
    ref_min: float,
    ref_max: float,
    provenance: dict[str, Any],
    description: str,
    algorithm_name: str,
    observation_space: Any = None,
    author: str = "bench (self-generated)",
) -> dict[str, Any]:
    """Write ``buffers`` as a Minari dataset, stamp provenance and the data file's sha256 into its
    metadata, and move it into the Minari root whole (``bench.data.staging``): a write that is
    interrupted or fails leaves no dataset behind. ``observation_space``: the data's, where it
    is not the env's (a goal task's env shows the goal beside the observation)."""
    import warnings

    import minari

    from bench.data.staging import staged

    with staged(dataset_id):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # minari nags about optional fields
            dataset = minari.create_dataset_from_buffers(
                dataset_id=dataset_id, buffer=buffers, env=env, algorithm_name=algorithm_name,
                author=author,
                ref_min_score=float(ref_min), ref_max_score=float(ref_max), description=description,
                observation_space=observation_space,
            )
        sha = storage.sha256_file(storage.data_file(dataset_id))
        provenance = {"source": "self-generated", "versions": package_versions(), **provenance}
        dataset.storage.update_metadata({"bench_provenance": provenance, "data_sha256": sha})
    # Cached from the episodes in memory, stamped with the data file at its final path.
    storage.save_flat(sha, storage.flat_from_buffers(buffers), storage.data_file(dataset_id))
    return storage.read_metadata(dataset_id)
