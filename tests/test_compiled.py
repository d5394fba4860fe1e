"""Compiled losses (bench/nn/compiled.py): IQL's and CQL's compiled updates follow their eager
ones, one seed gives identical numbers, and a machine that cannot compile runs them eagerly."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from bench.algos.cql import CQL, CQLConfig
from bench.algos.iql import IQL, IQLConfig
from bench.data.sampler import Sampler
from bench.nn import compiled
from conftest import make_flat

OBS, ACT, ROWS, UPDATES = 5, 2, 16, 3


def _algo(name: str, compile_losses: bool, seed: int = 0):
    torch.manual_seed(seed)
    flat = make_flat([6, 9, 4], obs_dim=OBS, act_dim=ACT)
    sampler = Sampler(flat, seed=seed)
    spec = sampler.spec(-np.ones(ACT), np.ones(ACT), 1000)
    if name == "iql":
        algo = IQL(IQLConfig(hidden=(16, 16), batch_size=ROWS, num_updates=UPDATES,
                             compile_losses=compile_losses), spec, torch.device("cpu"))
    else:
        algo = CQL(CQLConfig(actor_hidden=(16,), q_hidden=(16, 16), cql_n_actions=3,
                             batch_size=ROWS, bc_steps=1, compile_losses=compile_losses),
                   spec, torch.device("cpu"))
    algo.attach_dataset(sampler)
    return algo, sampler


def _train(name: str, compile_losses: bool, seed: int = 0):
    algo, sampler = _algo(name, compile_losses, seed)
    metrics = [algo.update(algo.sample(sampler), step) for step in range(UPDATES)]
    return metrics, _parameters(algo)


def _parameters(algo) -> torch.Tensor:
    """Every trained parameter: actor, critics and IQL's V or CQL's temperatures."""
    nets = [algo.actor, algo.critics, algo.value if hasattr(algo, "value") else algo.log_alpha]
    return torch.cat([p.detach().flatten() for net in nets for p in net.parameters()])


@pytest.mark.parametrize("name", ["iql", "cql"])
def test_compiled_losses_follow_the_eager_ones_and_repeat_exactly(name, capsys):
    """Three updates (CQL's first a behaviour-cloning one, then Q-learning: both versions of its
    compiled losses): every metric and parameter as the eager update's up to float rounding,
    and a second compiled run of the seed bit for bit the first. The compiled runs did compile
    (a graph was captured, no fallback warning)."""
    eager_metrics, eager_params = _train(name, compile_losses=False)
    graphs_before = counters["stats"]["unique_graphs"]
    compiled_metrics, compiled_params = _train(name, compile_losses=True)
    assert counters["stats"]["unique_graphs"] > graphs_before
    assert "compiled" not in capsys.readouterr().err
    for eager, comp in zip(eager_metrics, compiled_metrics):
        assert eager.keys() == comp.keys()
        for key in eager:
            assert comp[key] == pytest.approx(eager[key], rel=1e-4, abs=1e-5), key
    torch.testing.assert_close(compiled_params, eager_params, rtol=1e-4, atol=1e-5)
    again_metrics, again_params = _train(name, compile_losses=True)
    assert again_metrics == compiled_metrics
    assert torch.equal(again_params, compiled_params)


def test_a_machine_that_cannot_compile_runs_the_losses_eagerly(monkeypatch, capsys):
    """torch.compile failing on the first call (as without a C++ compiler): one warning naming
    the setting that skips the attempt, then the eager update's numbers exactly."""
    calls = []

    def failing_compile(fn, **kwargs):
        def call(*args):
            calls.append(1)
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")
        return call

    monkeypatch.setattr(compiled.torch, "compile", failing_compile)
    fallback_metrics, fallback_params = _train("iql", compile_losses=True)
    eager_metrics, eager_params = _train("iql", compile_losses=False)
    assert fallback_metrics == eager_metrics
    assert torch.equal(fallback_params, eager_params)
    assert len(calls) == 1  # tried once, not on every update
    err = capsys.readouterr().err
    assert err.count("the compiled iql losses failed") == 1
    assert "No working C++ compiler found" in err and "more detail" not in err
    assert "--set compile_losses=false" in err


def test_smoke_budgets_run_eagerly():
    from bench import registry
    from bench.config import make_config
    for name in ("iql", "cql"):
        entry = registry.get(name)
        assert make_config(entry.config_cls, "smoke", {}, entry.defaults,
                           entry.presets).compile_losses is False
        assert make_config(entry.config_cls, "quick", {}, entry.defaults,
                           entry.presets).compile_losses is True
