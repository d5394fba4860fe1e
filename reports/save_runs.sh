#!/usr/bin/env bash
# Copies the records (result, config, metrics, dataset and env JSON) of every finished run
# RESULTS_ROOT/<dataset>/<algo>/<variant>/seed_<n> of the given datasets, algorithms and variants
# into OUT_DIR under the same relative path: the inverse of restore_runs.sh, so that a committed
# report keeps the raw numbers behind it (rebuild_from_records.sh rebuilds it from them).
# Usage: bash reports/save_runs.sh RESULTS_ROOT OUT_DIR "DATASET ..." "ALGO ..." "VARIANT ..."
set -euo pipefail
root="$1"; out="$2"; read -r -a datasets <<<"$3"; read -r -a algos <<<"$4"
read -r -a variants <<<"$5"
saved=0
for ds in "${datasets[@]}"; do
  for algo in "${algos[@]}"; do
    for variant in "${variants[@]}"; do
      for run in "$root/$ds/$algo/$variant"/seed_*; do
        [ -f "$run/result.json" ] || continue
        dest="$out/${run#"$root"/}"
        mkdir -p "$dest"
        cp "$run"/*.json* "$dest/"
        saved=$((saved + 1))
      done
    done
  done
done
echo "saved the records of $saved finished run(s) into $out"
