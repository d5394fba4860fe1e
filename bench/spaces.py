"""Which observation and action spaces an algorithm takes, and a clear refusal for the others.

Each algorithm declares the kinds of space it accepts (``Algorithm.accepts_observations`` and
``accepts_actions``); a run whose data or env has another kind is refused before anything is
written, with a message that names the space and the algorithms that do take it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from bench.errors import BenchError

# What each kind is called in messages.
KIND_NAMES = {
    "vector": "flat vector (Box)", "image": "image (Box of rank > 1)", "box": "continuous (Box)",
    "unbounded_box": "unbounded continuous (Box with infinite bounds)",
    "discrete": "Discrete", "multi_discrete": "MultiDiscrete", "multi_binary": "MultiBinary",
    "dict": "Dict", "tuple": "Tuple", "text": "Text", "graph": "Graph", "sequence": "Sequence",
}
_KINDS = ((spaces.Discrete, "discrete"), (spaces.MultiDiscrete, "multi_discrete"),
          (spaces.MultiBinary, "multi_binary"), (spaces.Dict, "dict"), (spaces.Tuple, "tuple"),
          (spaces.Text, "text"), (spaces.Graph, "graph"), (spaces.Sequence, "sequence"))
DEFAULT_OBSERVATIONS = ("vector",)
DEFAULT_ACTIONS = ("box",)


def is_goal_dict(space: Any) -> bool:
    """A goal-conditioned Dict observation space (gymnasium-robotics', D4RL/pointmaze's):
    ``observation``, ``achieved_goal`` and ``desired_goal`` vectors. The suite reads it as the
    vector ``observation`` (data) and ``[observation, desired_goal]`` rows (evaluation)."""
    return (isinstance(space, spaces.Dict)
            and {"observation", "achieved_goal", "desired_goal"} <= set(space.spaces)
            and all(isinstance(space[k], spaces.Box) and len(space[k].shape) == 1
                    for k in ("observation", "achieved_goal", "desired_goal")))


def space_kind(space: Any, role: str) -> str:
    """The kind of ``space``: for observations a Box is "vector" (rank <= 1) or "image", and so
    is a goal Dict (``is_goal_dict``: its ``observation`` vector); for actions any Box is "box";
    otherwise "discrete", "dict", "tuple", ... or the class's name."""
    if role == "observations" and is_goal_dict(space):
        return "vector"
    if isinstance(space, spaces.Box):
        if role == "actions":
            # Policies act in [-1, 1] mapped onto the box: an infinite bound has no such map.
            return "box" if np.isfinite(space.low).all() and np.isfinite(space.high).all() \
                else "unbounded_box"
        return "vector" if len(space.shape) <= 1 else "image"
    for cls, kind in _KINDS:
        if isinstance(space, cls):
            return kind
    return type(space).__name__


def describe(space: Any) -> str:
    """A short, one-line name of ``space`` (a Dict's repr lists every subspace's bounds)."""
    if isinstance(space, spaces.Box):
        return f"Box{tuple(space.shape)}"
    if isinstance(space, spaces.Dict):
        return f"Dict with keys {', '.join(map(str, space.spaces))}"
    if isinstance(space, spaces.Tuple):
        return f"Tuple of {len(space.spaces)} spaces"
    text = str(space)
    return text if len(text) <= 80 else type(space).__name__


def accepted(algo_cls: type, role: str) -> tuple[str, ...]:
    """The kinds of ``role`` ("observations" or "actions") that ``algo_cls`` takes (an algorithm
    class that declares nothing takes what every built-in one does)."""
    default = DEFAULT_OBSERVATIONS if role == "observations" else DEFAULT_ACTIONS
    return tuple(getattr(algo_cls, f"accepts_{role}", default))


def check_spaces(algo: str, algorithms: Mapping[str, type], observation_space: Any,
                 action_space: Any, source: str, error: type[BenchError] = BenchError) -> None:
    """Refuse ``source`` (e.g. "dataset X", "env Y") when ``algo`` cannot take its observation or
    action space (either may be None: not known, not checked); the message names the other
    ``algorithms`` (name → class, every registered one) that can."""
    algo_cls = algorithms[algo]
    for role, space in (("observations", observation_space), ("actions", action_space)):
        if space is None:
            continue
        kind = space_kind(space, role)
        takes = accepted(algo_cls, role)
        if kind in takes:
            continue
        others = [name for name, cls in algorithms.items() if kind in accepted(cls, role)]
        label = KIND_NAMES.get(kind, kind)
        who = (f"algorithms that do: {', '.join(others)}." if others
               else f"none of the registered algorithms takes {label} {role}.")
        raise error(f"{source} has {label} {role} ({describe(space)}), which {algo} cannot take "
                    f"(it takes {' or '.join(KIND_NAMES.get(k, k) for k in takes)} {role}); "
                    + who)
