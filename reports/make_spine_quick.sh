#!/usr/bin/env bash
# Reproduces reports/spine-quick-hopper-random/: bc, dt and dt_noreturn at the `quick` budget on
# the suite's hopper-random (1M uniform-random transitions), seed 0. Takes ~20 minutes on 2 cores.
# Usage: bash reports/make_spine_quick.sh [RESULTS_ROOT]
set -euo pipefail
root="${1:-results}"
here="$(cd "$(dirname "$0")" && pwd)"
for algo in bc dt dt_noreturn; do
  python -m bench run --algo "$algo" --dataset hopper-random --budget quick --seed 0 --out "$root" --resume
done
out="$here/spine-quick-hopper-random"
mkdir -p "$out"
python -m bench results --out "$root" > "$out/table.md"
for algo in bc dt dt_noreturn; do
  run="$root/hopper-random/$algo/quick/seed_0"
  mkdir -p "$out/$algo"
  cp "$run"/{result.json,metrics.jsonl,config.json,dataset.json,env.json} "$out/$algo/"
done
