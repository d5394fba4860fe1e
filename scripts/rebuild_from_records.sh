#!/usr/bin/env bash
# Rebuilds every committed table and report under reports/ from the run records committed beside
# it (reports/<name>/records/, a results root), without training or evaluating anything: after a
# change to how tables are computed, or to check that a committed table follows from its runs
# (`git diff reports/` afterwards shows what changed). With NAMEs, only those reports.
# Each report is built from inside its folder with `--out records`, so no output names the folder.
# A new report needs a case below (scripts/make_report.sh calls this script for the one it made).
# Usage: scripts/rebuild_from_records.sh [NAME ...]
set -euo pipefail
reports="$(cd "$(dirname "$0")/../reports" && pwd)"
scripts="$(cd "$(dirname "$0")" && pwd)"
all=(quick-hopper-table quick-carracing-table quick-idm-table spine-quick-hopper-random
     ppo-hopper-v5-1m goal-setter vicreg-report vicreg-ppo-10-seeds example-report d3rlpy-referee
     quick-goal-table research-notes quick-locomotion-table full-hopper-medium)

tables() {  # "DATASET ..." "ALGO ..." [RESULTS_FLAG ...]: table.{md,csv} from records/
  local filters=("${@:3}") ds algo
  for ds in $1; do filters+=(--dataset "$ds"); done
  for algo in $2; do filters+=(--algo "$algo"); done
  python -m bench results --out records "${filters[@]}" --format markdown > table.md
  python -m bench results --out records "${filters[@]}" --format csv > table.csv
  echo "rebuilt $PWD/table.{md,csv}"
}

vicreg_filters() {  # the VICReg report's algorithms, datasets and variants, as bench flags
  local a d v
  for a in dt dt_vicreg gcsl_idm gcsl_idm_vicreg ppo ppo_vicreg gs_ppo_joint gs_ppo_vicreg; do
    printf '%s\n' --algo "$a"; done
  for d in hopper-medium carracing-expert Hopper-v5; do printf '%s\n' --dataset "$d"; done
  for v in quick "quick,state_encoder=256" "quick,idm_state_encoder=256"; do
    printf '%s\n' --variant "$v"; done
}

rebuild() {  # NAME: reports/NAME's tables and report from reports/NAME/records/
  if [[ " ${all[*]} " != *" $1 "* ]] || [ ! -d "$reports/$1/records" ]; then
    echo "rebuild_from_records.sh: no report '$1' with records/ to rebuild; known: ${all[*]}" >&2
    return 2
  fi
  cd "$reports/$1"
  case "$1" in
    quick-hopper-table)
      tables "hopper-medium hopper-medium-replay hopper-medium-expert hopper-expert" \
        "dt dt_noreturn bc td3_bc iql cql gcsl_idm"
      python -m bench report --out records --to . --variant quick \
        --title "The suite's offline algorithms on its four Hopper datasets (quick budget)" ;;
    full-hopper-medium)
      tables "hopper-medium" "td3_bc iql"
      python -m bench report --out records --to . \
        --title "TD3+BC and IQL at the full budget (1M updates) on the suite's hopper-medium" ;;
    quick-carracing-table)
      tables "carracing-medium carracing-expert" "dt dt_noreturn bc" ;;
    quick-locomotion-table)
      local family level sets=""
      for family in hopper walker2d halfcheetah; do
        for level in random medium medium-replay medium-expert expert; do
          sets+="$family-$level "
        done
      done
      tables "$sets" "bc td3_bc iql gcsl_idm cql dt"
      python -m bench report --out records --to . --variant quick \
        --title "The offline algorithms on the 15 D4RL-style locomotion datasets (quick budget)" ;;
    quick-goal-table)
      tables "pointmaze-medium-navigate pointmaze-large-navigate" \
        "gcbc gcivl hiql gs_idm gcsl_idm transformer_idm"
      python -m bench report --out records --to . \
        --title "Goal-conditioned learners on the pointmaze navigate tasks (quick budget)" ;;
    research-notes)
      python "$scripts/research_notes_report.py" records . >/dev/null
      # §1 and §3's offline rows: DT with and without returns on Car Racer, DT on hopper-expert
      python -m bench results --out records --dataset carracing-medium --dataset carracing-expert \
        --dataset hopper-expert --algo dt --algo dt_noreturn --format markdown > dt_rows.md
      # Car Racer step 2: both IDMs, every goal source (once either has run)
      if compgen -G "records/carracing-medium/*idm" >/dev/null; then
        python -m bench results --out records --dataset carracing-medium --algo transformer_idm \
          --algo gcsl_idm --conditions --format markdown > carracing_idms.md
      fi
      echo "rebuilt $PWD/{table.md,table.csv,dt_rows.md,curves_*.png}" ;;
    quick-idm-table)
      tables "hopper-medium hopper-expert" \
        "transformer_idm transformer_idm_masked gcsl_idm dt bc" --conditions ;;
    spine-quick-hopper-random|ppo-hopper-v5-1m)
      python -m bench results --out records > table.md
      echo "rebuilt $PWD/table.md" ;;
    goal-setter)
      python "$scripts/goal_setter_report.py" records 300000 . >/dev/null
      echo "rebuilt $PWD/{curves.png,table.md,table.csv}" ;;
    vicreg-report)
      local args
      mapfile -t args < <(vicreg_filters)
      python -m bench report --out records --to . "${args[@]}" \
        --title "Temporal VICReg next to its base algorithms (quick budget)"
      # Every evaluation condition (both return targets, goal sources), a row each.
      python -m bench results --out records --conditions --format markdown "${args[@]}" \
        > conditions.md ;;
    vicreg-ppo-10-seeds)
      python -m bench report --out records --to . --algo ppo --algo ppo_vicreg \
        --dataset Hopper-v5 --variant quick \
        --title "PPO with and without temporal VICReg on its state representation, 10 seeds (quick)" ;;
    d3rlpy-referee)  # the README's table block, from the records of both sides
      python "$scripts/d3rlpy_referee.py" --table-only --records records --report README.md ;;
    example-report)
      python -m bench report --out records --to . \
        --title "Example: BC, DT and GCSL-IDM on Hopper-v5 medium / medium-replay (quick budget)" \
        --algo bc --algo dt --algo gcsl_idm --dataset hopper-medium --dataset hopper-medium-replay \
        --variant quick ;;
  esac
}

names=("$@")
if [ "${#names[@]}" -eq 0 ]; then
  for name in "${all[@]}"; do  # a report whose runs have not started has nothing to rebuild
    [ -d "$reports/$name/records" ] && names+=("$name")
  done
  for dir in "$reports"/*/; do  # a report folder without a recipe would silently go stale
    dir="$(basename "$dir")"
    [[ " ${all[*]} " == *" $dir "* ]] || echo "warning: reports/$dir has no recipe here" >&2
  done
fi
for name in "${names[@]}"; do
  (rebuild "$name")
done
