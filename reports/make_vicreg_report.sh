#!/usr/bin/env bash
# Makes reports/vicreg-report/: every VICReg variant next to its base algorithm (sweep file
# reports/vicreg_sweep.toml: dt, gcsl_idm on hopper-medium and carracing-expert; ppo and the
# jointly trained goal setter on Hopper-v5; 3 seeds, quick budget; 36 runs), plus architecture
# controls (the base gcsl_idm and gs_ppo_joint given the 256-unit state encoder that their VICReg
# presets add, without the loss; 9 runs). About 2.5 hours on 2 cores from nothing, most of it the
# Car Racer dataset and the DT runs. Resumable across sessions: the run records committed in
# reports/vicreg-report/runs/ are restored into RESULTS_ROOT first and count as finished;
# interrupted runs resume. Each finished run's records are copied back into
# reports/vicreg-report/runs/.
# Usage: bash reports/make_vicreg_report.sh [RESULTS_ROOT]   (JOBS=N runs N at a time, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-results}"
out=reports/vicreg-report
algos=(dt dt_vicreg gcsl_idm gcsl_idm_vicreg ppo ppo_vicreg gs_ppo_joint gs_ppo_vicreg)
datasets=(hopper-medium carracing-expert Hopper-v5)
variants=(quick "quick,state_encoder=256" "quick,idm_state_encoder=256")
bash reports/restore_runs.sh "$out/runs" "$root"
# dt on carracing-expert is the Car Racer table's run at the same commit of dt's code: reuse it
bash reports/restore_runs.sh reports/quick-carracing-table/carracing-expert/dt "$root/carracing-expert/dt"
status=0
python -m bench sweep reports/vicreg_sweep.toml --out "$root" --jobs "${JOBS:-2}" || status=$?
args=()
for a in "${algos[@]}"; do args+=(--algo "$a"); done
for d in "${datasets[@]}"; do args+=(--dataset "$d"); done
for v in "${variants[@]}"; do args+=(--variant "$v"); done
python -m bench report --out "$root" --to "$out" \
  --title "Temporal VICReg next to its base algorithms (quick budget)" "${args[@]}"
# Every evaluation condition (both return targets, goal sources), a row each.
python -m bench results --out "$root" --conditions --format markdown "${args[@]}" \
  > "$out/conditions.md"
bash reports/save_runs.sh "$root" "$out/runs" "${datasets[*]}" "${algos[*]}" "${variants[*]}"
exit "$status"
