#!/usr/bin/env bash
# Keeps the unfinished runs of reports/NAME/sweep.toml under RESULTS_ROOT (checkpoint.pt, with
# the run's *.json, *.jsonl records) in
#   reports/NAME/unfinished/<dataset>/<algo>/<variant>/seed_<n>/
# so that, committed, scripts/make_report.sh NAME on another machine resumes them from there
# instead of starting them over: for runs longer than a working session (the full-budget ones).
# A checkpoint is megabytes (a TD3+BC one with its optimizers ≈ 5 MB), so carry only those.
# The checkpoint is copied before the metrics, so a run still in flight is carried whole (the
# metrics past the checkpoint are dropped on resume); a run that has since finished loses its
# carried copy here and in scripts/save_records.sh. A resumed run checks that its dataset has
# the checksum it was trained on (a machine that makes another file refuses to mix them).
# Policy snapshots (snapshot_every) stay behind.
# Usage: scripts/carry_unfinished.sh NAME [RESULTS_ROOT]
set -euo pipefail
name="${1:?usage: scripts/carry_unfinished.sh NAME [RESULTS_ROOT]}"
root="$(realpath -m "${2:-results}")"
report="$(cd "$(dirname "$0")/../reports" && pwd)/$name"
[ -f "$report/sweep.toml" ] || { echo "carry_unfinished.sh: no sweep file $report/sweep.toml" >&2; exit 2; }
listing="$(python -m bench sweep "$report/sweep.toml" --out "$root" --dry-run)"  # fails loudly
carried=0
while IFS=$'\t' read -r what run _; do
  dest="$report/unfinished/${run#"$root"/}"
  case "$what" in
    finished) rm -rf "$dest" ;;
    resume|"running elsewhere")
      [ -f "$run/checkpoint.pt" ] || continue  # started, not yet checkpointed: nothing to carry
      tmp="$dest.partial"
      rm -rf "$tmp" && mkdir -p "$tmp"
      cp "$run/checkpoint.pt" "$tmp/"
      cp "$run"/*.json* "$tmp/"
      rm -rf "$dest" && mv "$tmp" "$dest"  # a failed copy leaves the old carried one as it was
      carried=$((carried + 1)) ;;
  esac
done <<< "$listing"
find "$report/unfinished" -depth -type d -empty -delete 2>/dev/null || true
echo "carried the checkpoints of $carried unfinished run(s) into reports/$name/unfinished"
