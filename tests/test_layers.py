"""The package's layers (pyproject's import-linter contract): no module imports a layer above its
own, so each layer can be read, tested and replaced with only what is below it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = ("from importlinter.cli import lint_imports; import sys; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))")


def _lint(where: Path, package_parent: Path) -> subprocess.CompletedProcess:
    """import-linter on ``where``'s pyproject.toml, with ``bench`` imported from ``package_parent``."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([sys.executable, "-c", LINT], cwd=where, env=env, capture_output=True,
                          text=True, timeout=300)


def test_no_module_imports_a_layer_above_its_own():
    proc = _lint(ROOT, ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_upward_import_breaks_the_contract(tmp_path):
    # The same contract over a copy of the package in which the data layer imports the run layer.
    shutil.copytree(ROOT / "bench", tmp_path / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    storage = tmp_path / "bench" / "data" / "storage.py"
    storage.write_text(storage.read_text() + "\nfrom bench import run  # upward\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    proc = _lint(tmp_path, tmp_path)
    assert proc.returncode != 0
    assert "bench.data is not allowed to import bench.run" in proc.stdout, proc.stdout
