#!/usr/bin/env bash
# Makes reports/vicreg-report/: every VICReg variant next to its base algorithm (sweep file
# reports/vicreg_sweep.toml: dt, gcsl_idm on hopper-medium and carracing-expert; ppo and the
# jointly trained goal setter on Hopper-v5; 3 seeds, quick budget; 36 runs, several hours on 2
# cores). Resumable across sessions: the run records committed in reports/vicreg-report/runs/ are
# restored into RESULTS_ROOT first and count as finished; interrupted runs resume. Each finished
# run's records are copied back into reports/vicreg-report/runs/.
# Usage: bash reports/make_vicreg_report.sh [RESULTS_ROOT]   (JOBS=N runs N at a time, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-results}"
out=reports/vicreg-report
algos=(dt dt_vicreg gcsl_idm gcsl_idm_vicreg ppo ppo_vicreg gs_ppo_joint gs_ppo_vicreg)
datasets=(hopper-medium carracing-expert Hopper-v5)
bash reports/restore_runs.sh "$out/runs" "$root"
status=0
python -m bench sweep reports/vicreg_sweep.toml --out "$root" --jobs "${JOBS:-2}" || status=$?
args=()
for a in "${algos[@]}"; do args+=(--algo "$a"); done
for d in "${datasets[@]}"; do args+=(--dataset "$d"); done
python -m bench report --out "$root" --to "$out" --variant quick \
  --title "Temporal VICReg next to its base algorithms (quick budget)" "${args[@]}"
for ds in "${datasets[@]}"; do
  for algo in "${algos[@]}"; do
    for run in "$root/$ds/$algo"/quick/seed_*; do
      [ -f "$run/result.json" ] || continue
      dest="$out/runs/${run#"$root"/}"
      mkdir -p "$dest"
      cp "$run"/*.json* "$dest/"
    done
  done
done
exit "$status"
