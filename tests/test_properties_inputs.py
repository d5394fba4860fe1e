"""Property-based tests of what a user types besides ``--set`` (issue 24): dataset ids and sweep
files. Any input gives a result or one clean usage error, never a traceback; an accepted id never
reaches outside the Minari root."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench.data import storage
from bench.data.resolve import check_dataset_name
from bench.errors import UsageError
from bench.sweep import SWEEP_KEYS, expand_all, load_sweep_file, make_spec

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

ID_PART = st.one_of(st.sampled_from(["", ".", "..", "bench", "hopper", "tiny-v0", "~", " "]),
                    st.text(max_size=8))
DATASET_IDS = st.one_of(st.text(max_size=40),
                        st.lists(ID_PART, min_size=1, max_size=4).map("/".join),
                        st.lists(ID_PART, min_size=1, max_size=3).map(lambda p: "/" + "/".join(p)))


@SETTINGS
@given(name=DATASET_IDS)
@example(name="./test/x/y-v0")
@example(name="test/x//y-v0")
@example(name="../outside/x-v0")
@example(name="a/../../b")
def test_a_dataset_id_is_accepted_inside_the_minari_root_or_is_a_usage_error(name):
    try:
        accepted = check_dataset_name(name)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    assert accepted == name
    if "/" in name:  # a Minari id: where its files are read from
        root = storage.minari_root().resolve()
        assert root in storage.dataset_dir(name).resolve().parents


# Values a sweep file may hold, right or wrong: every TOML type, nested a little.
SCALARS = st.one_of(st.text(max_size=12), st.integers(min_value=-2**63, max_value=2**63 - 1),
                    st.floats(), st.booleans(),
                    st.sampled_from(["bc", "dt", "ppo", "hopper-random", "Hopper-v5", "smoke",
                                     "quick", "sync", "cpu", "lr", "bogus"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["lr", "batch_size", "x"]),
                                                 inner, max_size=2)), max_leaves=6)
GRID = st.dictionaries(st.sampled_from(sorted(SWEEP_KEYS | {"grid", "unknown"})), VALUES,
                       max_size=5)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def _toml(top: dict, grids: list[dict]) -> str:
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in top.items()]
    for grid in grids:
        lines.append("[[grid]]")
        lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in grid.items()]
    return "\n".join(lines) + "\n"


@SETTINGS
@given(top=GRID, grids=st.lists(GRID.map(lambda g: {k: v for k, v in g.items() if k != "grid"}),
                                max_size=2))
@example(top={"algo": "bc", "dataset": ["hopper-random"], "seed": [0, 1],
              "set": {"lr": "1e-3"}}, grids=[])
@example(top={"algo": ["bc"], "dataset": "./hopper/x-v0"}, grids=[])
@example(top={"algo": "bc", "env": "Hopper-v5"}, grids=[{"algo": "ppo", "seed": -1}])
def test_a_sweep_file_gives_runs_or_one_usage_error(tmp_path_factory, top, grids):
    path = Path(tmp_path_factory.mktemp("sweep")) / "sweep.toml"
    path.write_text(_toml(top, grids), encoding="utf-8")
    out = path.parent / "results"
    try:
        specs = [make_spec(grid, {}) for grid in load_sweep_file(path)]
        requests = expand_all(specs, out)
    except UsageError as exc:
        assert "\n" not in str(exc).strip()
        return
    assert requests and all(r.out == out for r in requests)
    assert not out.exists()  # listing runs writes nothing
    assert os.path.exists(path)
