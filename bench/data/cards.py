"""Reference cards: the committed ``<family>/reference.json`` that records a dataset family's
reference policies and the returns every dataset of the family is normalized with."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bench.data.catalog import ENV_REFERENCE_SCORES, RefScores, reference_problem
from bench.errors import DatasetError


def family_of(env_id: str) -> str:
    """The reference-policy family of an env id: ``Hopper-v5`` → ``hopper``."""
    return env_id.split("-")[0].lower()


def card_scores(card: dict[str, Any]) -> tuple[float, float, str]:
    """(ref_min, ref_max, source) that every dataset of a family normalizes with; a DatasetError
    naming the card when they are missing, not finite, or not ref_max > ref_min."""
    try:
        family = family_of(card["env_id"])
        ref_min, ref_max = card["random"]["mean_return"], card["expert"]["mean_return"]
        episodes = card["episodes"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise DatasetError(f"reference card {_card_name(card)} lacks its reference returns "
                           f"({type(exc).__name__}: {exc}); {_card_fix(card)}") from None
    problem = reference_problem(ref_min, ref_max)
    if problem:
        raise DatasetError(f"reference card {_card_name(card)}: its reference returns (random "
                           f"and expert mean_return) {problem}, so no normalized score can be "
                           f"computed; {_card_fix(card)}")
    source = (f"ref_min: uniform random policy, ref_max: {family} expert "
              f"reference policy; mean returns over {episodes} stochastic episodes "
              "(reference.json)")
    return ref_min, ref_max, source


def _card_name(card: Any) -> str:
    env_id = card.get("env_id") if isinstance(card, dict) else None
    return str(card_path(family_of(env_id))) if isinstance(env_id, str) else "(no env_id)"


def _card_fix(card: Any) -> str:
    return (f"restore {_card_name(card)} from git (`git checkout -- assets/`) or pick the "
            "reference policies again (`python -m bench.reference pick RUN_DIR --env ... --out "
            "...`).")


# Families whose reference policies SAC trains (scripts/train_reference.sh), as D4RL's were.
SAC_FAMILIES = ("walker2d", "halfcheetah")


def card_path(family: str) -> Path:
    """Where the reference card of ``family`` lives (it may not exist)."""
    return reference_dir() / family / "reference.json"


def reference_dir() -> Path:
    """``$BENCH_REFERENCE_DIR`` or the repository's ``assets/`` directory."""
    env = os.environ.get("BENCH_REFERENCE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "assets"


def load_card(family: str) -> dict[str, Any]:
    path = card_path(family)
    if not path.exists():
        how = (f"`scripts/train_reference.sh {family}` trains and picks them (SAC, 2M "
               "env steps: hours on a CPU)" if family in SAC_FAMILIES else
               "train a run with `--set snapshot_every=N` and pick them (`python -m "
               f"bench.reference pick RUN_DIR --env ... --out {reference_dir() / family}`)")
        raise DatasetError(f"no reference policy for {family}: {path} is missing; {how}, or "
                           "put the official dataset in your Minari root.")
    try:
        card = json.loads(path.read_text())
    except ValueError as exc:  # invalid JSON, or bytes that are not UTF-8
        raise DatasetError(f"reference card {path} cannot be read ({exc}); restore it from git "
                           "(`git checkout -- assets/`).") from None
    if not isinstance(card, dict):
        raise DatasetError(f"reference card {path} holds no JSON object; restore it from git "
                           "(`git checkout -- assets/`).")
    return card


def env_reference_scores(env_id: str) -> RefScores | None:
    """The env family's reference policies when committed, else the static table."""
    # No card: the static table. A card that is there but damaged is an error (card_scores),
    # not a reason to fall back silently to other reference returns.
    if card_path(family_of(env_id)).exists():
        card = load_card(family_of(env_id))
        if card.get("env_id") == env_id:
            return RefScores(*card_scores(card))
    return ENV_REFERENCE_SCORES.get(env_id)
