"""Every registered algorithm through the same checks (issue 25): smoke training and evaluation,
checkpoint → kill → ``--resume`` to the same numbers, policy snapshots where it exports them, and
``state_dict`` → fresh instance → the same actions.

The parameters are ``registry.all_algorithms()`` at collection time, so an algorithm added to
``bench/algos/``, an installed ``bench.algorithms`` entry point or a file listed in
``BENCH_ALGO_MODULES`` gets every check without a line here
(``test_a_drop_in_algorithm_gets_every_check``).

Each algorithm trains ``6 * unit`` (unit: one update offline, one rollout online), checkpoints
every ``2 * unit``, and the kill lands at ``5 * unit``: after two checkpoints, between the last
one and the end, so the resumed run redoes a unit from restored state.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bench import registry
from bench.config import make_config
from bench.data import Sampler
from bench.run import RunRequest, can_export_policy, execute, run_dir
from bench.run.source import DataSource
from conftest import TINY_GOAL_ALIAS, SimulatedKill, kill_after

ALGOS = registry.all_algorithms()  # at collection time: plugins included
EXPORTERS = [name for name, entry in ALGOS.items() if can_export_policy(entry)]
ONLINE_ENV = "Hopper-v5"
ONLINE_ROLLOUT = 128  # env steps per rollout for online algorithms that have ``rollout_steps``
QUIET = lambda m: None  # noqa: E731


def _fields(entry: registry.AlgoEntry) -> set[str]:
    return {f.name for f in dataclasses.fields(entry.config_cls)}


def _config(entry: registry.AlgoEntry, overrides: dict[str, str]) -> Any:
    return make_config(entry.config_cls, "smoke", overrides, entry.defaults, entry.presets)


@pytest.fixture(autouse=True)
def _goal_data(request):
    """Goal-conditioned algorithms train on a tiny goal task (made once per session)."""
    if any(_takes_task_goals(entry) for entry in ALGOS.values()):
        request.getfixturevalue("tiny_goal_dataset")


def _source_kwargs(entry: registry.AlgoEntry, config: Any, tiny_dataset: str) -> dict[str, Any]:
    """Offline, and online where the data are required: the tiny dataset (goal-conditioned
    algorithms: the tiny goal task); else the bare env."""
    if entry.kind == "online" and entry.cls.dataset_use(config) in ("none", "optional"):
        return {"dataset": None, "env": ONLINE_ENV}
    return {"dataset": TINY_GOAL_ALIAS if _takes_task_goals(entry) else tiny_dataset, "env": None}


def _takes_task_goals(entry: registry.AlgoEntry) -> bool:
    """Algorithms that only run on goal tasks (a class-level True; the IDMs decide per config)."""
    return entry.cls.uses_task_goals is True


@dataclass
class Built:
    algo: Any
    sampler: Sampler | None
    source: DataSource
    config: Any


def _build(name: str, overrides: dict[str, str], tiny_dataset: str, seed: int = 0) -> Built:
    """The algorithm as ``bench.run.execute`` builds it, without a run directory."""
    entry = ALGOS[name]
    config = _config(entry, overrides)
    req = RunRequest(algo=name, seed=seed, budget="smoke", overrides=overrides,
                     **_source_kwargs(entry, config, tiny_dataset))
    source = DataSource.from_request(req, QUIET)
    source.prepare(entry.kind == "offline" or entry.cls.dataset_use(config) != "none", name)
    spec, sampler = source.spec, None
    if source.flat is not None:
        sampler = Sampler(source.flat, seed=seed)
        spec = dataclasses.replace(
            sampler.spec(spec.action_low, spec.action_high, spec.max_episode_steps, spec.env_id),
            goal_dim=spec.goal_dim, num_tasks=spec.num_tasks)
    algo = entry.cls(config, spec, torch.device("cpu"))
    if sampler is not None:
        algo.attach_dataset(sampler)
    if entry.kind == "online":
        algo.setup(source.make_env, seed)
    return Built(algo, sampler, source, config)


def _advance(name: str, built: Built, step: int) -> None:
    """Unit number ``step`` of training, as the run loop does it."""
    if ALGOS[name].kind == "offline":
        built.algo.update(built.algo.sample(built.sampler), step)
    else:
        built.algo.train_iteration()


def _base_overrides(name: str) -> dict[str, str]:
    entry = ALGOS[name]
    if entry.kind == "online" and "rollout_steps" in _fields(entry):
        return {"rollout_steps": str(ONLINE_ROLLOUT)}
    return {}


def _unit(name: str, tiny_dataset: str) -> int:
    """Units the loop counts per ``advance``: 1 update offline, one rollout's env steps online."""
    entry = ALGOS[name]
    if entry.kind == "offline":
        return 1
    config = _config(entry, _base_overrides(name))
    if {"rollout_steps", "num_envs"} <= _fields(entry):
        return config.rollout_steps * config.num_envs
    built = _build(name, _base_overrides(name), tiny_dataset)  # an online plugin: measure it
    before = built.algo.env_steps
    built.algo.train_iteration()
    return built.algo.env_steps - before


@dataclass
class Plan:
    unit: int
    overrides: dict[str, str]

    @property
    def total(self) -> int:
        return 6 * self.unit

    def request(self, name: str, out: Path, tiny_dataset: str, **kw: Any) -> RunRequest:
        entry = ALGOS[name]
        where = _source_kwargs(entry, _config(entry, self.overrides), tiny_dataset)
        return RunRequest(algo=name, seed=1, budget="smoke", overrides=self.overrides, out=out,
                          eval_episodes=2, eval_mode="sync", **where, **kw)


def _plan(name: str, tiny_dataset: str) -> Plan:
    unit = _unit(name, tiny_dataset)
    budget_field = "num_updates" if ALGOS[name].kind == "offline" else "total_env_steps"
    overrides = {**_base_overrides(name), budget_field: str(6 * unit),
                 "checkpoint_every": str(2 * unit), "log_every": str(unit)}
    if can_export_policy(ALGOS[name]):
        overrides["snapshot_every"] = str(2 * unit)
    return Plan(unit, overrides)


@dataclass
class Uninterrupted:
    plan: Plan
    result: dict[str, Any]
    directory: Path


_RUNS: dict[str, Uninterrupted] = {}


def _uninterrupted(name: str, tiny_dataset: str, tmp_path_factory) -> Uninterrupted:
    """The run start to end, made once per algorithm and shared by the checks that read it."""
    if name not in _RUNS:
        plan = _plan(name, tiny_dataset)
        req = plan.request(name, tmp_path_factory.mktemp(f"full-{name}"), tiny_dataset)
        result = execute(req, log=QUIET)
        _RUNS[name] = Uninterrupted(plan, result, run_dir(req))
    return _RUNS[name]


def _metrics(directory: Path) -> list[dict[str, Any]]:
    rows = [json.loads(l) for l in (directory / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def _same_bits(a: np.ndarray, b: np.ndarray, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, f"{what}: {a.shape}/{a.dtype} vs {b.shape}/{b.dtype}"
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    assert a.tobytes() == b.tobytes(), f"{what}: not bit-identical (max |diff| {np.nanmax(diff)})"


# -- 1. smoke training and evaluation ---------------------------------------------------------

@pytest.mark.parametrize("name", list(ALGOS))
def test_smoke_training_and_evaluation(name, tiny_dataset, tmp_path_factory):
    run = _uninterrupted(name, tiny_dataset, tmp_path_factory)
    on_disk = json.loads((run.directory / "result.json").read_text())
    assert on_disk == run.result
    conditions = [c.label for c in _build(name, run.plan.overrides, tiny_dataset).algo.eval_conditions()]
    assert conditions and set(on_disk["conditions"]) == set(conditions), \
        f"conditions {sorted(on_disk['conditions'])}, expected {conditions}"
    assert on_disk["condition"] == conditions[0]
    for condition in conditions:
        returns = on_disk["conditions"][condition]["episode_returns"]
        assert len(returns) == 2, f"{condition}: {len(returns)} returns for 2 episodes"
        assert all(isinstance(r, float) and math.isfinite(r) for r in returns), (condition, returns)
        assert len(on_disk["conditions"][condition]["episode_lengths"]) == 2
    assert on_disk["episode_returns"] == on_disk["conditions"][conditions[0]]["episode_returns"]
    assert on_disk["algo"] == name and on_disk["kind"] == ALGOS[name].kind
    assert on_disk["timings"]["steps"] == run.plan.total


# -- 2. checkpoint, kill, --resume ------------------------------------------------------------

@pytest.mark.parametrize("name", list(ALGOS))
def test_resume_after_a_kill_gives_identical_returns(name, tiny_dataset, tmp_path, tmp_path_factory):
    full = _uninterrupted(name, tiny_dataset, tmp_path_factory)
    plan = full.plan
    req = plan.request(name, tmp_path, tiny_dataset)
    with pytest.raises(SimulatedKill):
        execute(req, log=QUIET, callbacks=kill_after(5 * plan.unit))
    killed = run_dir(req)
    assert not (killed / "result.json").exists()
    saved = torch.load(killed / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert saved["step"] == 4 * plan.unit  # the second checkpoint; the kill came a unit later
    resumed = execute(plan.request(name, tmp_path, tiny_dataset, resume=True), log=QUIET)
    # It went on from the checkpoint (2 units), not from the start, which a deterministic run
    # would make look the same.
    assert resumed["timings"]["steps_this_session"] == plan.total - 4 * plan.unit
    for condition, res in full.result["conditions"].items():
        assert resumed["conditions"][condition]["episode_returns"] == res["episode_returns"], \
            f"{condition}: resumed {resumed['conditions'][condition]['episode_returns']} != " \
            f"uninterrupted {res['episode_returns']}"
    got, expected = _metrics(killed), _metrics(full.directory)
    differing = [(a, b) for a, b in zip(got, expected) if a != b]
    assert got == expected, (f"metrics.jsonl differs from the uninterrupted run's: "
                             f"{len(got)} vs {len(expected)} lines, first difference "
                             f"{differing[0] if differing else None}")


# -- 3. policy snapshots ----------------------------------------------------------------------

@pytest.mark.parametrize("name", EXPORTERS)
def test_snapshots_are_loadable_policy_files(name, tiny_dataset, tmp_path_factory):
    run = _uninterrupted(name, tiny_dataset, tmp_path_factory)
    every = int(run.plan.overrides["snapshot_every"])
    files = sorted((run.directory / "snapshots").glob("step_*.pt"))
    steps = list(range(every, run.plan.total + 1, every))
    assert [p.name for p in files] == [f"step_{s:09d}.pt" for s in steps]
    for path, step in zip(files, steps):
        policy = torch.load(path, map_location="cpu", weights_only=False)
        assert isinstance(policy, dict) and isinstance(policy.get("format"), str) \
            and policy["format"], f"{path.name} has no format key: {sorted(policy)}"
        assert policy["step"] == step
        assert "optimizer" not in policy


# -- 4. state_dict → fresh instance → the same actions ----------------------------------------

def _observations(built: Built, n: int = 8, steps: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``n + steps`` consecutive observations (and rewards) of the algorithm's env."""
    env = built.source.make_env()
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    observations, rewards = [], []
    while len(observations) < n + steps:
        observations.append(obs)
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        rewards.append(reward)
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.asarray(observations, np.float32), np.asarray(rewards, np.float32)


def _acts(algo: Any, observations: np.ndarray, rewards: np.ndarray, n: int = 8) -> dict[str, list]:
    """Actions for a batch of ``n`` envs over a few steps, per evaluation condition."""
    out = {}
    for condition in algo.eval_conditions():
        state = algo.initial_state(n, condition)
        actions = []
        for t in range(len(observations) - n):
            action, state = algo.act(observations[t:t + n], state)
            state = algo.observe(state, action, rewards[t:t + n])
            actions.append(np.asarray(action))
        out[condition.label] = actions
    return out


@pytest.mark.parametrize("name", list(ALGOS))
def test_state_dict_round_trip_acts_identically(name, tiny_dataset):
    entry = ALGOS[name]
    overrides = _base_overrides(name)
    if entry.kind == "online" and "rollout_steps" in _fields(entry):
        overrides["rollout_steps"] = "64"
    torch.manual_seed(0)
    original = _build(name, overrides, tiny_dataset, seed=2)
    units = 3 if entry.kind == "offline" else 1  # with the steps counted: delayed updates happen
    for step in range(units):
        _advance(name, original, step)
    buf = io.BytesIO()  # through bytes, as a checkpoint is: nothing shared with the original
    torch.save({"algo": original.algo.state_dict(),
                "sampler": original.sampler.state_dict() if original.sampler else None}, buf)
    torch.manual_seed(12345)  # the fresh instance starts from other weights
    fresh = _build(name, overrides, tiny_dataset, seed=2)
    buf.seek(0)
    saved = torch.load(buf, map_location="cpu", weights_only=False)
    fresh.algo.load_state_dict(saved["algo"])
    if fresh.sampler is not None:
        fresh.sampler.load_state_dict(saved["sampler"])
    observations, rewards = _observations(original)
    for round, when in enumerate(("after load_state_dict", "after one more unit of training on each")):
        if round:
            # The state covers what training goes on with (optimizer, random streams, envs): one
            # more unit on each, drawing the same torch random numbers, keeps them identical.
            for built in (original, fresh):
                torch.manual_seed(7)
                _advance(name, built, units)
        a, b = _acts(original.algo, observations, rewards), _acts(fresh.algo, observations, rewards)
        assert list(a) == list(b), f"{when}: conditions {list(a)} vs {list(b)}"
        for condition in a:
            for t, (x, y) in enumerate(zip(a[condition], b[condition])):
                _same_bits(x, y, f"{when}, {condition}, step {t}")


# -- a drop-in algorithm gets all of the above ------------------------------------------------

DROP_IN = '''
"""Test plugin: linear behaviour cloning, with a standalone policy export."""
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from bench.algorithm import Algorithm
from bench.config import TrainConfig
from bench.registry import register


@dataclass
class DropInConfig(TrainConfig):
    num_updates: int = 1000  # gradient steps
    batch_size: int = 32  # transitions per update
    lr: float = 1e-2  # Adam's learning rate

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"num_updates": 20, "log_every": 5, "checkpoint_every": 10}, "quick": {}}


@register("dropin_linear_bc", description="test plugin: linear behaviour cloning")
class DropInLinearBC(Algorithm):
    Config = DropInConfig

    def __init__(self, config, spec, device):
        super().__init__(config, spec, device)
        self.linear = torch.nn.Linear(spec.obs_dim, spec.act_dim)
        self.optimizer = torch.optim.Adam(self.linear.parameters(), lr=config.lr)

    def update(self, batch, step):
        pred = self.linear(self.normalize(self.tensor(batch["observations"])))
        loss = torch.nn.functional.mse_loss(pred, self.tensor(batch["actions"]))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item()}

    @torch.inference_mode()
    def act(self, observations, state):
        out = self.linear(self.normalize(self.tensor(observations))).numpy()
        return np.clip(out, self.spec.action_low, self.spec.action_high), state

    def export_policy(self):
        return {"format": "dropin.linear.v1",
                "linear": {k: v.detach().clone() for k, v in self.linear.state_dict().items()}}
'''


def _every_check_on_a_plugin(tmp_path: Path, source: str, name: str,
                             checks: tuple[str, ...]) -> None:
    """Run this file again in a fresh pytest with ``source`` as a BENCH_ALGO_MODULES file and
    only ``name``'s tests selected; each of ``checks`` must pass, and nothing else run."""
    plugin = tmp_path / f"{name}.py"
    plugin.write_text(source)
    import bench

    # The child imports the bench this process imported (not whatever its cwd would shadow).
    path = os.pathsep.join(filter(None, [str(Path(bench.__file__).resolve().parents[1]),
                                         os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "BENCH_ALGO_MODULES": str(plugin), "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(Path(__file__).resolve()), "-v", "-p",
         "no:cacheprovider", "-k", name, "--basetemp", str(tmp_path / "basetemp")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    for test in checks:
        assert f"{test}[{name}] PASSED" in proc.stdout, proc.stdout[-4000:]
    assert f"{len(checks)} passed" in proc.stdout, proc.stdout[-4000:]


ALL_CHECKS = ("test_smoke_training_and_evaluation", "test_resume_after_a_kill_gives_identical_returns",
              "test_state_dict_round_trip_acts_identically")


def test_a_drop_in_algorithm_gets_every_check(tmp_path):
    """A file listed in BENCH_ALGO_MODULES is collected for every check above, and passes them."""
    _every_check_on_a_plugin(tmp_path, DROP_IN, "dropin_linear_bc",
                             ALL_CHECKS + ("test_snapshots_are_loadable_policy_files",))


def test_the_architecture_guides_sketch_of_td3bc_runs_and_fits_in_60_lines(tmp_path):
    """docs/architecture.md's example of adding an algorithm is real code: at most 60 lines, and
    it passes every check a registered algorithm gets (it exports no policy file)."""
    guide = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    section = guide.split("## Adding an algorithm", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.splitlines()) <= 60, len(code.splitlines())
    _every_check_on_a_plugin(tmp_path, code, "td3_bc_sketch", ALL_CHECKS)
