#!/usr/bin/env bash
# Reproduces reports/quick-hopper-table/: bc, dt and dt_noreturn at the `quick` budget on the suite's
# hopper-medium, -medium-replay, -medium-expert and -expert datasets, seeds 0-2 (36 runs).
# Makes the four datasets first (about 10 minutes), then runs JOBS trainings at once with one torch
# thread each (default 2, one per core; about 2 hours on 2 cores). Safe to stop and re-run: finished
# runs are skipped and interrupted ones resume from their last checkpoint.
# Usage: bash reports/make_quick_hopper_table.sh [RESULTS_ROOT] [JOBS]
set -euo pipefail
root="${1:-results}"
jobs="${2:-2}"
here="$(cd "$(dirname "$0")" && pwd)"
datasets=(hopper-medium hopper-medium-replay hopper-medium-expert hopper-expert)
algos=(dt dt_noreturn bc)
seeds=(0 1 2)

for ds in "${datasets[@]}"; do
  python -m bench datasets info "$ds" >/dev/null 2>&1 || python -m bench datasets make "$ds"
done

# One line per run, longest first so the two workers finish together.
for algo in "${algos[@]}"; do
  for seed in "${seeds[@]}"; do
    for ds in "${datasets[@]}"; do
      echo "$algo $ds $seed"
    done
  done
done | bash "$here/run_grid.sh" "$root" "$jobs" quick

bash "$here/write_table.sh" "$root" "$here/quick-hopper-table" "${datasets[*]}" "${algos[*]}"
