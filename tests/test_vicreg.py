"""Temporal VICReg: the loss on known inputs, temporal pairs inside episodes, weight 0 = the base
algorithm number for number, and every variant at `smoke`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench.nn.vicreg import VICRegFields, VICRegHead, vicreg_terms
from bench.run import RunRequest, execute, run_dir


def test_identical_embeddings_have_zero_invariance():
    z = torch.randn(64, 8)
    assert vicreg_terms(z, z.clone())["invariance"].item() == 0.0


def test_invariance_is_the_mean_squared_distance_of_the_pairs():
    g = torch.Generator().manual_seed(1)
    za, zb = torch.randn(64, 8, generator=g), torch.randn(64, 8, generator=g)
    assert vicreg_terms(za, za + 1.0)["invariance"].item() == pytest.approx(1.0)
    assert vicreg_terms(za, za + 3.0)["invariance"].item() == pytest.approx(9.0)
    assert vicreg_terms(za, zb)["invariance"].item() == pytest.approx(((za - zb) ** 2).mean().item())


def test_collapsed_embeddings_put_the_variance_term_at_its_maximum():
    z = torch.ones(64, 8) * 3.0
    terms = vicreg_terms(z, z.clone(), eps=1e-4)
    assert terms["variance"].item() == pytest.approx(1.0 - 1e-2, abs=1e-6)  # 1 - sqrt(eps)
    assert terms["covariance"].item() == pytest.approx(0.0, abs=1e-9)


def test_decorrelated_unit_variance_inputs_have_small_covariance_and_variance_terms():
    g = torch.Generator().manual_seed(0)
    za, zb = torch.randn(20000, 8, generator=g), torch.randn(20000, 8, generator=g)
    terms = vicreg_terms(za, zb)
    assert terms["covariance"].item() < 0.01
    assert terms["variance"].item() < 0.01
    correlated = za.clone()
    correlated[:, 1] = correlated[:, 0]  # two identical dimensions: covariance 1 off the diagonal
    assert vicreg_terms(correlated, correlated)["covariance"].item() > 0.4


def test_head_weights_the_terms_with_the_configured_coefficients():
    torch.manual_seed(0)
    head = VICRegHead(4, VICRegFields(vicreg_sim=2.0, vicreg_var=3.0, vicreg_cov=5.0,
                                      vicreg_projector=(8, 6)))
    a, b = torch.randn(32, 4), torch.randn(32, 4)
    loss, stats = head(a, b)
    expected = (2 * stats["vicreg/invariance"] + 3 * stats["vicreg/variance"]
                + 5 * stats["vicreg/covariance"])
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in head.parameters())


def test_ppo_temporal_pairs_never_cross_an_episode_end():
    import functools

    import gymnasium as gym

    from bench.algos.ppo import PPO, PPOVICRegConfig
    from bench.config import make_config
    from bench.data.sampler import TaskSpec

    make = functools.partial(gym.make, "Hopper-v5")
    algo = PPO(make_config(PPOVICRegConfig, "smoke", {"vicreg_weight": "0.1", "vicreg_max_offset": "3"}),
               TaskSpec.from_env(make()), torch.device("cpu"))
    T, N = 40, 3
    obs = np.zeros((T, N, 11), np.float32)
    obs[:, :, 0] = np.arange(T)[:, None]  # the step index, to read k back
    dones = np.zeros((T, N), np.float32)
    dones[[4, 5, 20], 0] = 1.0  # env 0's episodes end after steps 4, 5 and 20
    dones[10, 1] = 1.0
    episode = np.concatenate([np.zeros((1, N)), np.cumsum(dones, 0)])[:-1]  # episode of each step
    pairs = algo._temporal_pairs(obs, dones)
    later = pairs["pair_obs"][:, :, 0].astype(int)
    valid = pairs["pair_valid"] > 0
    k = later - np.arange(T)[:, None]
    assert ((k[valid] >= 1) & (k[valid] <= 3)).all()
    for t, n in zip(*np.nonzero(valid)):
        assert episode[later[t, n], n] == episode[t, n]
    assert not valid[5, 0]  # a one-step episode has no partner
    assert valid[:, 2].sum() >= T - 3  # env 2 never ends: only the last steps lack a partner
    assert valid.mean() > 0.8


def _metrics(req):
    rows = (run_dir(req) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(r).items() if not k.startswith("time/")} for r in rows]


VARIANTS = [  # (vicreg variant, the base it must equal at weight 0, shared overrides, data)
    ("dt_vicreg", "dt", {}, "dataset"),
    ("gcsl_idm_vicreg", "gcsl_idm", {"state_encoder": "32", "goal_source": "self"}, "dataset"),
    ("ppo_vicreg", "ppo", {}, "env"),
    ("gs_ppo_vicreg", "gs_ppo_joint", {"idm_state_encoder": "32"}, "env"),
]


@pytest.mark.parametrize("variant, base, shared, data", VARIANTS)
def test_weight_zero_is_the_base_algorithm_exactly(variant, base, shared, data, tiny_dataset,
                                                   tmp_path):
    source = {"dataset": tiny_dataset} if data == "dataset" else {"dataset": None,
                                                                   "env": "Hopper-v5"}
    common = dict(seed=3, budget="smoke", eval_episodes=2, **source)
    zero = RunRequest(algo=variant, overrides={**shared, "vicreg_weight": "0"},
                      out=tmp_path / "zero", **common)
    plain = RunRequest(algo=base, overrides=dict(shared), out=tmp_path / "base", **common)
    on = RunRequest(algo=variant, overrides=dict(shared), out=tmp_path / "on", **common)
    results = [execute(r, log=lambda m: None) for r in (zero, plain, on)]
    assert results[0]["episode_returns"] == results[1]["episode_returns"]
    assert _metrics(zero) == _metrics(plain)
    # with its preset weight the variant logs the VICReg terms and trains differently
    logged = _metrics(on)
    assert any(any(k.split("/")[-1] == "invariance" for k in row) for row in logged)
    assert logged != _metrics(plain)
