"""The algorithm registry: the only place the CLI learns which algorithms exist.

An algorithm file in ``bench/algos/`` registers itself with :func:`register`; variants of one class
(``dt`` and ``dt_noreturn``) are registered configurations of it, not copies. Algorithms kept
outside the package are loaded too: modules (``my_pkg.my_algo``) or files (``/path/my_algo.py``)
listed in ``BENCH_ALGO_MODULES`` (separated by commas), and modules that installed packages declare
in the ``bench.algorithms`` entry-point group.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from bench.errors import UsageError, unknown_name

Kind = Literal["offline", "online"]


@dataclass(frozen=True)
class AlgoEntry:
    name: str
    cls: type
    description: str
    kind: Kind
    defaults: dict[str, Any] = field(default_factory=dict)  # config fields fixed by this variant
    presets: dict[str, Any] = field(default_factory=dict)  # variant defaults `--set` may change
    config: type | None = None  # the variant's own config class (default: the class's Config)

    @property
    def config_cls(self) -> type:
        return self.config or self.cls.Config


_REGISTRY: dict[str, AlgoEntry] = {}
_loaded = False


def register(
    name: str, *, description: str, kind: Kind = "offline", defaults: dict[str, Any] | None = None,
    presets: dict[str, Any] | None = None, config: type | None = None,
) -> Callable[[type], type]:
    """Class decorator: ``@register("bc", description="...")``.

    Stack it to register variants: ``@register("dt_noreturn", ..., defaults={"use_returns": False})``.
    ``defaults`` are fixed by the variant (what makes it that variant); ``presets`` are the
    variant's starting values that ``--set`` may still change (e.g. a VICReg weight);
    ``config`` a config class of the variant's own, for fields only it has (a subclass of the
    algorithm's ``Config``: ``DTVICRegConfig`` adds the VICReg fields to ``DTConfig``).
    """

    def decorator(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"algorithm {name!r} is registered twice")
        if not hasattr(cls, "Config"):
            raise TypeError(f"{cls.__name__} must define a Config dataclass")
        if config is not None and not issubclass(config, cls.Config):
            raise TypeError(f"{name}'s config {config.__name__} must subclass {cls.Config.__name__}")
        _REGISTRY[name] = AlgoEntry(name, cls, description, kind, dict(defaults or {}),
                                    dict(presets or {}), config)
        return cls

    return decorator


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    # The built-in algorithms are plugins like any other, found by name: the registry sits below
    # them (they import `register`), so it loads them as it loads BENCH_ALGO_MODULES.
    pkg = importlib.import_module("bench.algos")
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"bench.algos.{info.name}")
    for entry_point in importlib.metadata.entry_points(group="bench.algorithms"):
        entry_point.load()
    for item in filter(None, (s.strip() for s in os.environ.get("BENCH_ALGO_MODULES", "").split(","))):
        _import_plugin(item)
    _loaded = True


def _import_plugin(item: str) -> None:
    """Import one ``BENCH_ALGO_MODULES`` item: a ``.py`` file or a module name."""
    if item.endswith(".py"):
        path = Path(item).expanduser().resolve()
        if not path.is_file():
            raise UsageError(f"BENCH_ALGO_MODULES names {item}, which is not a file.")
        name = f"bench_plugin_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file runs
        spec.loader.exec_module(module)
        return
    try:
        importlib.import_module(item)
    except ModuleNotFoundError as exc:
        raise UsageError(f"BENCH_ALGO_MODULES names module {item!r}, which cannot be imported "
                         f"({exc}); give an importable module or a path to a .py file.") from None


def get(name: str) -> AlgoEntry:
    _load_all()
    if name not in _REGISTRY:
        raise unknown_name("algorithm", name, _REGISTRY)
    return _REGISTRY[name]


def all_algorithms() -> dict[str, AlgoEntry]:
    _load_all()
    return dict(sorted(_REGISTRY.items()))
