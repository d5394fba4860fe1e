"""Data-parallel gradient steps (bench.nn.parallel): the full batch's gradient, and numbers that do
not depend on the thread count."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.algos.dt import DecisionTransformer, DTConfig, DTVICRegConfig
from bench.config import make_config
from bench.data.sampler import Sampler
from bench.nn.layers import FastDropout
from bench.nn.parallel import sharded_backward
from conftest import make_flat


@pytest.mark.parametrize("batch_size, shards", [(10, 2), (7, 2), (5, 3), (1, 2)])
def test_sharded_gradient_is_the_full_batch_gradient(batch_size, shards):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    unused = torch.nn.Parameter(torch.ones(3))  # reached by no loss: keeps grad None
    x, y = torch.randn(batch_size, 4), torch.randn(batch_size, 2)
    params = list(net.parameters()) + [unused]

    def loss_of(rows: slice) -> torch.Tensor:
        return ((net(x[rows]) - y[rows]) ** 2).sum() / batch_size

    full = loss_of(slice(None))
    expected = torch.autograd.grad(full, list(net.parameters()))
    loss = sharded_backward(loss_of, batch_size, params, shards=shards)
    assert loss.item() == pytest.approx(full.item(), rel=1e-6)
    for param, grad in zip(net.parameters(), expected):
        torch.testing.assert_close(param.grad, grad, rtol=1e-5, atol=1e-7)
    assert unused.grad is None


def test_shards_draw_their_own_dropout_masks_reproducibly():
    """Each shard's masks come from its own generator, seeded from the global one: the same
    global seed gives the same step, a different one a different step."""
    net = torch.nn.Sequential(torch.nn.Linear(8, 64), FastDropout(0.5), torch.nn.Linear(64, 1))
    x = torch.randn(32, 8)

    def step(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        sharded_backward(lambda rows: net(x[rows]).sum(), 32, list(net.parameters()))
        return [p.grad.clone() for p in net.parameters()]

    first, again, other = step(1), step(1), step(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])

    # ... and the two shards' masks differ: on identical halves of a batch, the dropout outputs
    # of the two shards are not the same (one seed for both would make them so).
    half = torch.randn(16, 8)
    twin = torch.cat([half, half])
    outputs = []
    net[1].register_forward_hook(lambda module, args, out: outputs.append(out.detach().clone()))
    torch.manual_seed(3)
    sharded_backward(lambda rows: net(twin[rows]).sum(), 32, list(net.parameters()), shards=2)
    assert len(outputs) == 2 and outputs[0].shape == outputs[1].shape == (16, 64)
    assert not torch.equal(outputs[0], outputs[1])


def _dt_updates(threads: int, use_vicreg: bool = False,
                budget: str = "smoke") -> tuple[list[float], dict[str, torch.Tensor]]:
    """Losses of six DT updates from seed 0 on ``threads`` torch threads, and the parameters after
    them (a last-bit difference shows in the parameters long before it shows in a loss)."""
    flat = make_flat([30] * 8, obs_dim=11, act_dim=3)
    config = (make_config(DTVICRegConfig, budget, {"vicreg_weight": "0.1"}) if use_vicreg
              else make_config(DTConfig, budget))
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        sampler = Sampler(flat, seed=0)
        algo = DecisionTransformer(config, sampler.spec(-np.ones(3), np.ones(3), 1000),
                                   torch.device("cpu"))
        losses = [algo.update(algo.sample(sampler), step)["loss"] for step in range(6)]
        return losses, {k: v.clone() for k, v in algo.net.state_dict().items()}
    finally:
        torch.set_num_threads(saved)


def _same(a: tuple[list[float], dict[str, torch.Tensor]],
          b: tuple[list[float], dict[str, torch.Tensor]]) -> bool:
    return a[0] == b[0] and all(torch.equal(a[1][k], b[1][k]) for k in a[1])


@pytest.mark.parametrize("budget", ["smoke", "full"])
def test_dt_updates_are_the_same_on_one_thread_and_on_two(budget):
    """The shard count is fixed, not the thread count: one core or two, the same numbers (at
    the published size too, where each shard multiplies 32 windows' rows)."""
    two = _dt_updates(2, budget=budget)
    assert _same(_dt_updates(1, budget=budget), two)
    assert _same(_dt_updates(2, budget=budget), two)  # and the same again


def test_a_forked_child_can_take_sharded_steps():
    """A child forked after training (sharded evaluation forks) inherits no worker threads; its
    steps must still run, not wait forever on the parent's pool."""
    import os
    import time

    if not hasattr(os, "fork"):
        pytest.skip("no fork here")
    net = torch.nn.Linear(4, 1)
    x = torch.randn(8, 4)
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        sharded_backward(lambda rows: net(x[rows]).sum(), 8, list(net.parameters()))
        pid = os.fork()
        if pid == 0:  # the child: a step, then out without running the parent's cleanup
            try:
                torch.set_num_threads(2)  # so that the step takes the thread pool
                sharded_backward(lambda rows: net(x[rows]).sum(), 8, list(net.parameters()))
                os._exit(0)
            except BaseException:
                os._exit(1)
        deadline = 60.0
        while deadline > 0:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
            deadline -= 0.1
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's sharded step hung")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        torch.set_num_threads(saved)


def test_shards_run_in_the_callers_grad_mode():
    net = torch.nn.Linear(4, 1)
    with torch.no_grad(), pytest.raises(RuntimeError, match="does not require grad"):
        sharded_backward(lambda rows: net(torch.ones(8, 4)[rows]).sum(), 8,
                         list(net.parameters()))


def test_dt_with_vicreg_trains_in_one_piece():
    # VICReg's variance and covariance are batch statistics: its update is not sharded, and still
    # reproducible.
    assert _same(_dt_updates(2, use_vicreg=True), _dt_updates(2, use_vicreg=True))
