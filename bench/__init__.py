"""bench: an offline-RL benchmark suite on Minari datasets.

Public API (stable): :func:`bench.data.get_dataset`, :func:`bench.data.qlearning_dataset`,
:func:`bench.data.resolve`, :func:`bench.registry.register`, :func:`bench.run.execute`,
:func:`bench.evaluate.evaluate`, :func:`bench.results.load_results`.
"""
__version__ = "0.1.0"

from bench import carracing as _carracing  # noqa: E402,F401  (registers bench/CarRacingLatent-v0)
from bench.envs import goal_tasks as _goal_tasks  # noqa: E402

_goal_tasks.register()  # bench/pointmaze-{medium,large}-navigate-v0 (made from ogbench on demand)
