import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, Optional

import pytest

from bench import registry
from bench.config import TrainConfig, make_config, parse_overrides
from bench.errors import UsageError
from conftest import run_cli


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
    with pytest.raises(UsageError, match="Did you mean: td3_bc"):  # case first
        registry.get("TD3_BC")


def test_another_librarys_name_is_only_offered_where_the_config_has_the_field():
    entry = registry.get("bc")  # no expectile: the usual unknown-key message
    with pytest.raises(UsageError, match="unknown config key for BCConfig 'iql_tau'"):
        make_config(entry.config_cls, "quick", {"iql_tau": "0.7"})


def test_an_optional_encoder_may_be_empty_where_hidden_layers_may_not():
    entry = registry.get("gcsl_idm")
    config = make_config(entry.config_cls, "quick", {"state_encoder": ""}, entry.defaults,
                         entry.presets)
    assert config.state_encoder == ()
    with pytest.raises(UsageError, match="hidden must hold at least one layer size"):
        make_config(entry.config_cls, "quick", {"hidden": ""}, entry.defaults, entry.presets)


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
    ("gcsl_idm_vicreg", {"state_encoder": ""}, "set state_encoder"),
    ("gs_ppo_vicreg", {"idm_state_encoder": ""}, "set idm_state_encoder"),
    # A base algorithm has no VICReg fields: only its *_vicreg variant does.
    ("dt", {"vicreg_weight": "0.1"}, "unknown config key for DTConfig 'vicreg_weight'"),
    ("dt_vicreg", {"vicreg_max_offset": "0"}, "vicreg_max_offset must be >= 1"),
    ("transformer_idm", {"goal_offset": "50"}, "goal_offset must be in 1..context_len"),
    ("gcsl_idm", {"goal_offset": "20", "max_offset": "10"}, "must be at most max_offset"),
    ("gcsl_idm", {"extra_goal_sources": "gs_ppo"}, "gs_ppo needs a trained goal setter"),
    ("dt_vicreg", {"vicreg_projector": ""}, "vicreg_projector must hold at least one layer size"),
    ("ppo_vicreg", {"hidden": ""}, "hidden must hold at least one layer size"),
    # NaN fails every comparison, so range checks alone would let it through
    ("dt", {"lr": "nan"}, "lr must be a finite number, got nan"),
    ("dt", {"target_returns": "3600,nan"}, "target_returns must hold finite numbers"),
    ("ppo", {"gamma": "nan"}, "invalid PPOConfig: gamma must be a finite number, got nan (on"),
    # Values that trained silently wrong or failed late (found by a review):
    ("dt", {"target_returns": "inf"}, "target_returns must hold finite numbers, got (inf,)"),
    ("dt", {"weight_decay": "-1"}, "weight_decay must be >= 0, got -1.0"),  # failed after mkdir
    ("dt", {"grad_clip": "-1"}, "grad_clip must be > 0, got -1.0"),  # flipped the gradient
    ("transformer_idm", {"grad_clip": "0"}, "grad_clip must be > 0, got 0.0"),  # zeroed it
    ("dt", {"reward_scale": "0"}, "reward_scale must be > 0"),
    ("ppo", {"clip_reward": "-1"}, "clip_reward must be > 0"),  # every reward became -1
    ("ppo", {"clip_coef": "-0.2"}, "clip_coef must be > 0"),
    ("ppo", {"max_grad_norm": "-inf"}, "max_grad_norm must be a finite number, got -inf"),
    ("gcsl_idm", {"goal_reward_scale": "-1"}, "goal_reward_scale must be > 0"),
    ("dt_vicreg", {"vicreg_var": "-1"}, "vicreg_var must be >= 0"),
    ("gs_ppo_v0", {"closeness_coef": "inf"}, "closeness_coef must be a finite number, got inf"),
    # Found by a user's-eye review: an empty size list trained linear networks; sac trained
    # nothing when it was to wait past its whole budget; the fix names the fields
    ("td3_bc", {"hidden": ""}, "hidden must hold at least one layer size"),
    ("cql", {"q_hidden": ""}, "q_hidden must hold at least one layer size"),
    ("sac", {"learning_starts": "50000"},
     "learning_starts (50000) must be below total_env_steps (50000)"),
    ("sac", {"buffer_size": "16", "batch_size": "32"}, "buffer_size (16) must hold at least one"),
    ("td3_bc", {"gamma": "2", "tau": "0"},
     "(on the command line: --set gamma=VALUE --set tau=VALUE)"),
    # CORL's and d3rlpy's names are pointed to the suite's (CORL's iql_tau is nearest to tau,
    # the target networks' rate, which the spelling hint used to suggest)
    ("iql", {"iql_tau": "0.7"}, "CORL's iql_tau is expectile here (--set expectile=0.7)"),
    ("td3_bc", {"discount": "0.9"}, "CORL's discount is gamma here (--set gamma=0.9)"),
    ("cql", {"conservative_weight": "5"}, "d3rlpy's conservative_weight is cql_alpha here"),
])
def test_configs_refuse_values_they_cannot_use(algo, overrides, message):
    entry = registry.get(algo)
    with pytest.raises(UsageError, match=re.escape(message)):
        make_config(entry.config_cls, "quick", overrides, entry.defaults, entry.presets)


def test_bounds_may_be_infinite_and_integers_parse_exactly():
    """+inf means "no clipping" where a field is a bound; ints do not pass through float."""
    dt, ppo = registry.get("dt"), registry.get("ppo")
    assert make_config(dt.config_cls, "quick", {"grad_clip": "inf"}).grad_clip == float("inf")
    config = make_config(ppo.config_cls, "quick", {"clip_reward": "inf", "clip_obs": "inf",
                                                   "max_grad_norm": "inf"})
    assert config.clip_reward == config.clip_obs == config.max_grad_norm == float("inf")
    with pytest.raises(UsageError, match="goal_clip must be a finite number, got -inf"):
        make_config(registry.get("gs_ppo").config_cls, "quick", {"goal_clip": "-inf"})
    big = make_config(_Cfg, "quick", parse_overrides(["num_updates=12345678901234567891"]))
    assert big.num_updates == 12345678901234567891


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


def _readme_example() -> str:
    """The worked example of README.md's "Adding an algorithm" section, verbatim."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("## Adding an algorithm"):]
    start = section.index("```python\n") + len("```python\n")
    return section[start:section.index("\n```", start)]


def test_the_readme_example_runs_from_outside_the_package(tiny_dataset, tmp_path, monkeypatch):
    plugin = tmp_path / "my_algo.py"
    plugin.write_text(_readme_example())
    monkeypatch.setenv("BENCH_ALGO_MODULES", str(plugin))
    out = tmp_path / "out"
    proc = run_cli("run", "--algo", "my_algo", "--dataset", tiny_dataset, "--budget", "smoke",
                   "--eval-episodes", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(next(out.rglob("result.json")).read_text())
    assert result["algo"] == "my_algo" and len(result["episode_returns"]) == 2
    metrics = [json.loads(line) for line in next(out.rglob("metrics.jsonl")).read_text().splitlines()]
    assert {"nll", "mse", "log_std"} <= set(metrics[-1])
    bad = run_cli("run", "--algo", "my_algo", "--dataset", tiny_dataset, "--budget", "smoke",
                  "--set", "min_log_std=3", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "min_log_std (3.0) must be below" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_a_missing_plugin_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("BENCH_ALGO_MODULES", "no_such_module_here")
    proc = run_cli("list")
    assert proc.returncode == 2 and "BENCH_ALGO_MODULES" in proc.stderr


def test_algos_show_lists_every_field_with_its_budget_values_and_help():
    import dataclasses

    from bench.algos.dt import DTConfig
    from conftest import run_cli

    proc = run_cli("algos", "show", "dt")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("field"))
    assert header.split()[:5] == ["field", "type", "smoke", "quick", "full"]
    rows = {line.split()[0]: line for line in lines[lines.index(header) + 1:]}
    assert set(rows) == {f.name for f in dataclasses.fields(DTConfig)}
    # num_updates: smoke, quick and full values in that order, then DTConfig's help line.
    smoke, quick, full = (make_config(DTConfig, b).num_updates for b in ("smoke", "quick", "full"))
    assert rows["num_updates"].split()[2:5] == [str(smoke), str(quick), str(full)]
    assert rows["num_updates"].endswith("gradient steps")
    assert rows["eval_every"].endswith("during training; 0: only at the end")  # inherited from TrainConfig
    assert rows["activation"].endswith("the DT authors' gym code uses ReLU")
    fixed = run_cli("algos", "show", "dt_noreturn")
    assert "fixed by this variant: use_returns=False" in fixed.stdout
    assert run_cli("algos", "show", "dtt").returncode == 2


def test_every_config_field_of_every_algorithm_has_a_help_line():
    """`bench algos show` prints each field's help: none may be blank (a plugin's fields
    included: the help is the comment beside the field or the comment lines above it)."""
    from bench.config import field_help

    for name, entry in registry.all_algorithms().items():
        helps = field_help(entry.config_cls)
        missing = [f.name for f in dataclasses.fields(entry.config_cls) if not helps.get(f.name)]
        assert not missing, f"{name} ({entry.config_cls.__name__}): no help for {missing}"


@pytest.mark.parametrize("raw", ["dataset,self", "dataset, self", "[dataset, self]",
                                 '["dataset", "self"]', " dataset ,self ", "dataset,,self,"])
def test_list_values_parse_one_way_however_spaced_or_bracketed(raw):
    from bench.config import parse_value

    assert parse_value("extra_goal_sources", raw, tuple[str, ...]) == ("dataset", "self")


def test_a_json_list_keeps_items_that_hold_commas_or_spaces():
    from bench.config import parse_value

    assert parse_value("k", '["a,b", " c"]', tuple[str, ...]) == ("a,b", " c")
