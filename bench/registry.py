"""The algorithm registry: the only place the CLI learns which algorithms exist.

An algorithm file in ``bench/algos/`` registers itself with :func:`register`; variants of one class
(``dt`` and ``dt_noreturn``) are registered configurations of it, not copies.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from bench.errors import unknown_name

Kind = Literal["offline", "online"]


@dataclass(frozen=True)
class AlgoEntry:
    name: str
    cls: type
    description: str
    kind: Kind
    defaults: dict[str, Any] = field(default_factory=dict)  # config fields fixed by this variant
    presets: dict[str, Any] = field(default_factory=dict)  # variant defaults `--set` may change

    @property
    def config_cls(self) -> type:
        return self.cls.Config


_REGISTRY: dict[str, AlgoEntry] = {}
_loaded = False


def register(
    name: str, *, description: str, kind: Kind = "offline", defaults: dict[str, Any] | None = None,
    presets: dict[str, Any] | None = None,
) -> Callable[[type], type]:
    """Class decorator: ``@register("bc", description="...")``.

    Stack it to register variants: ``@register("dt_noreturn", ..., defaults={"use_returns": False})``.
    ``defaults`` are fixed by the variant (what makes it that variant); ``presets`` are the
    variant's starting values that ``--set`` may still change (e.g. a VICReg weight).
    """

    def decorator(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"algorithm {name!r} is registered twice")
        if not hasattr(cls, "Config"):
            raise TypeError(f"{cls.__name__} must define a Config dataclass")
        _REGISTRY[name] = AlgoEntry(name, cls, description, kind, dict(defaults or {}),
                                    dict(presets or {}))
        return cls

    return decorator


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    import bench.algos as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"bench.algos.{info.name}")
    _loaded = True


def get(name: str) -> AlgoEntry:
    _load_all()
    if name not in _REGISTRY:
        raise unknown_name("algorithm", name, _REGISTRY)
    return _REGISTRY[name]


def all_algorithms() -> dict[str, AlgoEntry]:
    _load_all()
    return dict(sorted(_REGISTRY.items()))
