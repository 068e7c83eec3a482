#!/usr/bin/env bash
# BS-Net GPU benchmark (bench/inference.py, network alone), for a CUDA machine without network.
# Run from the repository root:  bash bench/gpu_bench.sh
# Writes under $OUT (./out if unset): env.txt, bench.log (stdout), bench.stderr.log, benchmarks_gpu.md.
# Needs only torch (+ numpy) in the machine's Python; the repository is put on PYTHONPATH.
set -u
OUT="${OUT:-$PWD/out}"
mkdir -p "$OUT"
PY=python
command -v python >/dev/null 2>&1 || PY=python3
BUDGET="${GPU_BUDGET_S:-420}"   # no configuration starts that would end after this (s since the bench's start)
GUARD=$((BUDGET + 45))          # then SIGTERM: the bench marks what is left "not measured: interrupted"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

{
    echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname), $(nproc 2>/dev/null) CPUs, repo $(pwd)"
    echo "== nvidia-smi"
    if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi; else echo "nvidia-smi not found"; fi
    echo "== C compiler (Triton builds its launcher with one)"
    for cc in "${CC:-}" cc gcc clang; do
        if [ -n "$cc" ] && command -v "$cc" >/dev/null 2>&1; then "$cc" --version | head -n 1; break; fi
    done
    echo "== versions ($PY)"
    "$PY" - <<'PYEOF'
import platform
import sys

print("python", sys.version.replace("\n", " "), platform.platform())
import numpy
import torch

print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(),
      "available", torch.cuda.is_available(), "devices", torch.cuda.device_count())
print("numpy", numpy.__version__)
try:
    import triton
    print("triton", triton.__version__)
except Exception as error:
    print("triton not importable:", type(error).__name__, error)
for name in ("pydicom", "PIL", "cv2"):
    try:
        __import__(name)
        print(name, "present (the bench does not need it)")
    except Exception:
        print(name, "absent (the bench does not need it)")
PYEOF
} 2>&1 | tee "$OUT/env.txt"

echo "== bench/inference.py --no-cpu --repeats 5 --gpu-budget-s $BUDGET (SIGTERM at ${GUARD} s)"
runner=()
if command -v timeout >/dev/null 2>&1; then runner=(timeout -s TERM -k 20 "$GUARD"); fi
${runner[@]+"${runner[@]}"} "$PY" bench/inference.py --no-cpu --repeats 5 --gpu-budget-s "$BUDGET" \
    --write "$OUT/benchmarks_gpu.md" 2>"$OUT/bench.stderr.log" | tee "$OUT/bench.log"
rc=${PIPESTATUS[0]}
echo "== exit status $rc; last lines of $OUT/bench.stderr.log:"
tail -n 25 "$OUT/bench.stderr.log"
exit "$rc"
