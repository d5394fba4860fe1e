#!/usr/bin/env bash
# Runs a grid of `bench run` jobs read from stdin, one per line: ALGO DATASET SEED [KEY=VALUE ...]
# (the KEY=VALUE pairs become --set overrides; DATASET env:ID trains an online algorithm on the bare
# gymnasium env ID instead), JOBS at a time with one torch thread each.
# Finished runs are skipped and interrupted ones resume from their last checkpoint, so the grid can
# be stopped and re-run at will. Each run's output goes to RESULTS_ROOT/logs/.
# Usage: ... | bash reports/run_grid.sh RESULTS_ROOT JOBS BUDGET
set -euo pipefail
root="$1"; jobs="$2"; budget="$3"
mkdir -p "$root/logs"
OMP_NUM_THREADS=1 BENCH_PROGRESS=0 xargs -P "$jobs" -L 1 bash -c '
  root="$0"; budget="$1"; algo="$2"; ds="$3"; seed="$4"; shift 4
  sets=(); variant="$budget"; name="$algo-${ds#env:}-seed$seed"
  for kv in $(printf "%s\n" "$@" | sort); do sets+=(--set "$kv"); variant="$variant,$kv"; name="$name-$kv"; done
  if [ "${ds#env:}" != "$ds" ]; then source=(--env "${ds#env:}"); else source=(--dataset "$ds"); fi
  [ -f "$root/${ds#env:}/$algo/$variant/seed_$seed/result.json" ] && exit 0
  log="$root/logs/$name.log"
  python -m bench run --algo "$algo" "${source[@]}" --budget "$budget" --seed "$seed" \
      "${sets[@]}" --out "$root" --resume >"$log" 2>&1 \
    && echo "done $name" || { echo "FAILED $name (see $log)"; exit 1; }
' "$root" "$budget"
