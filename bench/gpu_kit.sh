#!/usr/bin/env bash
# Prepare, on this machine, what a lent GPU machine needs to run the node's GPU benchmarks
# (bench/gpu_session.sh): its Python (3.12, with torch) lacks the node's other packages and
# redis-server, and it reaches no package registry. Writes .device/ (ignored by git; carry it):
#   .device/whl/   wheels of every installed package the GPU image lacks, for CPython 3.12
#   .device/bin/   redis-server, a wrapper around .device/lib/redis-server.real and its libraries
#   .device/data/  the Fuji chest CR the benchmarks prepare (from ../shared/data)
#   .device/dicom-servers.tar.xz  Orthanc, storescp and storescu with their libraries (roundtrip)
# Usage, from the repository root: bash bench/gpu_kit.sh   (needs .venv, pip's registry, redis-server,
# Orthanc and dcmtk)
set -euo pipefail
KIT=.device
# Installed here and not in the GPU machines' image (the device tool's KINDS.md lists that image).
MISSING=(amqp annotated-types billiard celery celery-batches click-didyoumean click-plugins click-repl
         hiredis highdicom kombu prompt_toolkit pydantic pydantic-settings pydantic_core pydicom pyjpegls pylibjpeg
         pybase64 pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle pynetdicom python-dotenv redis typing_extensions
         typing-inspection tzlocal vine wcwidth
         pytest pluggy iniconfig packaging Pygments)  # pytest: the tests that need a GPU
mkdir -p "$KIT/whl" "$KIT/bin" "$KIT/lib" "$KIT/data/dicom"
pins=()
for name in "${MISSING[@]}"; do
    pins+=("$(.venv/bin/pip freeze | grep -i "^${name//[-_]/[-_]}==")")
done
platforms=()
for n in 17 24 27 28 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
.venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 "${platforms[@]}" -d "$KIT/whl" "${pins[@]}"
# copy_program NAME DIR: the program NAME as DIR/NAME.real, with every library it links beside it
# but the C and C++ runtimes (the GPU machine's own are newer)
copy_program() {
    local path
    path=$(command -v "$1")
    cp "$path" "$2/$1.real"
    ldd "$path" | awk '/=> \// {print $3}' | grep -v -E '/(libc|libm|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so' \
        | xargs -I{} cp -L {} "$2/"
}
copy_program redis-server "$KIT/lib"
cat > "$KIT/bin/redis-server" <<'WRAPPER'
#!/bin/sh
here=$(dirname "$(readlink -f "$0")")/../lib
LD_LIBRARY_PATH="$here" exec "$here/redis-server.real" "$@"
WRAPPER
chmod +x "$KIT/bin/redis-server"
cp "${DICOM_NODE_SHARED_DATA:-../shared/data}/dicom/cr_mono1_explicit_fuji_small.dcm" "$KIT/data/dicom/"
# bench/roundtrip.py's servers for bench/gpu_roundtrip.sh: Orthanc and dcmtk's storescp/storescu
# with their libraries and DCMTK's data dictionary, packed (about 73 MB unpacked, 21 MB packed:
# what a run carries is 64 MiB in all)
servers=$(mktemp -d)
mkdir -p "$servers/lib" "$servers/share"
for program in Orthanc storescp storescu; do
    copy_program "$program" "$servers/lib"
done
cp /usr/share/libdcmtk*/dicom.dic "$servers/share/"
tar cJf "$KIT/dicom-servers.tar.xz" -C "$servers" lib share
rm -rf "$servers"
du -sh "$KIT"
