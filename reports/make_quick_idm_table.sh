#!/usr/bin/env bash
# Reproduces reports/quick-idm-table/: gcsl_idm, transformer_idm and transformer_idm_masked with
# every goal source (self, dataset, learned) at the `quick` budget on hopper-medium and
# hopper-expert, seeds 0-2 (54 runs), next to bc and dt from reports/quick-hopper-table/ (made
# here too if missing). JOBS runs at once, one torch thread each (default 2, one per core).
# Safe to stop and re-run: finished runs are skipped, interrupted ones resume.
# Usage: bash reports/make_quick_idm_table.sh [RESULTS_ROOT] [JOBS]
set -euo pipefail
root="${1:-results}"
jobs="${2:-2}"
here="$(cd "$(dirname "$0")" && pwd)"
datasets=(hopper-medium hopper-expert)
seeds=(0 1 2)

for ds in "${datasets[@]}"; do
  python -m bench datasets info "$ds" >/dev/null 2>&1 || python -m bench datasets make "$ds"
done

{
  for algo in transformer_idm transformer_idm_masked dt gcsl_idm bc; do
    for seed in "${seeds[@]}"; do
      for ds in "${datasets[@]}"; do
        case "$algo" in
          bc|dt) echo "$algo $ds $seed" ;;
          *) for source in dataset learned self; do echo "$algo $ds $seed goal_source=$source"; done ;;
        esac
      done
    done
  done
} | bash "$here/run_grid.sh" "$root" "$jobs" quick

bash "$here/write_table.sh" "$root" "$here/quick-idm-table" "${datasets[*]}" \
  "transformer_idm transformer_idm_masked gcsl_idm dt bc"
