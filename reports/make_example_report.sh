#!/usr/bin/env bash
# Makes the committed example report, reports/example-report/ (report.md, report.html, figures/,
# and runs/ with every run's records): runs the sweep in reports/example_sweep.toml at the `quick`
# budget into RESULTS_ROOT (default ./results), then writes the report of those algorithms and
# datasets. Run records committed under reports/example-report/runs/ and
# reports/quick-hopper-table/ (the same bc and dt runs) are restored into RESULTS_ROOT first and
# count as finished, so a fresh machine makes only what is missing; stopping it and running it
# again carries on where it stopped. `bash reports/rebuild_from_records.sh` rebuilds the report
# from runs/ alone.
# Usage: bash reports/make_example_report.sh [RESULTS_ROOT]   (JOBS=N runs N at a time, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-results}"
out=reports/example-report
datasets=(hopper-medium hopper-medium-replay)
algos=(bc dt gcsl_idm)
bash reports/restore_runs.sh "$out/runs" "$root"
for ds in "${datasets[@]}"; do
  for algo in bc dt; do
    bash reports/restore_runs.sh "reports/quick-hopper-table/$ds/$algo" "$root/$ds/$algo"
  done
done
start=$(date +%s)
status=0
python -m bench sweep reports/example_sweep.toml --out "$root" --jobs "${JOBS:-2}" || status=$?
echo "sweep: $(( $(date +%s) - start )) s (exit $status; failed runs are listed in the report)"
bash reports/save_runs.sh "$root" "$out/runs" "${datasets[*]}" "${algos[*]}" quick
python -m bench report --out "$out/runs" --to "$out" \
  --title "Example: BC, DT and GCSL-IDM on Hopper-v5 medium / medium-replay (quick budget)" \
  --algo bc --algo dt --algo gcsl_idm --dataset hopper-medium --dataset hopper-medium-replay \
  --variant quick
exit "$status"
