#!/usr/bin/env bash
# bench/roundtrip.py on a lent GPU machine (its inference on the GPU, everything else on its
# CPUs), carrying .device/ (made here by bench/gpu_kit.sh, with Orthanc, storescp and storescu
# packed). Writes $OUT/roundtrip.md and $OUT/roundtrip.log.
# Usage there, from the repository root: bash bench/gpu_roundtrip.sh
set -u
. bench/gpu_env.sh
SERVERS=/tmp/dicom-servers
mkdir -p "$SERVERS/bin" && tar xJf .device/dicom-servers.tar.xz -C "$SERVERS" || exit 3
for program in Orthanc storescp storescu; do
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s/lib" DCMDICTPATH="%s/share/dicom.dic" exec "%s/lib/%s.real" "$@"\n' \
        "$SERVERS" "$SERVERS" "$SERVERS" "$program" > "$SERVERS/bin/$program"
    chmod +x "$SERVERS/bin/$program"
done
export PATH="$SERVERS/bin:$PATH"
Orthanc --version | head -n 1 && storescu --version | head -n 1 || exit 4
nvidia-smi --query-gpu=name --format=csv,noheader
"$PY" bench/roundtrip.py --write "$OUT/roundtrip.md" > "$OUT/roundtrip.log" 2>&1
status=$?
tail -n 30 "$OUT/roundtrip.log"
echo "== done in $(( $(date +%s) - T0 )) s, status $status"
