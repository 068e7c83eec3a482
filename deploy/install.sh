#!/usr/bin/env bash
# Install everything dicom-node needs on a Debian machine (idempotent, no prompts):
#   system packages (redis-server, dcmtk, orthanc, dicom3tools, openssl) from Debian's archive, then a
#   virtual environment in .venv with the CPU build of PyTorch and this package with its extras.
#   For the viewer test (tests/viewer): orthanc-dicomweb, chromium and, where no Node.js is installed,
#   nodejs and npm from Debian's archive, then the OHIF Viewer (@ohif/app) and puppeteer-core in
#   deploy/ohif/node_modules with `npm ci`, exactly as deploy/ohif/package-lock.json pins them.
# Usage: bash deploy/install.sh        (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq --no-install-recommends \
        redis-server dcmtk orthanc orthanc-dicomweb dicom3tools openssl python3-venv chromium >/dev/null
    # Debian 12's Node.js 18 and npm 9, unless a Node.js (with its npm) is installed already.
    command -v node >/dev/null 2>&1 || $sudo_cmd apt-get install -y -qq --no-install-recommends nodejs >/dev/null
    command -v npm >/dev/null 2>&1 || $sudo_cmd apt-get install -y -qq --no-install-recommends npm >/dev/null
else
    echo "apt-get not found: install redis-server, dcmtk, orthanc, orthanc-dicomweb, dicom3tools, openssl," \
        "chromium and Node.js with npm yourself" >&2
fi

python_bin="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build of PyTorch; on a GPU machine install the CUDA build of your choice instead.
.venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install -q -e ".[dev]"
# The OHIF Viewer's prebuilt dist/ and puppeteer-core for tests/viewer (see deploy/ohif/README.md):
# npm ci installs exactly the lockfile's tarballs and checks each against its sha512 integrity.
if command -v npm >/dev/null 2>&1; then
    (cd deploy/ohif && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
else
    echo "npm not found: the OHIF viewer test (tests/viewer) will be skipped" >&2
fi
echo "dicom-node installed in .venv: run .venv/bin/dicom-node --help"
