#!/usr/bin/env bash
# Writes OUT_DIR/table.{md,csv} (normalized mean ± 95% CI over seeds, from `bench results`) for the
# given datasets and algorithms, and copies each run's result, metrics, config, dataset and env
# records beside it (the raw numbers behind every cell); with OUT_DIR = RESULTS_ROOT it only
# rewrites the table from the records there. Further arguments go to `bench results`
# (e.g. --conditions: a row per goal source or target return).
# Usage: bash reports/write_table.sh RESULTS_ROOT OUT_DIR "DATASET ..." "ALGO ..." [RESULTS_FLAG ...]
set -euo pipefail
root="$1"; out="$2"; read -r -a datasets <<<"$3"; read -r -a algos <<<"$4"; shift 4
filters=("$@")
for ds in "${datasets[@]}"; do filters+=(--dataset "$ds"); done
for algo in "${algos[@]}"; do filters+=(--algo "$algo"); done
mkdir -p "$out"
python -m bench results --out "$root" "${filters[@]}" --format markdown > "$out/table.md"
python -m bench results --out "$root" "${filters[@]}" --format csv > "$out/table.csv"
# Rebuilding a table from the records beside it (rebuild_from_records.sh): nothing to copy.
if [ "$(cd "$root" && pwd)" = "$(cd "$out" && pwd)" ]; then
  echo "rebuilt $out/table.{md,csv}"
  exit 0
fi
for ds in "${datasets[@]}"; do
  for algo in "${algos[@]}"; do
    [ -d "$root/$ds/$algo" ] || continue
    find "$root/$ds/$algo" -name result.json | while read -r result; do
      run="$(dirname "$result")"
      dest="$out/${run#"$root"/}"
      mkdir -p "$dest"
      cp "$run"/{result.json,metrics.jsonl,config.json,dataset.json,env.json} "$dest/"
    done
  done
done
echo "wrote $out"
