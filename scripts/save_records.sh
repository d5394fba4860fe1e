#!/usr/bin/env bash
# Copies the records (*.json, *.jsonl: result, config, metrics, dataset and env records; no
# checkpoint) of every finished run of reports/NAME/sweep.toml under RESULTS_ROOT into
#   reports/NAME/records/<dataset>/<algo>/<variant>/seed_<n>/
# as scripts/make_report.sh does after its sweep; alone it saves what a stopped sweep finished.
# Usage: scripts/save_records.sh NAME [RESULTS_ROOT]
set -euo pipefail
name="${1:?usage: scripts/save_records.sh NAME [RESULTS_ROOT]}"
root="$(realpath -m "${2:-results}")"
report="$(cd "$(dirname "$0")/../reports" && pwd)/$name"
[ -f "$report/sweep.toml" ] || { echo "save_records.sh: no sweep file $report/sweep.toml" >&2; exit 2; }
listing="$(python -m bench sweep "$report/sweep.toml" --out "$root" --dry-run)"  # fails loudly
saved=0
while IFS=$'\t' read -r what run _; do
  [ "$what" = finished ] || continue
  dest="$report/records/${run#"$root"/}"
  mkdir -p "$dest"
  cp "$run"/*.json* "$dest/"
  rm -rf "$report/unfinished/${run#"$root"/}"  # its carried checkpoint (carry_unfinished.sh)
  saved=$((saved + 1))
done <<< "$listing"
find "$report/unfinished" -depth -type d -empty -delete 2>/dev/null || true
echo "saved the records of $saved finished run(s) into reports/$name/records"
