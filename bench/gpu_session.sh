#!/usr/bin/env bash
# The GPU benchmarks of issue 13 in one run on a lent GPU machine, carrying .device/ (made here by
# bench/gpu_kit.sh). Writes under $OUT: broker_fed.md (one worker of 3, then 4 processes sharing
# the GPU, two scoring threads each, with CUDA graphs and without), gpu_tests.log (the tests skipped
# where there is no GPU), predict_phases.md and benchmarks_gpu.md (the network alone, swept) if time is left,
# and logs.
# Usage there, from the repository root: bash bench/gpu_session.sh
# BUDGET_S (default 540) bounds the whole run; the network sweep gets what the others leave.
set -u
. bench/gpu_env.sh
left() { echo $(( ${BUDGET_S:-540} - ($(date +%s) - T0) )); }
# each step gets at most its own limit and never more than the budget has left
step() {  # step NAME SECONDS_AT_MOST COMMAND...: runs COMMAND under a timeout, or says it was skipped
    local name=$1 most=$2; shift 2
    local budget=$(( $(left) < most ? $(left) : most ))
    if [ "$budget" -lt 60 ]; then echo "== $name: not run (time budget: $(left) s left)"; return; fi
    echo "== $name ($(left) s left, at most $budget s)"
    timeout -k 5 "$budget" "$@"
}
BF=(bench/broker_fed.py --device cuda --batch-size 32 --precision bf16 --compile --images 5760)
step "broker-fed worker (--concurrency 3, then 4; 2 scoring threads each; CUDA graphs on, then off) against the network alone" 330 \
    "$PY" "${BF[@]}" --workers 3,4 --scoring-threads 2 --cuda-graphs on,off --write "$OUT/broker_fed.md" \
    2>"$OUT/broker_fed.log"
step "the tests that need a GPU (CUDA graphs; three compiles)" 200 \
    "$PY" -m pytest -q -p no:cacheprovider tests/inference/test_cuda_graphs.py > "$OUT/gpu_tests.log" 2>&1
tail -n 5 "$OUT/gpu_tests.log"
step "predict_batch phase by phase" 60 \
    "$PY" bench/predict_phases.py --device cuda --batch-size 32 --precision bf16 \
    --write "$OUT/predict_phases.md" 2>"$OUT/predict_phases.log"
if [ "$(left)" -ge 150 ]; then
    echo "== the network alone, swept ($(left) s left)"
    GPU_BUDGET_S=$(( $(left) - 60 )) bash bench/gpu_bench.sh > "$OUT/sweep.log" 2>&1
    grep "^|" "$OUT/benchmarks_gpu.md" | tail -n 20
else
    echo "== the network alone, swept: not run (time budget: $(left) s left)"
fi
echo "== done in $(( $(date +%s) - T0 )) s"
