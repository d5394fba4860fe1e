#!/usr/bin/env bash
# Makes, or finishes, one committed report reports/NAME/ from its sweep file:
#   1. every run recorded in reports/NAME/records/ is copied into RESULTS_ROOT (a run already
#      there is left as it is), so that the sweep counts it as finished and a fresh machine makes
#      only what is missing. Records hold no checkpoint: a restored run is reported, never
#      resumed or re-evaluated (one whose IDM other runs load keeps that part: save_records.sh);
#   1b. every run carried unfinished in reports/NAME/unfinished/ (scripts/carry_unfinished.sh)
#      is copied there too, checkpoint included, unless the root has it finished or its own
#      checkpoint at least as far;
#   2. `bench sweep reports/NAME/sweep.toml --out RESULTS_ROOT --jobs JOBS`: missing datasets are
#      made first, finished runs skipped, interrupted ones resumed (stop it and run it again at
#      will); a failed run leaves its error.json and the others go on;
#   3. the records (*.json, *.jsonl; and the IDM of a run that others load) of every finished run
#      of the sweep are copied into
#      reports/NAME/records/<dataset>/<algo>/<variant>/seed_<n>/ (scripts/save_records.sh, which
#      also does this alone, e.g. for the runs a stopped sweep finished);
#   4. scripts/rebuild_from_records.sh NAME writes the tables and report from those records.
# To reuse another report's runs (one run directory is one run), copy their records into
# RESULTS_ROOT first. DRY_RUN=1 does step 1 (not 1b) and lists what the sweep would do with each run.
# Usage: scripts/make_report.sh NAME [RESULTS_ROOT]   (JOBS=N runs N at a time, default 2)
set -euo pipefail
name="${1:?usage: scripts/make_report.sh NAME [RESULTS_ROOT]}"
root="$(realpath -m "${2:-results}")"
scripts="$(cd "$(dirname "$0")" && pwd)"
report="$(cd "$scripts/../reports" && pwd)/$name"
sweep="$report/sweep.toml"
[ -f "$sweep" ] || { echo "make_report.sh: no sweep file $sweep" >&2; exit 2; }

restored=0
if [ -d "$report/records" ]; then
  while read -r result; do
    run="$(dirname "$result")"
    dest="$root/${run#"$report/records/"}"
    [ -f "$dest/result.json" ] && continue
    mkdir -p "$dest"
    # a checkpoint is kept only where other runs load its IDM (save_records.sh); copied whole
    # before result.json, so that a run counts as finished only once it is whole
    if [ -f "$run/checkpoint.pt" ]; then
      cp "$run/checkpoint.pt" "$dest/checkpoint.pt.partial" && mv "$dest/checkpoint.pt.partial" "$dest/checkpoint.pt"
    fi
    cp "$run"/*.json* "$dest/"
    restored=$((restored + 1))
  done < <(find "$report/records" -path "*/seed_*/result.json")
fi
echo "restored $restored finished run(s) from reports/$name/records into $root"
# 1b. unfinished runs carried from another machine (scripts/carry_unfinished.sh) resume from their
# checkpoint, unless this root has the run finished or checkpointed at least as far
carried=0
if [ -d "$report/unfinished" ] && [ -z "${DRY_RUN:-}" ]; then
  while read -r ckpt; do
    run="$(dirname "$ckpt")"
    dest="$root/${run#"$report/unfinished/"}"
    [ -f "$dest/result.json" ] && continue
    if [ -f "$dest/checkpoint.pt" ]; then
      further="$(python -c 'import sys, torch
steps = [torch.load(p, map_location="cpu", weights_only=False)["step"] for p in sys.argv[1:]]
print(int(steps[0] > steps[1]))' "$ckpt" "$dest/checkpoint.pt")"
      [ "$further" = 1 ] || continue  # (its records, metrics included, are replaced below)
    fi
    mkdir -p "$dest"
    cp "$run"/*.json* "$dest/"
    cp "$ckpt" "$dest/checkpoint.pt.partial" && mv "$dest/checkpoint.pt.partial" "$dest/checkpoint.pt"
    carried=$((carried + 1))
  done < <(find "$report/unfinished" -path "*/seed_*/checkpoint.pt" ! -path "*.partial/*")
  echo "restored $carried unfinished run(s) from reports/$name/unfinished into $root"
fi
if [ -n "${DRY_RUN:-}" ]; then
  exec python -m bench sweep "$sweep" --out "$root" --dry-run
fi

status=0
python -m bench sweep "$sweep" --out "$root" --jobs "${JOBS:-2}" || status=$?

"$scripts/save_records.sh" "$name" "$root"
"$scripts/rebuild_from_records.sh" "$name"
exit "$status"
