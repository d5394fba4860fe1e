#!/usr/bin/env bash
# Reproduces reports/quick-carracing-table/: bc, dt and dt_noreturn at the `quick` budget on the
# suite's carracing-medium and carracing-expert datasets (64-d latents of the frozen encoder),
# seeds 0-2 (18 runs). Makes the datasets first if missing (about 20 minutes each on 2 cores), then
# runs JOBS trainings at once with one torch thread each (default 2). Evaluation runs CarRacing-v3
# in worker processes. Safe to stop and re-run: finished runs are skipped, interrupted ones resume.
# Usage: bash reports/make_quick_carracing_table.sh [RESULTS_ROOT] [JOBS]
set -euo pipefail
root="${1:-results}"
jobs="${2:-2}"
here="$(cd "$(dirname "$0")" && pwd)"
datasets=(carracing-medium carracing-expert)
algos=(dt dt_noreturn bc)

for ds in "${datasets[@]}"; do
  python -m bench datasets info "$ds" >/dev/null 2>&1 || python -m bench datasets make "$ds"
done

for algo in "${algos[@]}"; do
  for seed in 0 1 2; do
    for ds in "${datasets[@]}"; do
      echo "$algo $ds $seed"
    done
  done
done | bash "$here/run_grid.sh" "$root" "$jobs" quick

bash "$here/write_table.sh" "$root" "$here/quick-carracing-table" "${datasets[*]}" "${algos[*]}"
