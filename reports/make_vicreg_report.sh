#!/usr/bin/env bash
# Makes reports/vicreg-report/: every VICReg variant next to its base algorithm (sweep file
# reports/vicreg_sweep.toml: dt, gcsl_idm on hopper-medium and carracing-expert; ppo and the
# jointly trained goal setter on Hopper-v5; 3 seeds, quick budget; 36 runs, several hours on 2
# cores). Resumable: finished runs are reused, interrupted ones resume.
# Usage: bash reports/make_vicreg_report.sh [RESULTS_ROOT]   (JOBS=N runs N at a time, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-results}"
status=0
python -m bench sweep reports/vicreg_sweep.toml --out "$root" --jobs "${JOBS:-2}" || status=$?
python -m bench report --out "$root" --to reports/vicreg-report \
  --title "Temporal VICReg next to its base algorithms (quick budget)" \
  --algo dt --algo dt_vicreg --algo gcsl_idm --algo gcsl_idm_vicreg \
  --algo ppo --algo ppo_vicreg --algo gs_ppo_joint --algo gs_ppo_vicreg \
  --dataset hopper-medium --dataset carracing-expert --dataset Hopper-v5
exit "$status"
