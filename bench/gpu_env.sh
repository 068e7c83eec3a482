# Sourced by bench/gpu_session.sh and bench/gpu_roundtrip.sh on a lent GPU machine, from the
# repository root, with .device/ carried (bench/gpu_kit.sh): installs the carried wheels beside the
# machine's Python, puts the repository, the wheels and .device/bin first on the paths, and makes
# the dicom-node command the benchmarks start (tests.servers.DICOM_NODE) beside the interpreter.
# Sets OUT (default ./out), PY (default python3) and T0 (the start, in seconds).
OUT="${OUT:-$PWD/out}"; mkdir -p "$OUT"
PY="${PY:-python3}"; T0=$(date +%s)
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/whl/*.whl \
    || exit 3
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 PATH="$PWD/.device/bin:$PATH"
export DICOM_NODE_SHARED_DATA="$PWD/.device/data"
BIN=$("$PY" -c 'import os, sys; print(os.path.dirname(sys.executable))')
if [ ! -e "$BIN/dicom-node" ]; then
    printf '#!/bin/sh\nexec "%s" -c "import sys; sys.argv[0] = \\"dicom-node\\"; from worker.cli import app; app()" "$@"\n' \
        "$BIN/$(basename "$PY")" > "$BIN/dicom-node"
    chmod +x "$BIN/dicom-node"
fi
