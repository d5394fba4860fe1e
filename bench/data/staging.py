"""Datasets appear whole or not at all, and one process makes a dataset at a time.

A dataset is written under a private staging root inside the Minari root (``.bench-staging/``,
hidden, so Minari and the suite never list it), stamped there with its checksum and provenance,
and moved into place with one ``rename``: a maker killed at any moment (during the HDF5 write,
between the write and the checksum) leaves nothing a run could train on. A lock per dataset
makes a second maker (``bench datasets make``, or a run making it on first use) wait for the
first, saying which process holds it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.data import storage
from bench.environ import environ
from bench.errors import DatasetError, Terminated
from bench.locks import file_lock

STAGING_DIR = ".bench-staging"
# dataset id -> where its present version goes when a new one is moved in (``replacing``).
_REPLACING: dict[str, Path] = {}
NAMESPACE_FILE = "namespace_metadata.json"  # Minari's per-namespace file


def staging_root() -> Path:
    # Inside the Minari root: the same filesystem, so the final move is one atomic rename.
    return storage.minari_root() / STAGING_DIR


def _token(dataset_id: str) -> str:
    return dataset_id.replace("/", "__")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_stages(dataset_id: str) -> None:
    """Remove staging directories of ``dataset_id`` left by makers that were killed."""
    root = staging_root()
    if not root.is_dir():
        return
    for stage in root.glob(f"{_token(dataset_id)}.stage-*"):
        pid = stage.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def maker_lock(dataset_id: str, log: Callable[[str], None]) -> Iterator[None]:
    """Hold the right to make ``dataset_id``; a second maker waits here, told who holds it."""
    path = staging_root() / f"{_token(dataset_id)}.lock"

    def waiting(holder: str) -> None:
        log(f"[bench] {dataset_id} is being made by process {holder or '(unknown)'}; waiting "
            "for it to finish (Ctrl-C stops waiting; nothing is lost).")

    with file_lock(path, what=f"making {dataset_id}", on_wait=waiting):
        remove_stale_stages(dataset_id)
        yield


@contextlib.contextmanager
def replacing(dataset_id: str, backup: Path | None) -> Iterator[None]:
    """Inside this block a finished ``dataset_id`` replaces the present one, which moves to
    ``backup`` only then: until the new one is whole, the old one stays where runs find it."""
    if backup is not None:
        _REPLACING[dataset_id] = backup
    try:
        yield
    finally:
        _REPLACING.pop(dataset_id, None)


@contextlib.contextmanager
def staged(dataset_id: str) -> Iterator[Path]:
    """Write ``dataset_id`` inside this block; it appears in the Minari root when the block ends
    without an error, and never otherwise.

    Inside the block ``MINARI_DATASETS_PATH`` points at a private staging root (Minari's writers
    and ``bench.data.storage`` read it at each call), so the block must only write this dataset,
    not read others. On a clean exit the dataset directory moves into the Minari root with one
    rename; on an error or an interrupt the staging directory is removed.
    """
    final_root = storage.minari_root()
    target = final_root / dataset_id
    backup = _REPLACING.get(dataset_id)
    if target.exists() and backup is None:
        raise DatasetError(f"{dataset_id} already exists at {target}; nothing was written "
                           "(`bench datasets make <alias> --force` makes it again and keeps the "
                           "old one as a backup).")
    stage = staging_root() / f"{_token(dataset_id)}.stage-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)  # this process's own leftover, if any
    # Its namespace folders too: minari.combine_datasets makes only the last one.
    (stage / dataset_id).parent.mkdir(parents=True)
    try:
        with environ(MINARI_DATASETS_PATH=str(stage)):
            with _interrupts_remembered() as interrupted:
                yield stage
            if interrupted:  # raised where Python had to drop it (h5py's weakref callbacks)
                raise Terminated() if signal.SIGTERM in interrupted else KeyboardInterrupt()
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_namespace_files(stage, final_root, dataset_id)
        if backup is not None and target.exists():
            # Backups live outside the Minari root, so Minari never mistakes them for datasets.
            backup.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(target), str(backup))
        try:
            os.rename(stage / dataset_id, target)  # atomic; refuses a target that appeared
        except OSError as exc:
            raise DatasetError(f"could not move the finished {dataset_id} into {target} ({exc}); "
                               "nothing was replaced.") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def _interrupts_remembered() -> Iterator[list[int]]:
    """Note every SIGINT and SIGTERM while the block runs, then let the usual handler act. An
    interrupt that lands in a weakref callback inside h5py cannot be raised (Python printed it
    as "Exception ignored" and went on: 2 of 14 Ctrl-Cs during a write); noted here, the caller
    stops anyway."""
    seen: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def note(signum: int, frame: Any) -> None:
        seen.append(signum)
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def unraisable(info: Any) -> None:
        # The interrupt a weakref callback could not raise: kept, not printed as a traceback.
        if isinstance(info.exc_value, KeyboardInterrupt):
            seen.append(signal.SIGINT)
        else:
            hook(info)

    hook = sys.unraisablehook
    for s in previous:
        signal.signal(s, note)
    sys.unraisablehook = unraisable
    try:
        yield seen
    finally:
        sys.unraisablehook = hook
        for s, handler in previous.items():
            signal.signal(s, handler)


def _copy_namespace_files(stage: Path, root: Path, dataset_id: str) -> None:
    """Minari's namespace metadata for the dataset's namespaces, where the root lacks it."""
    parts = dataset_id.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        source = stage.joinpath(*parts[:depth], NAMESPACE_FILE)
        dest = root.joinpath(*parts[:depth], NAMESPACE_FILE)
        if source.is_file() and not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
