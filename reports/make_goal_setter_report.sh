#!/usr/bin/env bash
# Reproduces reports/goal-setter/: plain PPO against the goal-setter family on Hopper-v5, 3 seeds
# each, the same env-step budget (STEPS, default 300k):
#   ppo                      — the baseline;
#   gs_ppo                   — frozen IDM pretrained on hopper-expert (GCSL, K=10), and the
#                              control with weaker data: frozen IDM pretrained on hopper-medium;
#   gs_ppo_joint (K=10, K=5) — IDM trained from scratch on the goal setter's own rollouts;
#   gs_ppo_v0                — PPO also emits actions; closeness loss between IDM and PPO.
# JOBS runs at once with one torch thread each (default 2). Resumable across sessions: the run
# records committed in runs/ are restored into RESULTS_ROOT first, finished runs are skipped.
# Then writes curves.png (training return vs env steps, mean ± 95% CI over seeds) and table.md
# (final evaluation and best training point, normalized) with report.py, and copies each run's
# result, metrics, config and env records to runs/ beside them.
# Usage: bash reports/make_goal_setter_report.sh [RESULTS_ROOT] [JOBS] [STEPS]
set -euo pipefail
root="${1:-results}"
jobs="${2:-2}"
steps="${3:-300000}"
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/restore_runs.sh" "$here/goal-setter/runs" "$root"
for ds in hopper-expert hopper-medium; do
  if ! ls "$root/$ds/gs_ppo/full,num_updates=$steps"/seed_{0,1,2}/result.json >/dev/null 2>&1; then
    python -m bench datasets info "$ds" >/dev/null 2>&1 || python -m bench datasets make "$ds"
  fi
done
for seed in 0 1 2; do
  echo "ppo env:Hopper-v5 $seed num_updates=$steps"
  echo "gs_ppo hopper-expert $seed num_updates=$steps"
  echo "gs_ppo hopper-medium $seed num_updates=$steps"
  echo "gs_ppo_joint env:Hopper-v5 $seed num_updates=$steps"
  echo "gs_ppo_joint env:Hopper-v5 $seed num_updates=$steps max_offset=5"
  echo "gs_ppo_v0 env:Hopper-v5 $seed num_updates=$steps"
done | bash "$here/run_grid.sh" "$root" "$jobs" full
python "$here/goal-setter/report.py" "$root" "$steps" "$here/goal-setter"
for run in "$root"/Hopper-v5/{ppo,gs_ppo_joint,gs_ppo_v0}/full,*num_updates="$steps"/seed_* \
           "$root"/hopper-{expert,medium}/gs_ppo/full,num_updates="$steps"/seed_*; do
  [ -f "$run/result.json" ] || continue
  dest="$here/goal-setter/runs/${run#"$root"/}"
  mkdir -p "$dest"
  cp "$run"/{result.json,metrics.jsonl,config.json,env.json} "$dest/"
  if [ -f "$run/dataset.json" ]; then cp "$run/dataset.json" "$dest/"; fi
done
