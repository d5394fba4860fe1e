#!/usr/bin/env bash
# Reproduces reports/quick-idm-table/: gcsl_idm, transformer_idm and transformer_idm_masked at the
# `quick` budget on hopper-medium and hopper-expert, seeds 0-2 (18 runs), each evaluated with every
# goal source: the headline `learned` (target returns 3600 and 1800) plus `dataset` and `self`
# (extra_goal_sources; one training serves all three, number for number what separate runs give),
# and the masked one again with the current state visible (mask_current_state=false, 6 runs more),
# next to bc and dt, whose runs are taken from reports/quick-hopper-table/ (or made here if missing).
# JOBS runs at once, one torch thread each (default 2, one per core). Safe to stop and re-run, in
# this session or a later one: the runs committed in reports/quick-idm-table/ are restored into
# RESULTS_ROOT and count as finished, finished runs are skipped, interrupted ones resume.
# Usage: bash reports/make_quick_idm_table.sh [RESULTS_ROOT] [JOBS]
set -euo pipefail
root="${1:-results}"
jobs="${2:-2}"
here="$(cd "$(dirname "$0")" && pwd)"
datasets=(hopper-medium hopper-expert)
seeds=(0 1 2)

# bc and dt: the committed quick-table runs (same datasets, seeds and budget).
bash "$here/restore_runs.sh" "$here/quick-hopper-table" "$root"
bash "$here/restore_runs.sh" "$here/quick-idm-table" "$root"
for ds in "${datasets[@]}"; do
  python -m bench datasets info "$ds" >/dev/null 2>&1 || python -m bench datasets make "$ds"
done

# Seed-major, so a stopped grid leaves whole seeds of every cell.
{
  for seed in "${seeds[@]}"; do
    for algo in transformer_idm transformer_idm_masked gcsl_idm dt bc; do
      for ds in "${datasets[@]}"; do
        case "$algo" in
          bc|dt) echo "$algo $ds $seed" ;;
          *) echo "$algo $ds $seed extra_goal_sources=dataset,self" ;;
        esac
        # The masked model also with the current state visible (masking from a_{mask_pos}).
        if [ "$algo" = transformer_idm_masked ]; then
          echo "$algo $ds $seed extra_goal_sources=dataset,self mask_current_state=false"
        fi
      done
    done
  done
} | bash "$here/run_grid.sh" "$root" "$jobs" quick

bash "$here/write_table.sh" "$root" "$here/quick-idm-table" "${datasets[*]}" \
  "transformer_idm transformer_idm_masked gcsl_idm dt bc" --conditions
