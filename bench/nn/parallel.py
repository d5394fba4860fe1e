"""Data parallelism over the CPU's cores for one gradient step: the batch split into shards,
each shard's forward and backward on its own thread with its share of torch's threads.

Why: PyTorch parallelises each op over its intra-op threads, and on small products and
elementwise passes two threads do not make an op twice as fast (a DT update at the published
size: 232 ms on one thread, 156 ms on two — 1.49x; half the batch on one thread: 115 ms). Two
shards side by side avoid that per-op split: 7-9% faster per DT update on 2 cores (paired,
alternating chunks of 10 updates, 120 each, in two sessions of the VM: means 1.088x and 1.089x).
Four shards on two threads were 5% slower than two.

Reproducibility: the shard count is fixed (``SHARDS``), not the thread count, and each shard
runs on ``threads // SHARDS`` torch threads (one after the other with a single thread), so one,
two or three torch threads give the same numbers; with four or more each shard's ops split over
several threads, and MKL's splits round differently, as any torch code's do. Each shard draws its
dropout masks from a generator seeded from torch's global one
(``bench.nn.layers.dropout_generator``; the global generator is checkpointed, so resumed runs
draw the same), and the shards' gradients are summed in shard order. The maths is the full
batch's: a loss that is a sum over rows divided by a whole-batch constant splits exactly, up to
float rounding. A loss with batch statistics (VICReg's variance and covariance) does not, so
such updates stay in one piece.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait

import torch

from bench.nn.layers import dropout_generator

SHARDS = 2
_pools: dict[int, ThreadPoolExecutor] = {}
# A forked child (sharded evaluation forks after training) inherits the pools but not their
# threads: work submitted there would wait forever, so the child starts without pools.
os.register_at_fork(after_in_child=_pools.clear)


def _pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _pools:
        _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="bench-shard")
    return _pools[workers]


def sharded_backward(shard_loss: Callable[[slice], torch.Tensor], batch_size: int,
                     params: Sequence[torch.Tensor], shards: int = SHARDS) -> torch.Tensor:
    """Set each parameter's ``.grad`` to the gradient of ``sum_i shard_loss(rows_i)`` over
    ``shards`` contiguous row slices of a batch of ``batch_size`` rows, computed concurrently
    (one after the other when torch has fewer threads than shards); return that sum
    (detached). ``shard_loss(rows)`` must be the batch loss's share from those
    rows (normalized by whole-batch quantities). ``.grad`` is replaced, not accumulated;
    parameters no shard's loss reaches keep ``None``; every parameter must require grad. The
    shards run in the caller's grad mode. CPU only: on an accelerator one piece is faster."""
    shards = max(1, min(shards, batch_size))
    bounds = [batch_size * i // shards for i in range(shards + 1)]
    # Drawn in order from the global generator, before any thread starts.
    seeds = torch.randint(0, 2**62, (shards,), dtype=torch.int64).tolist()
    threads = torch.get_num_threads()
    per_shard = max(1, threads // shards)
    grad_enabled = torch.is_grad_enabled()  # thread-local: a worker would not inherit it

    def run(i: int) -> tuple[torch.Tensor, tuple[torch.Tensor | None, ...]]:
        # Also in the worker: OpenMP takes a thread's team size from that thread's own setting.
        torch.set_num_threads(per_shard)
        with (torch.set_grad_enabled(grad_enabled),
              dropout_generator(torch.Generator().manual_seed(seeds[i]))):
            loss = shard_loss(slice(bounds[i], bounds[i + 1]))
            grads = torch.autograd.grad(loss, list(params), allow_unused=True)
        return loss.detach(), grads

    try:
        if threads < shards:
            # Fewer threads than shards (e.g. one thread per run when a sweep runs several at
            # once): one after the other here, each on the same one thread as it would get
            # beside the other, so the numbers are the same and no core is oversubscribed.
            results = [run(i) for i in range(shards)]
        else:
            torch.set_num_threads(per_shard)
            futures = [_pool(shards).submit(run, i) for i in range(shards)]
            wait(futures)  # every shard ends before the thread count is restored, even on errors
            results = [f.result() for f in futures]
    finally:
        torch.set_num_threads(threads)
    for k, param in enumerate(params):
        parts = [grads[k] for _, grads in results if grads[k] is not None]
        total = parts[0] if parts else None
        for part in parts[1:]:
            total = total + part
        param.grad = total
    loss = results[0][0]
    for other, _ in results[1:]:
        loss = loss + other
    return loss
