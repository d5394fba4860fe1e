#!/usr/bin/env bash
# Copies the run records committed under a report directory (…/<dataset>/<algo>/<variant>/seed_<n>/
# with a result.json) back into a results root, so that a grid or sweep started on a fresh machine
# counts them as finished and makes only the missing runs. A run already in the root is left as
# it is. The records hold no checkpoint: a restored run is reported, never resumed or re-evaluated.
# Usage: bash reports/restore_runs.sh REPORT_DIR RESULTS_ROOT
set -euo pipefail
src="$1"; root="$2"
[ -d "$src" ] || exit 0
restored=0
while read -r result; do
  run="$(dirname "$result")"
  dest="$root/${run#"$src"/}"
  [ -f "$dest/result.json" ] && continue
  mkdir -p "$dest"
  cp "$run"/*.json* "$dest/"
  restored=$((restored + 1))
done < <(find "$src" -name result.json -path "*/seed_*/result.json")
echo "restored $restored finished run(s) from $src into $root"
