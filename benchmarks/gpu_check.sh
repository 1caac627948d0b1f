#!/usr/bin/env bash
# GPU readiness and the `paper` preset at 224 px on TwoRoom (benchmarks/gpu_check.py), plus the CUDA
# tests. Run from the repository root on a CUDA machine:
#
#   OUT=results/gpu_check bash benchmarks/gpu_check.sh
#
# Environment: OUT (results folder, default results/gpu_check), WORK (scratch, default /tmp/gpu_check),
# PYTHON (default python3), WHEELS (a folder of wheels to install first into /tmp/site when the
# machine cannot reach PyPI; the project then runs from this tree), PAIRS / SPLIT (the
# `tasks` preset's TwoRoom pairs.npz and task.json: evaluate on the CPU table's pairs), CHECK_ARGS
# (extra arguments of gpu_check.py, e.g. "--train-seconds 240 --deadline 520").
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu_check}
WORK=${WORK:-/tmp/gpu_check}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK"
export TQDM_MININTERVAL=${TQDM_MININTERVAL:-15} PYTHONUNBUFFERED=1
start=$(date +%s)

# shellcheck source=benchmarks/gpu_env.sh
source benchmarks/gpu_env.sh
echo "setup $(( $(date +%s) - start ))s"
(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu,power.draw \
  --format=csv -l 2 >"$OUT/smi.csv" 2>/dev/null) &
smi=$!

# the CUDA tests first (skipped without a GPU): about 30 s
$PYTHON -m pytest -q -p no:cacheprovider tests/test_cuda.py >"$OUT/pytest.txt" 2>&1
echo "pytest rc=$? ($(tail -1 "$OUT/pytest.txt"))"

args=(--out "$OUT" --work "$WORK")
[ -n "${PAIRS:-}" ] && args+=(--pairs "$PAIRS")
[ -n "${SPLIT:-}" ] && args+=(--split "$SPLIT")
# shellcheck disable=SC2086
$PYTHON benchmarks/gpu_check.py "${args[@]}" ${CHECK_ARGS:-}
rc=$?
kill $smi 2>/dev/null
# the run's settings and its TensorBoard scalars come back with the results (the weights stay in WORK)
cp "$WORK/run/train_config.json" "$OUT/" 2>/dev/null
# the largest events file holds the scalars (the other one the hparams)
ev=$(ls -S "$WORK"/run/tb/events.out.tfevents.* 2>/dev/null | head -1); [ -n "$ev" ] && cp "$ev" "$OUT/tb_events"
echo "gpu_check rc=$rc, total $(( $(date +%s) - start ))s"
exit $rc
