#!/usr/bin/env bash
# Makes the committed example report, reports/example-report/ (report.md, report.html, figures/):
# runs the sweep in reports/example_sweep.toml at the `quick` budget into RESULTS_ROOT (default
# ./results, so runs that already exist there are reused, not repeated), then writes the report
# of those algorithms and datasets. Stopping it and running it again carries on where it stopped.
# Usage: bash reports/make_example_report.sh [RESULTS_ROOT]   (JOBS=N runs N at a time, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-results}"
start=$(date +%s)
status=0
python -m bench sweep reports/example_sweep.toml --out "$root" --jobs "${JOBS:-2}" || status=$?
echo "sweep: $(( $(date +%s) - start )) s (exit $status; failed runs are listed in the report)"
python -m bench report --out "$root" --to reports/example-report \
  --title "Example: BC, DT and GCSL-IDM on Hopper-v5 medium / medium-replay (quick budget)" \
  --algo bc --algo dt --algo gcsl_idm --dataset hopper-medium --dataset hopper-medium-replay \
  --variant quick
exit "$status"
