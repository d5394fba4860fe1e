#!/usr/bin/env bash
# Trains, or goes on training, the SAC run that Walker2d's or HalfCheetah's reference policies are
# picked from (issue 27), then picks them when it is done:
#   scripts/train_reference.sh walker2d|halfcheetah [RESULTS_ROOT]
# The run: SAC's `full` settings (the paper's), seed 0, 2M env steps, one torch thread (a second
# run may share the two cores), a policy snapshot every 10k steps (the medium policy of these
# envs comes within the first 100-300k), the first 1M steps' actions recorded for medium-replay,
# an evaluation every 100k. It checkpoints every 50k steps; run the script again after an
# interruption and it resumes. When training is complete it runs
#   python -m bench.reference pick RUN --env ENV --out assets/FAMILY
# which writes expert.pt, medium.pt, medium_replay.npz and reference.json (see assets/README.md).
# PICK=0 trains only; PICK_NOW=1 picks from the snapshots so far without training further.
# A family whose policies are committed is refused unless REPICK=1 (they make its datasets).
set -euo pipefail
family="${1:?usage: scripts/train_reference.sh walker2d|halfcheetah [RESULTS_ROOT]}"
case "$family" in
  walker2d) env_id=Walker2d-v5 ;;
  halfcheetah) env_id=HalfCheetah-v5 ;;
  *) echo "train_reference.sh: unknown family '$family' (walker2d or halfcheetah)" >&2; exit 2 ;;
esac
root="${2:-results/reference}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
overrides=(--set total_env_steps=2000000 --set snapshot_every=10000 --set record_steps=1000000
           --set eval_every=100000)
run_dir="$root/$env_id/sac/full,eval_every=100000,record_steps=1000000,snapshot_every=10000,total_env_steps=2000000/seed_0"

card="$repo/assets/$family/reference.json"
if [ -f "$card" ] && [ -z "${REPICK:-}" ]; then
  # The committed policies make the family's datasets: picking again would change every one of
  # them (and the runs that recorded their checksums).
  echo "train_reference.sh: $family's reference policies are already committed ($card); REPICK=1" \
       "trains on and picks them again, replacing them" >&2
  exit 2
fi
if [ -z "${PICK_NOW:-}" ]; then
  resume=()
  [ -f "$run_dir/checkpoint.pt" ] && resume=(--resume)
  [ -f "$run_dir/result.json" ] && echo "train_reference.sh: $run_dir is finished" >&2 \
    || OMP_NUM_THREADS=1 python -m bench run --algo sac --env "$env_id" --budget full --seed 0 \
         "${overrides[@]}" --eval-episodes 10 --out "$root" "${resume[@]}"
fi
if [ "${PICK:-1}" != 0 ]; then
  python -m bench.reference pick "$run_dir" --env "$env_id" --out "$repo/assets/$family"
fi
