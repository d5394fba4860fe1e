#!/usr/bin/env bash
# Copies the records (*.json, *.jsonl: result, config, metrics, dataset and env records; no
# checkpoint) of every finished run of reports/NAME/sweep.toml under RESULTS_ROOT into
#   reports/NAME/records/<dataset>/<algo>/<variant>/seed_<n>/
# as scripts/make_report.sh does after its sweep; alone it saves what a stopped sweep finished.
# A run whose checkpoint other runs of the sweep load (a `*_run` setting such as gs_ppo's
# idm_from_run names it) keeps its checkpoint.pt with its records, so that make_report.sh on a
# fresh clone restores it whole and the runs that load it can be made there.
# Usage: scripts/save_records.sh NAME [RESULTS_ROOT]
set -euo pipefail
name="${1:?usage: scripts/save_records.sh NAME [RESULTS_ROOT]}"
root="$(realpath -m "${2:-results}")"
report="$(cd "$(dirname "$0")/../reports" && pwd)/$name"
[ -f "$report/sweep.toml" ] || { echo "save_records.sh: no sweep file $report/sweep.toml" >&2; exit 2; }
listing="$(python -m bench sweep "$report/sweep.toml" --out "$root" --dry-run)"  # fails loudly
# The run directories that settings ending in _run name, as shell patterns ({seed} is any seed).
loaded="$(python - "$report/sweep.toml" <<'EOF'
import os, sys, tomllib
raw = tomllib.load(open(sys.argv[1], "rb"))
for table in [raw.get("set", {})] + [grid.get("set", {}) for grid in raw.get("grid", [])]:
    for key, value in table.items():
        if key.endswith("_run") and isinstance(value, str) and value:
            print(os.path.realpath(value.replace("{seed}", "*")))
EOF
)"
saved=0
while IFS=$'\t' read -r what run _; do
  [ "$what" = finished ] || continue
  dest="$report/records/${run#"$root"/}"
  mkdir -p "$dest"
  cp "$run"/*.json* "$dest/"
  while read -r pattern; do
    # shellcheck disable=SC2053  # $pattern is a glob on purpose
    if [ -n "$pattern" ] && [[ "$run" == $pattern ]] && [ -f "$run/checkpoint.pt" ]; then
      cp "$run/checkpoint.pt" "$dest/checkpoint.pt.partial"
      mv "$dest/checkpoint.pt.partial" "$dest/checkpoint.pt"
    fi
  done <<< "$loaded"
  rm -rf "$report/unfinished/${run#"$root"/}"  # its carried checkpoint (carry_unfinished.sh)
  saved=$((saved + 1))
done <<< "$listing"
find "$report/unfinished" -depth -type d -empty -delete 2>/dev/null || true
echo "saved the records of $saved finished run(s) into reports/$name/records"
