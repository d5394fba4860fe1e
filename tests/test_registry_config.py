import re
from dataclasses import dataclass
from typing import ClassVar, Literal, Optional

import pytest

from bench import registry
from bench.config import TrainConfig, make_config, parse_overrides
from bench.errors import UsageError


def test_registered_algorithms_and_variants():
    algos = registry.all_algorithms()
    assert {"bc", "dt", "dt_noreturn", "ppo"} <= set(algos)
    assert algos["dt_noreturn"].cls is algos["dt"].cls
    assert algos["dt_noreturn"].defaults == {"use_returns": False}
    assert {n for n, e in algos.items() if e.kind == "online"} >= {"ppo"}
    assert all(algos[n].kind == "offline" for n in ("bc", "dt", "dt_noreturn"))
    for entry in algos.values():
        assert set(entry.config_cls.BUDGETS) >= {"smoke", "quick"}  # full = the defaults


def test_unknown_algorithm_suggests_close_names():
    with pytest.raises(UsageError, match="Did you mean: dt"):
        registry.get("dtt")


def test_registering_a_different_class_under_a_taken_name_fails():
    class Other:
        Config = TrainConfig

    with pytest.raises(ValueError, match="registered twice"):
        registry.register("bc", description="x")(Other)


@dataclass
class _Cfg(TrainConfig):
    lr: float = 1e-3
    hidden: tuple[int, ...] = (256, 256)
    mode: Literal["a", "b"] = "a"
    flag: bool = False
    target: Optional[float] = None
    BUDGETS: ClassVar = {"smoke": {"num_updates": 3}, "quick": {"num_updates": 30}}


def test_budgets_and_typed_overrides():
    assert make_config(_Cfg, "smoke").num_updates == 3
    assert make_config(_Cfg, "full").num_updates == TrainConfig.num_updates
    cfg = make_config(_Cfg, "quick", parse_overrides(
        ["lr=3e-4", "hidden=64,64,32", "mode=b", "flag=true", "target=none", "num_updates=1e3"]))
    assert (cfg.lr, cfg.hidden, cfg.mode, cfg.flag, cfg.target, cfg.num_updates) == (
        3e-4, (64, 64, 32), "b", True, None, 1000)


@pytest.mark.parametrize("pair, message", [
    ("lrr=1", "Did you mean: lr"),
    ("lr=fast", "bad value for lr"),
    ("num_updates=1.5", "bad value for num_updates"),
    ("mode=c", "unknown value for mode"),
    ("flag=maybe", "bad value for flag"),
    ("nokey", "key=value"),
])
def test_bad_overrides_are_usage_errors(pair, message):
    with pytest.raises(UsageError, match=message):
        make_config(_Cfg, "quick", parse_overrides([pair]))


@pytest.mark.parametrize("algo, overrides, message", [
    ("dt", {"n_heads": "3"}, "embed_dim (128) must be divisible by n_heads (3)"),
    ("dt", {"dropout": "1"}, "dropout must be in [0, 1)"),
    ("bc", {"num_updates": "-1", "hidden": "64,0"}, "num_updates must be >= 1, got -1; hidden"),
    ("ppo", {"num_minibatches": "4096", "rollout_steps": "16"}, "at most the transitions"),
    ("gs_ppo", {"goal_clip": "0"}, "goal_clip must be > 0"),
    ("gcsl_idm", {"vicreg_weight": "0.1"}, "set state_encoder"),
    ("dt_vicreg", {"vicreg_max_offset": "0"}, "vicreg_max_offset must be >= 1"),
    ("transformer_idm", {"goal_offset": "50"}, "goal_offset must be in 1..context_len"),
    ("gcsl_idm", {"extra_goal_sources": "gs_ppo"}, "gs_ppo needs a trained goal setter"),
    ("dt_vicreg", {"vicreg_projector": ""}, "vicreg_projector needs at least one size"),
    ("ppo_vicreg", {"hidden": ""}, "hidden needs a size"),
])
def test_configs_refuse_values_they_cannot_use(algo, overrides, message):
    entry = registry.get(algo)
    with pytest.raises(UsageError, match=re.escape(message)):
        make_config(entry.config_cls, "quick", overrides, entry.defaults, entry.presets)


def test_every_algorithm_accepts_its_own_budgets():
    for entry in registry.all_algorithms().values():
        for budget in ("smoke", "quick", "full"):
            make_config(entry.config_cls, budget, {}, entry.defaults, entry.presets)


def test_variant_fixed_fields_cannot_be_overridden():
    entry = registry.get("dt_noreturn")
    with pytest.raises(UsageError, match="fixed by this algorithm variant"):
        make_config(entry.config_cls, "smoke", {"use_returns": "true"}, entry.defaults)
    assert make_config(entry.config_cls, "smoke", {}, entry.defaults).use_returns is False


def test_unknown_budget():
    with pytest.raises(UsageError, match="budget"):
        make_config(_Cfg, "huge")
