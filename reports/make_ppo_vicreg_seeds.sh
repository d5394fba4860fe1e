#!/usr/bin/env bash
# Follow-up to the VICReg report: its one positive signal (ppo_vicreg 91.0 ± 11.9 against ppo
# 52.9 ± 64.0 on Hopper-v5, 3 seeds) rerun at 10 seeds, same quick budget and evaluation (10
# episodes). Seeds 0-2 are the report's own runs (restored from reports/vicreg-report/runs/);
# this makes seeds 3-9 (14 runs, about 40 minutes on 2 cores) and writes
# reports/vicreg-report/ppo-10-seeds/ (report, figures, the records of all 20 runs). Resumable across
# sessions like the other report scripts.
# Usage: bash reports/make_ppo_vicreg_seeds.sh [RESULTS_ROOT]   (JOBS=N runs N at a time, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-results}"
out=reports/vicreg-report/ppo-10-seeds
for algo in ppo ppo_vicreg; do
  bash reports/restore_runs.sh "reports/vicreg-report/runs/Hopper-v5/$algo" "$root/Hopper-v5/$algo"
done
bash reports/restore_runs.sh "$out/runs" "$root"
status=0
python -m bench sweep --algo ppo ppo_vicreg --env Hopper-v5 --seed 0 1 2 3 4 5 6 7 8 9 \
  --budget quick --eval-episodes 10 --out "$root" --jobs "${JOBS:-2}" || status=$?
python -m bench report --out "$root" --to "$out" --algo ppo --algo ppo_vicreg \
  --dataset Hopper-v5 --variant quick \
  --title "PPO with and without temporal VICReg on its state representation, 10 seeds (quick)"
for algo in ppo ppo_vicreg; do
  for seed in 0 1 2 3 4 5 6 7 8 9; do
    run="$root/Hopper-v5/$algo/quick/seed_$seed"
    [ -f "$run/result.json" ] || continue
    dest="$out/runs/Hopper-v5/$algo/quick/seed_$seed"
    mkdir -p "$dest"
    cp "$run"/*.json* "$dest/"
  done
done
exit "$status"
