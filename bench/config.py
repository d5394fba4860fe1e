"""Config dataclass helpers: budget presets and type-checked ``--set key=value`` overrides.

Each algorithm's config is a dataclass whose defaults are the ``full`` (published) settings and
whose ``BUDGETS`` class variable maps ``smoke`` / ``quick`` to the fields they change.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, ClassVar, Literal

from bench.errors import UsageError, unknown_name

BUDGET_NAMES = ("smoke", "quick", "full")
EVAL_MODES = ("auto", "async", "sync", "sharded")  # see bench.evaluate.evaluate
DEVICES = ("auto", "cpu", "cuda")
MAX_SEED = 2**32 - 1  # numpy's global seeding (bench.seeding.seed_everything) takes 0 .. 2**32 - 1


def check_seed(seed: Any) -> int:
    """``seed`` if it is an integer that every seeded library accepts, else a usage error."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UsageError(f"a seed must be an integer in 0..{MAX_SEED}, got {seed!r}.")
    return seed


def check_count(kind: str, value: Any, minimum: int = 1) -> int:
    """``value`` if it is an integer >= ``minimum``, else a usage error."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{kind} must be an integer >= {minimum}, got {value!r}.")
    return value


def check_choice(kind: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else a usage error naming the close ones."""
    if not isinstance(value, str):
        raise UsageError(f"{kind} must be one of {', '.join(choices)}, got {value!r}.")
    if value not in choices:
        raise unknown_name(kind, value, choices)
    return value


@dataclasses.dataclass
class RunConfig:
    """The fields every run loop reads, counted in its units: updates (``TrainConfig``, offline)
    or env steps (``OnlineTrainConfig``). Each algorithm's config derives from one of the two."""

    log_every: int = 500  # write a metrics line every N units (updates; env steps online)
    checkpoint_every: int = 5_000  # atomic checkpoint every N units (updates; env steps online)
    eval_every: int = 0  # evaluate every N updates (env steps online) during training; 0: only at the end
    snapshot_every: int = 0  # write a standalone policy file every N updates (env steps online); 0: never

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {}
    # Float fields that are bounds, where inf means "no bound" (--set grad_clip=inf); every other
    # float must be finite.
    UNBOUNDED_OK: ClassVar[tuple[str, ...]] = ()
    # Fields renamed or retired since configs were saved (old name -> new name, or None for a
    # field that is gone): config_from_dict reads saved configs through it.
    FORMERLY: ClassVar[dict[str, str | None]] = {}

    @property
    def total_units(self) -> int:
        """The training budget in the loop's units."""
        raise NotImplementedError

    def checks(self) -> list[str]:
        """What is wrong with the fields this class declares, a phrase each (empty: usable).
        Every config class and mixin defines its own; ``validate`` runs them all, bases
        first, so none calls ``super()``."""
        # Learning rates (``lr``, ``idm_lr``, ``goal_lr``, ...): the optimizer would reject a
        # negative one only after the run directory exists, and an infinite one poisons step 1.
        rates = [f"{f.name} must be a finite number > 0, got {getattr(self, f.name)!r}"
                 for f in dataclasses.fields(self)
                 if (f.name == "lr" or f.name.endswith("_lr"))
                 and isinstance(getattr(self, f.name), (int, float))
                 and not 0 < getattr(self, f.name) < math.inf]
        return at_least(self, 0, "log_every", "checkpoint_every", "eval_every",
                        "snapshot_every") + rates

    def __post_init__(self) -> None:
        # Every config is checked when it is made (by make_config for the CLI, by hand, or by
        # dataclasses.replace), so a bad --set fails before any data is loaded or run
        # directory made, and no algorithm meets a config it cannot use.
        self.validate()

    def validate(self) -> None:
        """Raise a usage error naming every bad value that the ``checks`` of each class in the
        MRO find, bases first; NaN and infinities first and alone (a range check written as
        ``not lo <= x <= hi`` would name the same field again)."""
        if any("problems" in vars(klass) for klass in type(self).__mro__):
            raise TypeError(f"{type(self).__name__} defines problems(), which configs call "
                            "checks() now (each class its own fields, without super())")
        problems = not_a_number(self) or [problem for klass in reversed(type(self).__mro__)
                                          if "checks" in vars(klass)
                                          for problem in klass.checks(self)]
        if problems:
            fields = {f.name for f in dataclasses.fields(self)}
            named = dict.fromkeys(p.split()[0] for p in problems if p.split()[0] in fields)
            fix = " ".join(f"--set {name}=VALUE" for name in named) or "--set KEY=VALUE"
            raise UsageError(f"invalid {type(self).__name__}: {'; '.join(problems)} (on the "
                             f"command line: {fix}).")


@dataclasses.dataclass
class TrainConfig(RunConfig):
    """An offline algorithm's config: ``num_updates`` gradient steps on sampled batches."""

    num_updates: int = 100_000  # gradient steps
    batch_size: int = 256  # samples per update (transitions, windows or goal pairs)

    @property
    def total_units(self) -> int:
        return self.num_updates

    def checks(self) -> list[str]:
        return at_least(self, 1, "num_updates", "batch_size")


# The smoke and quick budgets of the 1M-update learners on single transitions (bc, td3_bc, iql).
TRANSITION_BUDGETS: dict[str, dict[str, Any]] = {
    "smoke": {"num_updates": 20, "log_every": 5, "checkpoint_every": 10, "batch_size": 32},
    "quick": {"num_updates": 20_000, "log_every": 500, "checkpoint_every": 5_000},
}


@dataclasses.dataclass
class OnlineTrainConfig(RunConfig):
    """An online algorithm's config: ``total_env_steps`` steps in its training envs."""

    total_env_steps: int = 1_000_000  # env steps in total
    log_every: int = 2048  # write a metrics line every N env steps
    checkpoint_every: int = 20_480  # atomic checkpoint every N env steps

    # Until 2026-12 online configs counted env steps in num_updates and carried an unused
    # batch_size.
    FORMERLY: ClassVar[dict[str, str | None]] = {"num_updates": "total_env_steps",
                                                 "batch_size": None}

    @property
    def total_units(self) -> int:
        return self.total_env_steps

    def checks(self) -> list[str]:
        return at_least(self, 1, "total_env_steps")


def not_a_number(config: Any) -> list[str]:
    """A problem for each field holding NaN or an infinity (alone or in a tuple): every comparison
    with NaN is false, so range checks would let it through, and either only ever poisons
    training (target_returns=inf evaluated to NaN returns). Fields named in the config's
    ``UNBOUNDED_OK`` may be +inf."""
    unbounded = getattr(config, "UNBOUNDED_OK", ())

    def bad(value: Any, name: str) -> bool:
        if isinstance(value, (tuple, list)):
            return any(bad(v, name) for v in value)
        return isinstance(value, float) and (math.isnan(value) or (
            math.isinf(value) and not (value > 0 and name in unbounded)))

    return [f"{f.name} must hold finite numbers, got {getattr(config, f.name)!r}"
            if isinstance(getattr(config, f.name), (tuple, list))
            else f"{f.name} must be a finite number, got {getattr(config, f.name)!r}"
            for f in dataclasses.fields(config) if bad(getattr(config, f.name), f.name)]


def at_least(config: Any, minimum: float, *names: str) -> list[str]:
    """A problem for each field in ``names`` whose value is below ``minimum``."""
    return [f"{name} must be >= {minimum:g}, got {getattr(config, name)!r}" for name in names
            if getattr(config, name) < minimum]


def positive(config: Any, *names: str) -> list[str]:
    """A problem for each field in ``names`` whose value is not above 0."""
    return [f"{name} must be > 0, got {getattr(config, name)!r}" for name in names
            if not getattr(config, name) > 0]


def positive_sizes(config: Any, *names: str) -> list[str]:
    """A problem for each layer-size tuple in ``names`` holding a size below 1, or holding none
    where the field's default holds some (``--set hidden=`` would train a linear model; a field
    whose default is ``()``, an optional encoder, may be empty)."""
    defaults = {f.name: f.default_factory() if f.default is dataclasses.MISSING
                and f.default_factory is not dataclasses.MISSING else f.default
                for f in dataclasses.fields(config)}
    problems = []
    for name in names:
        sizes = getattr(config, name)
        if any(size < 1 for size in sizes):
            problems.append(f"{name} must hold sizes >= 1, got {sizes!r}")
        elif not sizes and defaults.get(name) != ():
            problems.append(f"{name} must hold at least one layer size (e.g. {name}=256,256), "
                            f"got none")
    return problems


def make_config(
    cls: type, budget: str = "quick", overrides: dict[str, str] | None = None,
    fixed: dict[str, Any] | None = None, presets: dict[str, Any] | None = None,
) -> Any:
    """Build ``cls`` at ``budget``, then apply the variant's ``presets`` and ``fixed`` fields and
    the user's ``overrides`` (which may change presets but not fixed fields).

    Overrides are strings (from the CLI) parsed against each field's type annotation.
    """
    check_choice("budget", budget, BUDGET_NAMES)
    values: dict[str, Any] = {}
    values.update(cls.BUDGETS.get(budget, {}))
    values.update(presets or {})
    values.update(fixed or {})
    values.update(parse_overrides_for(cls, overrides, fixed))
    return cls(**values)


def current_names(cls: type, overrides: dict[str, str]) -> dict[str, str]:
    """``overrides`` under the field names ``cls`` has today: a field renamed since
    (``FORMERLY``) under its new name, a retired one left out; today's fields as they are."""
    fields = {f.name for f in dataclasses.fields(cls)}
    formerly = getattr(cls, "FORMERLY", {})
    return {(k if k in fields else formerly.get(k) or k): v for k, v in overrides.items()
            if k in fields or k not in formerly or formerly[k] is not None}


# Names CORL and d3rlpy give fields of the suite's configs: a user typing one is told the
# suite's name, since the closest spelling can be another field (CORL's iql_tau, IQL's
# expectile, is nearest to tau, the target networks' rate). Only offered where the config has
# the field named.
OTHER_LIBRARIES_NAMES: dict[str, tuple[str, str]] = {
    "discount": ("CORL", "gamma"),
    "iql_tau": ("CORL", "expectile"),
    "iql_deterministic": ("CORL", "deterministic_actor"),
    "policy_freq": ("CORL", "policy_every"),
    "max_timesteps": ("CORL", "num_updates"),
    "soft_target_update_rate": ("CORL", "tau"),
    "n_steps": ("d3rlpy", "num_updates"),
    "weight_temp": ("d3rlpy", "beta"),
    "conservative_weight": ("d3rlpy", "cql_alpha"),
    "n_action_samples": ("d3rlpy", "cql_n_actions"),
    "target_smoothing_sigma": ("d3rlpy", "policy_noise"),
    "target_smoothing_clip": ("d3rlpy", "noise_clip"),
    "update_actor_interval": ("d3rlpy", "policy_every"),
}


def parse_overrides_for(cls: type, overrides: dict[str, str] | None,
                        fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """The values of ``--set`` overrides for config class ``cls``: a usage error for a key the
    class lacks, a key the algorithm variant fixes, or a value its field's type cannot take."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    formerly = getattr(cls, "FORMERLY", {})
    for key, raw in (overrides or {}).items():
        if key not in fields and key in formerly:
            now = (f"it is {formerly[key]} now (--set {formerly[key]}={raw})" if formerly[key]
                   else "it had no effect and is gone")
            raise UsageError(f"{cls.__name__} has no field {key!r}: {now}.")
        if key not in fields and OTHER_LIBRARIES_NAMES.get(key, ("", ""))[1] in fields:
            library, ours = OTHER_LIBRARIES_NAMES[key]
            raise UsageError(f"{cls.__name__} has no field {key!r}: {library}'s {key} is {ours} "
                             f"here (--set {ours}={raw}).")
        if key not in fields:
            raise unknown_name(f"config key for {cls.__name__}", key, fields)
        if fixed and key in fixed:
            raise UsageError(f"{key!r} is fixed by this algorithm variant (to {fixed[key]!r}); "
                             f"use the base algorithm to change it.")
        values[key] = parse_value(key, raw, hints[key])
    return values


def canonical_overrides(cls: type, overrides: dict[str, str] | None,
                        fixed: dict[str, Any] | None = None) -> dict[str, str]:
    """``overrides`` with each value in the one spelling of what it parses to for ``cls``
    (``lr=1e-3``, ``lr=0.0010`` → ``lr=0.001``; ``flag=yes`` → ``flag=true``), so that the
    run directory, config.json and result.json name one setting one way whatever was typed.
    Errors as ``make_config``'s."""
    hints = typing.get_type_hints(cls)
    parsed = parse_overrides_for(cls, overrides, fixed)
    return {key: canonical_text(key, value, hints[key], (overrides or {})[key])
            for key, value in parsed.items()}


def canonical_text(key: str, value: Any, annotation: Any, raw: str) -> str:
    """The canonical ``--set`` text of ``value`` (parsed from ``raw`` as ``annotation``): floats
    as their shortest round-trip repr, ints in decimal, booleans ``true``/``false``, None
    ``none``, tuples comma-joined (a JSON list where commas would change them), text as typed.
    Whatever text it picks parses back to ``value``; ``raw`` is kept where none would."""
    candidates = [_plain_text(value)]
    if isinstance(value, (tuple, list)):
        candidates.append(json.dumps([_json_item(v) for v in value]))
    for text in candidates:
        try:
            if _same(parse_value(key, text, annotation), value):
                return text
        except UsageError:
            pass
    return raw


def _plain_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value + 0.0)  # + 0.0 turns -0.0 into 0.0: equal values, one spelling
    if isinstance(value, (tuple, list)):
        return ",".join(_plain_text(v) for v in value)
    return str(value)


def _json_item(value: Any) -> Any:
    # Elements go back through str() before parse_value reads them, so numbers and booleans
    # are written as their canonical text (JSON cannot hold inf).
    return value if isinstance(value, str) else _plain_text(value)


def _same(a: Any, b: Any) -> bool:
    """Equal values, NaN equal to NaN (NaN itself is refused later, by the config's checks)."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """Split ``["a=1", "b=x"]`` into a dict, with a clear error for malformed items."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects key=value, got {pair!r} (example: --set lr=3e-4).")
        out[key.strip()] = value.strip()
    return out


def _list_items(raw: str) -> list[Any]:
    """The items of a list value: a JSON list (``["a,b", "c"]``, for items holding commas), or
    comma-separated, bracketed or not (``dataset,self``, ``[dataset, self]``); spaces around
    items are not part of them, and empty items are dropped."""
    text = raw.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            text = text[1:-1]
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_value(key: str, raw: str, annotation: Any) -> Any:
    """Parse ``raw`` as ``annotation`` (int, float, bool, str, Literal, Optional, tuple)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    try:
        if origin in (typing.Union, types.UnionType):
            if raw.lower() in ("none", "null") and type(None) in args:
                return None
            inner = [a for a in args if a is not type(None)]
            return parse_value(key, raw, inner[0])
        if origin is Literal:
            if raw not in [str(a) for a in args]:
                raise unknown_name(f"value for {key}", raw, [str(a) for a in args])
            return next(a for a in args if str(a) == raw)
        if origin in (tuple, list):
            items = _list_items(raw)
            elem = args[0] if args else str
            parsed = [parse_value(key, str(i), elem) for i in items]
            return tuple(parsed) if origin is tuple else parsed
        if annotation is bool:
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if annotation is int:
            try:
                return int(raw)  # exact, however large
            except ValueError:
                value = float(raw)  # 1e5, 100000.0
            if not value.is_integer():
                raise ValueError("expected an integer")
            return int(value)
        if annotation is float:
            return float(raw)
        if annotation is str:
            return raw
    except UsageError:
        raise
    except (ValueError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: [[[[…
        raise UsageError(f"bad value for {key}: {raw!r} is not a valid "
                         f"{getattr(annotation, '__name__', annotation)} ({exc}).") from None
    raise UsageError(f"config key {key!r} has a type ({annotation}) that --set cannot parse.")


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_to_json(config: Any) -> dict[str, Any]:
    """``config_to_dict`` for a JSON file: an infinite bound (``--set grad_clip=inf``) is written
    as its ``--set`` text ``"inf"``, since strict JSON has no infinity; ``config_from_dict``
    reads it back."""
    def safe(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        if isinstance(value, (tuple, list)):
            return [safe(v) for v in value]
        return value

    return {k: safe(v) for k, v in config_to_dict(config).items()}


def config_from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a config saved with ``config_to_dict`` (e.g. in a checkpoint) or
    ``config_to_json`` (config.json, a reference card); tuple fields come back as tuples,
    ``"inf"`` in a float field as the number, and fields unknown to ``cls`` are an error."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    values = dict(values)
    for old, new in getattr(cls, "FORMERLY", {}).items():
        if old in values and old not in fields:
            value = values.pop(old)
            if new is not None:
                values.setdefault(new, value)
    unknown = set(values) - fields
    if unknown and all(k.startswith("vicreg_") for k in unknown) and not values.get("vicreg_weight"):
        # Saved before the VICReg fields moved to the *_vicreg variants' configs (2026-12):
        # at weight 0 they did nothing, so the base algorithm's config is the same setting.
        values = {k: v for k, v in values.items() if k in fields}
        unknown = set()
    if unknown:
        raise UsageError(f"saved config has fields {sorted(unknown)} that {cls.__name__} lacks")

    def restore(value: Any, annotation: Any) -> Any:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) is tuple and isinstance(value, list):
            return tuple(restore(v, args[0] if args else Any) for v in value)
        floaty = annotation is float or (typing.get_origin(annotation) in
                                         (typing.Union, types.UnionType) and float in args)
        if floaty and value in ("inf", "-inf", "nan"):
            return float(value)
        return value

    return cls(**{k: restore(v, hints[k]) for k, v in values.items()})


def field_help(cls: type) -> dict[str, str]:
    """Each field's help line: the comment on its line in the class body, else the comment lines
    right above it (the convention the configs follow), from ``cls`` and its bases."""
    import inspect
    import io
    import tokenize

    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # defined where no source is kept
            continue
        comments: dict[int, str] = {}
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string.lstrip("#").strip()
        lines = source.splitlines()
        names = {f.name for f in dataclasses.fields(klass)}
        for number, line in enumerate(lines, start=1):
            name = line.strip().split(":", 1)[0]
            if name not in names or ":" not in line or not line.startswith(" "):
                continue
            text = comments.get(number)
            if text is None:  # the comment block just above the field
                above = []
                row = number - 1
                while row in comments and lines[row - 1].strip().startswith("#"):
                    above.insert(0, comments[row])
                    row -= 1
                text = " ".join(above) if above else None
            if text:
                found[name] = text
    return found


def describe_fields(cls: type, budgets: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per field of ``cls``: name, type, value at each budget (``budgets``: name → a
    config made at that budget), help."""
    hints = typing.get_type_hints(cls)
    helps = field_help(cls)
    rows = []
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        kind = (annotation.__name__ if isinstance(annotation, type)
                else str(annotation).replace("typing.", ""))
        rows.append({"field": f.name, "type": kind,
                     **{b: getattr(c, f.name) for b, c in budgets.items()},
                     "help": helps.get(f.name, "")})
    return rows
