#!/usr/bin/env bash
# Copies the records (*.json, *.jsonl: result, config, metrics, dataset and env records; no
# checkpoint) of every finished run of reports/NAME/sweep.toml under RESULTS_ROOT into
#   reports/NAME/records/<dataset>/<algo>/<variant>/seed_<n>/
# as scripts/make_report.sh does after its sweep; alone it saves what a stopped sweep finished.
# A run whose IDM other runs of the sweep load (gs_ppo's idm_from_run names it) keeps the part of
# its checkpoint.pt they read (bench.algos.gs_ppo.idm_only: the IDM, not the 20 MB replay buffer)
# with its records, so that make_report.sh on a fresh clone restores it and the runs that load it
# can be made there.
# Usage: scripts/save_records.sh NAME [RESULTS_ROOT]   (run it from the directory the sweep ran in:
# idm_from_run paths are relative to it, and a run they name keeps its IDM only when they match)
set -euo pipefail
name="${1:?usage: scripts/save_records.sh NAME [RESULTS_ROOT]}"
root="$(realpath -m "${2:-results}")"
report="$(cd "$(dirname "$0")/../reports" && pwd)/$name"
[ -f "$report/sweep.toml" ] || { echo "save_records.sh: no sweep file $report/sweep.toml" >&2; exit 2; }
listing="$(python -m bench sweep "$report/sweep.toml" --out "$root" --dry-run)"  # fails loudly
# The run directories that idm_from_run settings name, as shell patterns ({seed} is any seed).
loaded="$(python - "$report/sweep.toml" <<'EOF'
import os, sys, tomllib
raw = tomllib.load(open(sys.argv[1], "rb"))
for table in [raw.get("set", {})] + [grid.get("set", {}) for grid in raw.get("grid", [])]:
    if table.get("idm_from_run"):
        print(os.path.realpath(table["idm_from_run"].replace("{seed}", "*")))
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
    [ -n "$pattern" ] && [[ "$run" == $pattern ]] || continue
    if [ ! -f "$run/checkpoint.pt" ]; then
      echo "save_records.sh: $run has no checkpoint.pt, so the runs loading its IDM cannot be made" \
        "from the records; run it again (bench run ... --out $root) before saving" >&2
      continue
    fi
    python -c 'import sys, torch
from bench.algos.gs_ppo import idm_only
torch.save(idm_only(torch.load(sys.argv[1], map_location="cpu", weights_only=False)), sys.argv[2])' \
      "$run/checkpoint.pt" "$dest/checkpoint.pt.partial"
    mv "$dest/checkpoint.pt.partial" "$dest/checkpoint.pt"
  done <<< "$loaded"
  rm -rf "$report/unfinished/${run#"$root"/}"  # its carried checkpoint (carry_unfinished.sh)
  saved=$((saved + 1))
done <<< "$listing"
find "$report/unfinished" -depth -type d -empty -delete 2>/dev/null || true
echo "saved the records of $saved finished run(s) into reports/$name/records"
