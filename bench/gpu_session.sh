#!/usr/bin/env bash
# The GPU benchmarks of issue 13 in one run on a lent GPU machine, carrying .device/ (made here by
# bench/gpu_kit.sh). Writes under $OUT: predict_phases.md, broker_fed.md (one worker, then four
# sharing the GPU), benchmarks_gpu.md and logs.
# Usage there, from the repository root: bash bench/gpu_session.sh
# BUDGET_S (default 520) bounds the whole run; the network sweep gets what the other two leave.
set -u
OUT="${OUT:-$PWD/out}"; mkdir -p "$OUT"
PY="${PY:-python3}"; T0=$(date +%s)
left() { echo $(( ${BUDGET_S:-520} - ($(date +%s) - T0) )); }
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/whl/*.whl \
    || exit 3
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 PATH="$PWD/.device/bin:$PATH"
export DICOM_NODE_SHARED_DATA="$PWD/.device/data"
# the benchmarks start workers with the dicom-node command beside the interpreter (tests.servers)
BIN=$("$PY" -c 'import os, sys; print(os.path.dirname(sys.executable))')
if [ ! -e "$BIN/dicom-node" ]; then
    printf '#!/bin/sh\nexec "%s" -c "import sys; sys.argv[0] = \\"dicom-node\\"; from worker.cli import app; app()" "$@"\n' \
        "$BIN/$(basename "$PY")" > "$BIN/dicom-node"
    chmod +x "$BIN/dicom-node"
fi
echo "== predict_batch phase by phase ($(left) s left)"
timeout -k 5 60 "$PY" bench/predict_phases.py --device cuda --batch-size 32 --precision bf16 \
    --write "$OUT/predict_phases.md" 2>"$OUT/predict_phases.log"
echo "== broker-fed worker against the network alone ($(left) s left)"
timeout -k 5 150 "$PY" bench/broker_fed.py --device cuda --batch-size 32 --images 480 --precision bf16 --compile \
    --write "$OUT/broker_fed.md" 2>"$OUT/broker_fed.log"
echo "== four broker-fed workers sharing the GPU ($(left) s left)"
timeout -k 5 170 "$PY" bench/broker_fed.py --device cuda --batch-size 32 --precision bf16 --compile --workers 4 \
    --write "$OUT/broker_fed.md" 2>"$OUT/broker_fed_4.log"
echo "== the network alone, swept ($(left) s left)"
GPU_BUDGET_S=$(( $(left) - 60 )) bash bench/gpu_bench.sh > "$OUT/sweep.log" 2>&1
grep "^|" "$OUT/benchmarks_gpu.md" | tail -n 20
echo "== done in $(( $(date +%s) - T0 )) s"
