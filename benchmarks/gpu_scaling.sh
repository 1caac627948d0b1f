#!/usr/bin/env bash
# Variants of a scaling study (experiments/scaling.py) trained and evaluated on a CUDA machine within
# a deadline, e.g. on a lent GPU (offline: WHEELS, see benchmarks/gpu_env.sh):
#
#   STUDY=pusht VARIANTS=relative-10k-10k,relative-10k-h3-10k OUT=results/gpu_scaling bash benchmarks/gpu_scaling.sh
#
# Environment: STUDY (default pusht), VARIANTS (comma-separated, required), OUT (results, default
# results/gpu_scaling), WORK (scratch: data and runs, default /tmp/gpu_scaling), PYTHON, WHEELS,
# DEADLINE (seconds for the whole script, default 540), EVAL_RESERVE (seconds kept after training
# for loading, evaluation and the probe, default 120), JOBS (variants trained at once, default all),
# THREADS (OMP threads per job, default 4), WORKERS (collection processes, default: cores - 1), DEVICE
# (default cuda; `DEVICE=cpu STUDY=smoke VARIANTS=steps-10,steps-20` checks the script in a minute).
#
# Every file is collected here, the evaluation file with the study's seed, so its trajectories are
# the CPU study's: OUT/data_fingerprints.json holds a hash of each file's states to check that
# (`python benchmarks/gpu_scaling.sh` prints none; compare with the same hash of the local file).
# Training stops at the deadline's share (scaling.py --time-limit) and a stopped variant is still
# evaluated from its checkpoint (--eval-unfinished: its record says "unfinished" and how many steps).
# Back in OUT: records/*.json (scaling.py's records), logs/*.log, runs/<variant>/*.json, tb/<variant>;
# with AGENTS=1 also runs/<variant>/agent (the saved agent, to diagnose it at home).
set -uo pipefail
cd "$(dirname "$0")/.."
STUDY=${STUDY:-pusht}
: "${VARIANTS:?set VARIANTS to the comma-separated variants of study $STUDY}"
OUT=${OUT:-results/gpu_scaling}
WORK=${WORK:-/tmp/gpu_scaling}
PYTHON=${PYTHON:-python3}
DEADLINE=${DEADLINE:-540}
EVAL_RESERVE=${EVAL_RESERVE:-120}
JOBS=${JOBS:-$(echo "$VARIANTS" | tr ',' '\n' | wc -l)}
THREADS=${THREADS:-4}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))}
ROOT=$WORK/$STUDY
mkdir -p "$OUT" "$ROOT"
export TQDM_MININTERVAL=${TQDM_MININTERVAL:-15} PYTHONUNBUFFERED=1
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }

# shellcheck source=benchmarks/gpu_env.sh
source benchmarks/gpu_env.sh
(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu,power.draw \
  --format=csv -l 5 >"$OUT/smi.csv" 2>/dev/null) &
smi=$!
echo "setup $(elapsed)s"

$PYTHON experiments/scaling.py --study "$STUDY" --variants "$VARIANTS" --root "$ROOT" --workers "$WORKERS" \
  --prepare-only --no-progress || { kill $smi 2>/dev/null; echo "collection failed"; exit 1; }
echo "collected in $(elapsed)s"
$PYTHON - "$ROOT/data" >"$OUT/data_fingerprints.json" <<'PY'
import hashlib, json, sys
from pathlib import Path
import h5py
out = {}
for path in sorted(Path(sys.argv[1]).glob("*.h5")):
    with h5py.File(path, "r") as f:
        out[path.name] = {"episodes": int(f["ep_len"].shape[0]), "frames": int(f["state"].shape[0]),
                          "states_sha1": hashlib.sha1(f["state"][:].tobytes()).hexdigest()[:16]}
print(json.dumps(out, indent=2))
PY
cat "$OUT/data_fingerprints.json"

left=$(( DEADLINE - $(elapsed) - EVAL_RESERVE ))
[ "$left" -lt 30 ] && left=30
minutes=$($PYTHON -c "print(round($left / 60, 2))")
echo "training: $minutes min per variant at most, $JOBS at once"
$PYTHON experiments/scaling.py --study "$STUDY" --variants "$VARIANTS" --root "$ROOT" --device "$DEVICE" --jobs "$JOBS" \
  --threads-per-job "$THREADS" --time-limit "$minutes" --eval-unfinished --no-progress
rc=$?
kill $smi 2>/dev/null
cp -r "$ROOT/records" "$ROOT/logs" "$OUT/" 2>/dev/null
for run in "$ROOT"/runs/*/; do
  name=$(basename "$run"); mkdir -p "$OUT/runs/$name" "$OUT/tb/$name"
  cp "$run"/*.json "$OUT/runs/$name/" 2>/dev/null
  [ "${AGENTS:-0}" = 1 ] && [ -d "$run/agent" ] && cp -r "$run/agent" "$OUT/runs/$name/"
  ev=$(ls -S "$run"/tb/events.out.tfevents.* 2>/dev/null | head -1); [ -n "$ev" ] && cp "$ev" "$OUT/tb/$name/"
done
echo "gpu_scaling rc=$rc, total $(elapsed)s"
exit $rc
