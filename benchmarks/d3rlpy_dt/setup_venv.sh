#!/usr/bin/env bash
# Create an isolated venv (.venv-d3rlpy at the repo root) holding d3rlpy 2.8.1
# on top of torch 2.13.0 (CPU). d3rlpy pins gymnasium==1.0.0, so it must never
# be a dependency of the project itself. Idempotent: does nothing when the venv
# already imports d3rlpy 2.8.1 and torch 2.13.0.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${REPO_ROOT}/.venv-d3rlpy"
PY="${VENV}/bin/python"
TORCH_VERSION="2.13.0"
D3RLPY_VERSION="2.8.1"

check() {
    [ -x "${PY}" ] && "${PY}" - <<PYEOF >/dev/null 2>&1
import d3rlpy, torch
assert d3rlpy.__version__ == "${D3RLPY_VERSION}", d3rlpy.__version__
assert torch.__version__.split("+")[0] == "${TORCH_VERSION}", torch.__version__
PYEOF
}

if check; then
    echo "d3rlpy ${D3RLPY_VERSION} already installed in ${VENV}"
    exit 0
fi

if [ ! -x "${PY}" ]; then
    python3 -m venv "${VENV}"
fi

CONSTRAINTS="$(mktemp)"
trap 'rm -f "${CONSTRAINTS}"' EXIT
echo "torch==${TORCH_VERSION}" > "${CONSTRAINTS}"

# torch first, so nothing that depends on it can pull a different build.
"${PY}" -m pip install --quiet "torch==${TORCH_VERSION}"
"${PY}" -m pip install --quiet -c "${CONSTRAINTS}" "d3rlpy==${D3RLPY_VERSION}"

if ! check; then
    echo "setup failed: d3rlpy ${D3RLPY_VERSION} / torch ${TORCH_VERSION} not importable in ${VENV}" >&2
    exit 1
fi
echo "installed d3rlpy ${D3RLPY_VERSION} with torch ${TORCH_VERSION} into ${VENV}"
