#!/usr/bin/env bash
# Reproduces reports/quick-carracing-table/: bc, dt and dt_noreturn at the `quick` budget on the
# suite's carracing-medium and carracing-expert datasets (64-d latents of the frozen encoder),
# seeds 0-2 (18 runs), JOBS trainings at once with one torch thread each (default 2). Evaluation
# runs CarRacing-v3 in worker processes.
# Resumable across sessions: the runs already committed in reports/quick-carracing-table/ are
# restored into RESULTS_ROOT and count as finished, finished runs are skipped, interrupted ones
# resume, and a dataset is made (about 40 minutes each on 2 cores) only if a run still needs it.
# Usage: bash reports/make_quick_carracing_table.sh [RESULTS_ROOT] [JOBS]
set -euo pipefail
root="${1:-results}"
jobs="${2:-2}"
here="$(cd "$(dirname "$0")" && pwd)"
datasets=(carracing-medium carracing-expert)
algos=(dt dt_noreturn bc)

bash "$here/restore_runs.sh" "$here/quick-carracing-table" "$root"

grid=()
for algo in "${algos[@]}"; do
  for seed in 0 1 2; do
    for ds in "${datasets[@]}"; do
      [ -f "$root/$ds/$algo/quick/seed_$seed/result.json" ] || grid+=("$algo $ds $seed")
    done
  done
done
for ds in "${datasets[@]}"; do
  if printf '%s\n' "${grid[@]}" | grep -q " $ds "; then
    python -m bench datasets info "$ds" >/dev/null 2>&1 || python -m bench datasets make "$ds"
  fi
done
if [ "${#grid[@]}" -gt 0 ]; then
  printf '%s\n' "${grid[@]}" | bash "$here/run_grid.sh" "$root" "$jobs" quick
fi

bash "$here/write_table.sh" "$root" "$here/quick-carracing-table" "${datasets[*]}" "${algos[*]}"
