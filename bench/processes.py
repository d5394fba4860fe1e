"""Worker processes of a ``concurrent.futures.ProcessPoolExecutor``, stopped at once."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor


def terminate_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate every worker process of ``pool`` now, mid-task. Leaving a pool waits for its
    tasks to finish, and SIGTERM reaches only the process that got it (Ctrl-C reaches the whole
    process group): the pool has no public way to stop its workers, so this reads its private
    process table."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
