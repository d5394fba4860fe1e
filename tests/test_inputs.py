"""Datasets, envs and ids the suite cannot use get a one-line answer, and nothing is written:
unsupported spaces (Dict or image observations, Discrete actions), envs that cannot be made
(a module not installed, a malformed env_spec) and dataset ids that are not canonical."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from conftest import run_cli

HERE = Path(__file__).resolve().parent
DICT_ID, IMAGE_ID, CARTPOLE_ID, BOX_ID = ("test/inputs/dict-v0", "test/inputs/image-v0",
                                          "test/inputs/cartpole-v0", "test/inputs/pendulum-v0")


class _ShortEnv(gym.Env):
    """Random observations from its own space, five steps an episode."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


class DictObsEnv(_ShortEnv):
    """Structured observations that are not a goal env's (whose observation / achieved_goal /
    desired_goal Dicts the suite reads: tests/test_goal_tasks.py)."""

    observation_space = spaces.Dict({
        "position": spaces.Box(-1, 1, (4,), np.float32),
        "velocity": spaces.Box(-1, 1, (2,), np.float32)})
    action_space = spaces.Box(-1, 1, (2,), np.float32)


class ImageObsEnv(_ShortEnv):
    observation_space = spaces.Box(0, 1, (6, 6, 3), np.float32)
    action_space = spaces.Box(-1, 1, (2,), np.float32)


# Entry points in this module: a CLI started with cwd=tests/ can make these envs.
for _cls in (DictObsEnv, ImageObsEnv):
    if f"BenchTest{_cls.__name__}-v0" not in gym.registry:
        gym.register(f"BenchTest{_cls.__name__}-v0", entry_point=f"test_inputs:{_cls.__name__}",
                     max_episode_steps=5)


def _write(dataset_id: str, env_id: str, episodes: int = 3, steps: int = 5) -> None:
    """A small Minari dataset of random actions in ``env_id``."""
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    env = gym.make(env_id)
    env.action_space.seed(0)
    buffers = []
    for i in range(episodes):
        obs, actions = [env.reset(seed=i)[0]], []
        for _ in range(steps):
            actions.append(env.action_space.sample())
            obs.append(env.step(actions[-1])[0])
        observations = ({k: np.stack([o[k] for o in obs]) for k in obs[0]}
                        if isinstance(obs[0], dict) else np.stack(obs))
        buffers.append(EpisodeBuffer(
            id=i, seed=i, observations=observations, actions=np.stack(actions),
            rewards=[0.0] * steps, terminations=[False] * steps,
            truncations=[False] * (steps - 1) + [True], infos={}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        minari.create_dataset_from_buffers(dataset_id=dataset_id, buffer=buffers, env=env,
                                           algorithm_name="random")
    env.close()


@pytest.fixture(scope="module")
def datasets(isolated_roots) -> dict[str, str]:
    made = {DICT_ID: "BenchTestDictObsEnv-v0", IMAGE_ID: "BenchTestImageObsEnv-v0",
            CARTPOLE_ID: "CartPole-v1", BOX_ID: "Pendulum-v1"}
    for dataset_id, env_id in made.items():
        if not (isolated_roots["minari"] / dataset_id).exists():
            _write(dataset_id, env_id)
    return made


def _box_dataset_with_env_spec(tmp_path: Path, monkeypatch, env_spec) -> str:
    """The Pendulum dataset in a Minari root of its own, its metadata's env_spec replaced."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "root"))
    target = tmp_path / "root" / BOX_ID
    shutil.copytree(Path(os.environ["MINARI_TEST_ROOT"]) / BOX_ID, target)
    meta_path = target / "data" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["env_spec"] = env_spec
    meta_path.write_text(json.dumps(meta))
    return BOX_ID


def _refused(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The one `bench: error:` line of a refused command, after checking what it says."""
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("bench: error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def _run(source: list[str], out: Path, algo: str = "bc") -> subprocess.CompletedProcess:
    return run_cli("run", "--algo", algo, *source, "--budget", "smoke", "--eval-episodes", "2",
                   "--out", str(out), cwd=HERE)


# -- row 2: observations the algorithms do not take ------------------------------------------

@pytest.mark.parametrize("algo", ["bc", "ppo"])
def test_dict_observations_are_refused_in_one_line_before_anything_is_written(datasets, tmp_path,
                                                                              algo):
    proc = _run(["--dataset", DICT_ID], tmp_path / "out", algo)
    _refused(proc, 1, f"dataset {DICT_ID} has Dict observations",
             "Dict with keys position, velocity", f"which {algo} cannot take",
             "none of the registered algorithms takes Dict observations")
    assert not (tmp_path / "out").exists(), "a refused run makes no run directory"
    info = run_cli("datasets", "info", DICT_ID)  # metadata only: still works
    assert info.returncode == 0 and json.loads(info.stdout)["dataset_id"] == DICT_ID


def test_image_observations_are_refused_for_algorithms_that_take_vectors(datasets, tmp_path):
    proc = _run(["--dataset", IMAGE_ID], tmp_path / "out")
    _refused(proc, 1, "image (Box of rank > 1) observations (Box(6, 6, 3))", "bc cannot take")
    assert not (tmp_path / "out").exists()


def test_the_refusal_lists_the_algorithms_that_declare_the_space(datasets, tmp_path, monkeypatch):
    """An algorithm that declares Dict observations is named as the one that takes them."""
    plugin = tmp_path / "dict_bc.py"
    plugin.write_text(
        "from bench.algos.bc import BehaviourCloning\n"
        "from bench.registry import register\n\n\n"
        "@register('bc_dict', description='test: declares Dict observations')\n"
        "class DictBC(BehaviourCloning):\n"
        "    accepts_observations = ('vector', 'dict')\n")
    monkeypatch.setenv("BENCH_ALGO_MODULES", str(plugin))
    proc = _run(["--dataset", DICT_ID], tmp_path / "out")
    _refused(proc, 1, "bc cannot take", "algorithms that do: bc_dict.")
    assert not (tmp_path / "out").exists()


# -- row 3: actions the algorithms do not take -----------------------------------------------

@pytest.mark.parametrize("source, algo, what", [
    (["--dataset", CARTPOLE_ID], "bc", f"dataset {CARTPOLE_ID}"),
    (["--env", "CartPole-v1"], "ppo", "env CartPole-v1"),
])
def test_discrete_actions_are_refused_in_one_line(datasets, tmp_path, source, algo, what):
    proc = _run(source, tmp_path / "out", algo)
    _refused(proc, 1, f"{what} has Discrete actions (Discrete(2))", f"{algo} cannot take",
             "continuous (Box) actions", "none of the registered algorithms takes Discrete")
    assert not (tmp_path / "out").exists()


# -- row 4: envs that cannot be made ---------------------------------------------------------

@pytest.mark.parametrize("entry_point, needle", [
    ("gymnasium_robotics.envs.maze.point_maze:PointMazeEnv",
     "needs the module gymnasium_robotics, which is not installed: pip install gymnasium-robotics"),
    ("bench_no_such_package.envs:Maze",
     "needs the module bench_no_such_package, which is not installed"),
])
def test_an_env_whose_module_is_missing_names_what_to_install(datasets, tmp_path, monkeypatch,
                                                              entry_point, needle):
    if importlib.util.find_spec(entry_point.split(".")[0]) is not None:
        pytest.skip(f"{entry_point.split('.')[0]} is installed here")
    spec = json.dumps({"id": "PointMaze_UMaze-v3", "entry_point": entry_point, "kwargs": {},
                       "additional_wrappers": [], "max_episode_steps": 5})
    dataset_id = _box_dataset_with_env_spec(tmp_path, monkeypatch, spec)
    proc = _run(["--dataset", dataset_id], tmp_path / "out")
    _refused(proc, 1, f"dataset {dataset_id}'s environment PointMaze_UMaze-v3 {needle}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("env_spec, needle", [
    (5, "env_spec is a number (5), not the JSON text of a gymnasium EnvSpec"),
    ("[1, 2]", "env_spec holds JSON that is a list, not an object"),
    (json.dumps({"id": "Pendulum-v1"}), "env_spec lacks the field entry_point"),
    (json.dumps({"id": "Pendulum-v1", "entry_point": 3, "additional_wrappers": []}),
     "env_spec has the entry point 3, not 'module:attribute'"),
])
def test_a_malformed_env_spec_names_what_is_wrong(datasets, tmp_path, monkeypatch, env_spec,
                                                  needle):
    dataset_id = _box_dataset_with_env_spec(tmp_path, monkeypatch, env_spec)
    proc = _run(["--dataset", dataset_id], tmp_path / "out")
    _refused(proc, 1, f"dataset {dataset_id}: its metadata's {needle}")
    assert not (tmp_path / "out").exists()


def test_a_sweep_records_each_refusal_as_its_one_line_message(datasets, tmp_path, monkeypatch):
    """A sweep records the message, not a raw TypeError/AttributeError, for each such run."""
    _box_dataset_with_env_spec(tmp_path, monkeypatch, 5)
    shutil.copytree(Path(os.environ["MINARI_TEST_ROOT"]) / DICT_ID, tmp_path / "root" / DICT_ID)
    out = tmp_path / "out"
    proc = run_cli("sweep", "--algo", "bc", "ppo", "--dataset", DICT_ID, BOX_ID,
                   "--env", "CartPole-v1", "--budget", "smoke", "--eval-episodes", "2",
                   "--out", str(out), cwd=HERE)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    (summary_path,) = (out / "sweeps").glob("*.json")
    runs = {(r["algo"], r["source"]): r for r in json.loads(summary_path.read_text())["runs"]}
    expected = {("bc", DICT_ID): "has Dict observations", ("ppo", DICT_ID): "has Dict observations",
                ("bc", BOX_ID): "env_spec is a number (5)", ("ppo", BOX_ID): "env_spec is a number",
                ("ppo", "CartPole-v1"): "env CartPole-v1 has Discrete actions"}
    assert set(runs) == set(expected)
    for key, needle in expected.items():
        run = runs[key]
        assert run["status"] == "failed" and needle in run["error"], (key, run["error"])
        assert "\n" not in run["error"]
        error = json.loads((Path(run["run_dir"]) / "error.json").read_text())
        assert error["message"] == run["error"] and error["type"] in ("DatasetError", "BenchError")


# -- row 7: dataset ids are canonical --------------------------------------------------------

@pytest.mark.parametrize("name, needle", [
    ("./" + CARTPOLE_ID, f"has a '.' part; write it as '{CARTPOLE_ID}'"),
    (CARTPOLE_ID.replace("/", "//", 1), f"has an empty part ('//'); write it as '{CARTPOLE_ID}'"),
    (CARTPOLE_ID + "/", f"has a trailing '/'; write it as '{CARTPOLE_ID}'"),
])
def test_a_dataset_id_written_another_way_is_a_usage_error(datasets, tmp_path, name, needle):
    """`./a/b`, `a//b`, `a/b/` each made a results column (and `./` a hidden directory) of
    their own for the same dataset."""
    _refused(_run(["--dataset", name], tmp_path / "out"), 2, f"dataset id {name!r} {needle}")
    assert not (tmp_path / "out").exists()
    sweep = run_cli("sweep", "--algo", "bc", "--dataset", name, "--budget", "smoke",
                    "--out", str(tmp_path / "out"))
    _refused(sweep, 2, f"dataset id {name!r}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["absolute", "parent"])
def test_no_dataset_id_reads_outside_the_minari_root(datasets, tmp_path, monkeypatch, where):
    outside = tmp_path / "outside" / "x-v0"
    shutil.copytree(Path(os.environ["MINARI_TEST_ROOT"]) / BOX_ID, outside)
    (tmp_path / "root").mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "root"))
    name = str(outside) if where == "absolute" else "../outside/x-v0"
    needle = "is an absolute path" if where == "absolute" else "has a '..' part"
    for args in (["datasets", "info", name], ["datasets", "verify", name]):
        _refused(run_cli(*args), 2, f"dataset id {name!r} {needle}", "MINARI_DATASETS_PATH")
    _refused(_run(["--dataset", name], tmp_path / "out"), 2, needle)
    assert not (tmp_path / "out").exists()


def test_what_the_re_probe_found_is_refused_up_front():
    """Ids holding '__' (a/b__c and a__b/c named one run directory), reference returns whose
    difference overflows, and unbounded action boxes (they ended in a non-finite loss)."""
    import gymnasium as gym
    import numpy as np

    from bench import registry
    from bench.data.catalog import reference_problem
    from bench.data.resolve import check_dataset_name
    from bench.errors import BenchError, UsageError
    from bench.spaces import check_spaces

    for name in ("test__req/y-v0", "test/req__y-v0"):
        with pytest.raises(UsageError, match="'__'"):
            check_dataset_name(name)
    assert "too far apart" in reference_problem(-1e308, 1e308)
    assert reference_problem(-20.0, 3234.3) is None
    algorithms = {n: e.cls for n, e in registry.all_algorithms().items()}
    unbounded = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    with pytest.raises(BenchError, match="unbounded continuous"):
        check_spaces("bc", algorithms, gym.spaces.Box(-1, 1, (11,)), unbounded, "dataset x")
    check_spaces("bc", algorithms, gym.spaces.Box(-1, 1, (11,)), gym.spaces.Box(-1, 1, (3,)),
                 "dataset x")
