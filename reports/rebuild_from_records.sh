#!/usr/bin/env bash
# Rebuilds every committed table and report from the run records committed beside it, without
# training or evaluating anything: after a change to how tables are computed, or to check that a
# committed table follows from its runs (`git diff reports/` afterwards shows what changed).
# Usage: bash reports/rebuild_from_records.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tables() {  # DIR "DATASET ..." "ALGO ..." [RESULTS_FLAG ...]: DIR/table.{md,csv} from DIR's records
  bash reports/write_table.sh "$1" "$@"
}
tables reports/quick-hopper-table \
  "hopper-medium hopper-medium-replay hopper-medium-expert hopper-expert" "dt dt_noreturn bc"
tables reports/quick-carracing-table "carracing-medium carracing-expert" "dt dt_noreturn bc"
tables reports/quick-idm-table "hopper-medium hopper-expert" \
  "transformer_idm transformer_idm_masked gcsl_idm dt bc" --conditions
python -m bench results --out reports/spine-quick-hopper-random > reports/spine-quick-hopper-random/table.md
python -m bench results --out reports/ppo-hopper-v5-1m > reports/ppo-hopper-v5-1m/table.md
python reports/goal-setter/report.py reports/goal-setter/runs 300000 reports/goal-setter

# The VICReg report and its 10-seed PPO follow-up (seeds 0-2 are the report's own runs).
vicreg=reports/vicreg-report
args=()
for a in dt dt_vicreg gcsl_idm gcsl_idm_vicreg ppo ppo_vicreg gs_ppo_joint gs_ppo_vicreg; do
  args+=(--algo "$a"); done
for d in hopper-medium carracing-expert Hopper-v5; do args+=(--dataset "$d"); done
for v in quick "quick,state_encoder=256" "quick,idm_state_encoder=256"; do args+=(--variant "$v"); done
python -m bench report --out "$vicreg/runs" --to "$vicreg" \
  --title "Temporal VICReg next to its base algorithms (quick budget)" "${args[@]}"
python -m bench results --out "$vicreg/runs" --conditions --format markdown "${args[@]}" \
  > "$vicreg/conditions.md"
python -m bench report --out "$vicreg/ppo-10-seeds/runs" --to "$vicreg/ppo-10-seeds" \
  --algo ppo --algo ppo_vicreg \
  --dataset Hopper-v5 --variant quick \
  --title "PPO with and without temporal VICReg on its state representation, 10 seeds (quick)"

python -m bench report --out reports/example-report/runs --to reports/example-report \
  --title "Example: BC, DT and GCSL-IDM on Hopper-v5 medium / medium-replay (quick budget)" \
  --algo bc --algo dt --algo gcsl_idm --dataset hopper-medium --dataset hopper-medium-replay \
  --variant quick
