"""Property-based tests of ``--set`` parsing (issue 24, row 8): for every field type the configs
use, any text gives a value or a clean usage error, and the canonical spelling of a value reads
back as that value, so that every spelling of one value names one variant."""
import dataclasses
import json
import math
import typing
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Optional

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench import registry
from bench.config import TrainConfig, canonical_overrides, parse_value
from bench.errors import UsageError
from bench.records import variant_name

SETTINGS = settings(max_examples=200, deadline=None)


@dataclass
class _Cfg(TrainConfig):
    lr: float = 1e-3
    steps: int = 10
    flag: bool = False
    name: str = "x"
    act: Literal["relu", "gelu"] = "relu"
    target: Optional[float] = None
    hidden: tuple[int, ...] = (256, 256)
    returns: tuple[float, ...] = (3600.0,)
    sources: tuple[str, ...] = ()


HINTS = typing.get_type_hints(_Cfg)
KEYS = [f.name for f in dataclasses.fields(_Cfg) if f.name in _Cfg.__annotations__]


def _real_fields() -> list[tuple[str, str]]:
    """One (algorithm, field) per distinct field type among the registered configs."""
    seen: dict[str, tuple[str, str]] = {}
    for name, entry in registry.all_algorithms().items():
        hints = typing.get_type_hints(entry.config_cls)
        for f in dataclasses.fields(entry.config_cls):
            if f.name not in entry.defaults:
                seen.setdefault(repr(hints[f.name]), (name, f.name))
    return sorted(seen.values())


REAL_FIELDS = _real_fields()

# Text a user might type: anything at all, and near misses of each type's forms.
TEXT = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\A[ +-]?[0-9_]{0,6}(\.[0-9]{0,6})?([eE][+-]?[0-9]{1,3})?\s?\Z"),
    st.sampled_from(["", "nan", "-inf", "Infinity", "none", "NULL", "yes", "off", "[", "[]",
                     "[1, 2]", '["a", 1]', "[[1]]", "1,,2", ",", "1e999", "0x10", "1_000",
                     "relu", "GELU"]),
    st.lists(st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.booleans(),
                       st.none()), max_size=4).map(json.dumps),
)


def _same(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _parse_or_usage_error(key: str, text: str, annotation):
    try:
        return True, parse_value(key, text, annotation)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return False, None


@SETTINGS
@given(key=st.sampled_from(KEYS), text=TEXT)
@example(key="hidden", text="[" * 100_000)  # json's recursion limit: a RecursionError once
@example(key="steps", text="1e400")
def test_any_text_parses_or_is_a_usage_error_and_canonical_text_round_trips(key, text):
    annotation = HINTS[key]
    ok, value = _parse_or_usage_error(key, text, annotation)
    if not ok:
        return
    canonical = canonical_overrides(_Cfg, {key: text})[key]
    assert _same(parse_value(key, canonical, annotation), value)
    assert canonical_overrides(_Cfg, {key: canonical}) == {key: canonical}  # a fixed point


@SETTINGS
@given(field=st.sampled_from(REAL_FIELDS), text=TEXT)
def test_every_field_type_of_the_registered_configs_parses_or_is_a_usage_error(field, text):
    algo, key = field
    entry = registry.get(algo)
    try:
        canonical = canonical_overrides(entry.config_cls, {key: text}, entry.defaults)[key]
    except UsageError:
        return
    annotation = typing.get_type_hints(entry.config_cls)[key]
    assert _same(parse_value(key, canonical, annotation), parse_value(key, text, annotation))


def _float_spellings(x: float) -> list[str]:
    return [repr(x), format(x, ".17e"), format(x, ".17g").upper(), str(Decimal(x)),
            f" {x!r} ", (repr(x) + "0") if "e" not in repr(x) and "." in repr(x) else repr(x)]


@SETTINGS
@given(x=st.floats(allow_nan=False, allow_infinity=False))
@example(x=0.001)
def test_spellings_of_one_float_name_one_variant(x):
    names = {variant_name("quick", canonical_overrides(_Cfg, {"lr": s}))
             for s in _float_spellings(x)}
    assert len(names) == 1, names
    assert names == {f"quick,lr={x + 0.0!r}"} or "~" in names.pop()


@SETTINGS
@given(n=st.integers(min_value=-2**53, max_value=2**53))
def test_spellings_of_one_int_name_one_variant(n):
    spellings = [str(n), f"{n}.0", f"+{n}" if n >= 0 else str(n), f"{float(n):.17e}", f" {n} "]
    assert {canonical_overrides(_Cfg, {"steps": s})["steps"] for s in spellings} == {str(n)}


@SETTINGS
@given(sizes=st.lists(st.integers(min_value=0, max_value=10**6), max_size=5),
       flag=st.booleans(), spelling=st.integers(0, 5))
def test_spellings_of_tuples_and_booleans_name_one_variant(sizes, flag, spelling):
    tuple_spellings = [",".join(map(str, sizes)), json.dumps(sizes), ", ".join(map(str, sizes)),
                       ",".join(map(str, sizes)) + ",", json.dumps([float(s) for s in sizes])]
    assert {canonical_overrides(_Cfg, {"hidden": s})["hidden"] for s in tuple_spellings} == {
        ",".join(map(str, sizes))}
    words = (["true", "True", "YES", "1", "on", "On"] if flag
             else ["false", "FALSE", "no", "0", "off", "Off"])
    assert canonical_overrides(_Cfg, {"flag": words[spelling]})["flag"] == str(flag).lower()
    assert canonical_overrides(_Cfg, {"target": ["none", "None", "NULL"][spelling % 3]}) == {
        "target": "none"}
