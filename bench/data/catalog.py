"""Dataset aliases, where each comes from, and the reference-score registry.

An alias (``hopper-medium``) names what a researcher means; the resolver (``resolve.py``) turns it
into a concrete Minari dataset: the official Farama one when it is present or downloadable, else the
suite's own, self-generated one under the ``bench/`` namespace. The two are never confused: the run
records which one it trained on, with provenance and checksum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.errors import DatasetError

# D4RL's reference returns (Fu et al. 2020, d4rl/infos.py: REF_MIN_SCORE / REF_MAX_SCORE, the
# same for every dataset of an env). Official Minari mujoco/* v0 datasets ship no reference
# scores, so the suite keeps them here, with their source, instead of inventing any.
D4RL_REFERENCE_RETURNS = {  # family: (random, expert)
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "halfcheetah": (-280.178953, 12135.0),
}
# The locomotion families the suite makes datasets for: family -> env id
LOCOMOTION_ENVS = {"hopper": "Hopper-v5", "walker2d": "Walker2d-v5",
                   "halfcheetah": "HalfCheetah-v5"}


def d4rl_source(family: str) -> str:
    low, high = D4RL_REFERENCE_RETURNS[family]
    return f"D4RL {family} reference returns (Fu et al. 2020), random {low} / expert {high}"


class BadReferenceScores(DatasetError):
    """Reference returns that cannot normalize a score; ``problem`` says why, a phrase."""

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


def reference_problem(ref_min: Any, ref_max: Any) -> str | None:
    """Why ``ref_min`` / ``ref_max`` cannot normalize a score, a phrase; None when they can.
    The score is ``100 * (R - ref_min) / (ref_max - ref_min)``: equal, NaN or infinite
    references give an infinite or NaN score, and a reversed pair a score that grows as the
    return falls."""
    def number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    shown = f"ref_min {ref_min!r}, ref_max {ref_max!r}"
    if not (number(ref_min) and number(ref_max)):
        return f"are not numbers ({shown})"
    if not (math.isfinite(ref_min) and math.isfinite(ref_max)):
        return f"are not finite ({shown})"
    if not ref_max > ref_min:
        return f"do not have ref_max above ref_min ({shown})"
    if not math.isfinite(ref_max - ref_min):
        return f"are too far apart to subtract ({shown})"
    if not math.isfinite(100.0 / (ref_max - ref_min)):
        return f"are too close together to divide by ({shown})"
    return None


@dataclass(frozen=True)
class RefScores:
    ref_min: float
    ref_max: float
    source: str

    def __post_init__(self) -> None:
        # Checked wherever reference scores are made (metadata, reference cards, the tables
        # here), so a bad pair stops a run before its directory exists instead of scoring -inf.
        problem = reference_problem(self.ref_min, self.ref_max)
        if problem:
            raise BadReferenceScores(f"reference scores from {self.source!r} {problem}; a "
                                     "normalized score needs finite ones with ref_max above "
                                     "ref_min.", problem)


# Reference scores for datasets whose metadata lacks them (official Minari v0 hopper).
REFERENCE_SCORES: dict[str, RefScores] = {
    f"mujoco/{family}/{kind}-v0": RefScores(*D4RL_REFERENCE_RETURNS[family], d4rl_source(family))
    for family in LOCOMOTION_ENVS for kind in ("simple", "medium", "expert")
}


@dataclass(frozen=True)
class DatasetAlias:
    alias: str
    env_id: str
    local_id: str  # the suite's own dataset id (bench/ namespace)
    official_id: str | None  # Farama's id, when one exists
    generator: str  # how `bench datasets make` produces the local one
    description: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    default_transitions: int = 1_000_000
    # Policy-made locomotion data is collected in this many independent blocks, side by side on
    # the cores (bench.making.generate.collect_blocks); the data depend on it, so it is fixed per
    # dataset, not taken from the machine.
    making_blocks: int = 1


LOCOMOTION_KINDS = {
    # kind: (Farama's Minari dataset, or None where it has none; description)
    "random": (None, "uniform random actions (the suite's own; Farama has no random v0)"),
    "medium": ("mujoco/{family}/medium-v0", "a policy at about one third of expert return"),
    "medium-replay": (None, "every episode of the reference training until it reached the "
                            "medium policy"),
    "medium-expert": (None, "medium + expert, concatenated"),
    "expert": ("mujoco/{family}/expert-v0", "the expert reference policy"),
}

ALIASES: dict[str, DatasetAlias] = {
    f"{family}-{kind}": DatasetAlias(
        alias=f"{family}-{kind}",
        env_id=env_id,
        local_id=f"bench/{family}/{kind}-v0",
        official_id=official.format(family=family) if official else None,
        generator=kind,
        description=desc,
        # D4RL's medium-expert is both 1M-transition parts (2M); the others are 1M each.
        default_transitions=2_000_000 if kind == "medium-expert" else 1_000_000,
        # Two blocks make 1M Walker2d transitions in about half the time on 2 cores; Hopper's
        # datasets were made in one before blocks existed, and stay so (the same data, and the
        # checksums its committed runs record).
        making_blocks=1 if family == "hopper" else 2,
    )
    for family, env_id in LOCOMOTION_ENVS.items()
    for kind, (official, desc) in LOCOMOTION_KINDS.items()
}

# OGBench's navigation datasets (Park et al., ICLR 2025), made with its recipe
# (bench.making.ogbench_maze); evaluated on its five task goals, scored by success rate.
OGBENCH_NAVIGATE = {
    "pointmaze-medium-navigate": "a noisy scripted expert navigating PointMaze-medium to random "
                                 "goals (OGBench's recipe)",
    "pointmaze-large-navigate": "a noisy scripted expert navigating PointMaze-large to random "
                                "goals (OGBench's recipe)",
}
# OGBench's manipulation "play" datasets, made with its recipe (bench.making.ogbench_cube).
OGBENCH_PLAY = {
    "cube-single-play": "a noisy scripted arm (OGBench's plan oracle) moving one cube to random "
                        "targets (OGBench's recipe)",
}
# Every goal task dataset: scored by success rate on its five task goals.
OGBENCH_GOAL_TASKS = (*OGBENCH_NAVIGATE, *OGBENCH_PLAY)
ALIASES.update({
    name: DatasetAlias(
        alias=name, env_id=f"bench/{name}-v0",
        local_id=f"bench/{name.split('-', 1)[0]}/{name.split('-', 1)[1]}-v0", official_id=None,
        generator="ogbench-navigate" if name in OGBENCH_NAVIGATE else "ogbench-play",
        description=desc)
    for name, desc in {**OGBENCH_NAVIGATE, **OGBENCH_PLAY}.items()
})
# A goal task's score: the success rate in percent (its episodes return 1 on success, else 0).
SUCCESS_SOURCE = ("success rate: an episode returns 1 when it reaches its goal, else 0, so the "
                  "normalized score is the success rate in percent")

CARRACING_KINDS = {
    "medium": "the track driver at target speed 40 with Gaussian action noise (std 0.2)",
    "expert": "the track driver at target speed 90, exact actions",
    "medium-expert": "carracing-medium + carracing-expert, concatenated",
}

ALIASES.update({
    f"carracing-{kind}": DatasetAlias(
        alias=f"carracing-{kind}",
        env_id="bench/CarRacingLatent-v0",
        local_id=f"bench/carracing/{kind}-v0",
        official_id=None,
        generator=f"carracing-{kind}",
        description=desc + "; observations are 64-d latents of the frozen encoder",
        # About 300 episodes each: the expert finishes its lap in ~670-1,000 steps (about 810
        # on average), medium almost always runs the full 1,000.
        default_transitions={"medium": 300_000, "expert": 250_000}.get(kind, 550_000),
    )
    for kind, desc in CARRACING_KINDS.items()
})


def reference_scores(dataset_id: str, metadata: dict[str, Any]) -> RefScores | None:
    """Reference scores of a dataset: its own metadata first, then the registry."""
    lo, hi = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    if lo is not None and hi is not None:
        provenance = metadata.get("bench_provenance")
        provenance = provenance if isinstance(provenance, dict) else {}
        source = provenance.get("ref_scores_source", "dataset metadata")
        try:
            return RefScores(float(lo), float(hi), str(source))
        except (TypeError, ValueError):
            problem = f"are not numbers (ref_min_score {lo!r}, ref_max_score {hi!r})"
        except BadReferenceScores as exc:
            problem = exc.problem
        raise DatasetError(f"dataset {dataset_id}: its metadata's reference scores {problem}, so "
                           "no normalized score can be computed; "
                           + _remake_hint(dataset_id, provenance)) from None
    return REFERENCE_SCORES.get(dataset_id)


def _remake_hint(dataset_id: str, provenance: dict[str, Any]) -> str:
    """How to get a dataset's metadata back: restore the file, or make the suite's own again."""
    alias = provenance.get("alias")
    if not isinstance(alias, str) or alias not in ALIASES:
        alias = next((a.alias for a in ALIASES.values() if a.local_id == dataset_id), None)
    restore = "restore its data/metadata.json (from a backup or a fresh download)"
    if alias is None:
        return restore + "."
    return f"{restore}, or make the dataset again: `bench datasets make {alias} --force`."


# Reference scores for online runs on a bare env id (``bench run --algo ppo --env Hopper-v5``).
ENV_REFERENCE_SCORES: dict[str, RefScores] = {
    env_id: RefScores(*D4RL_REFERENCE_RETURNS[family],
                      d4rl_source(family) + f" (provisional for {env_id} until the suite's own "
                      "reference policies are measured)")
    for family, env_id in LOCOMOTION_ENVS.items()
}
