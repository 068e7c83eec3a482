#!/usr/bin/env bash
# Install everything dicom-node needs on a Debian machine (idempotent, no prompts):
#   system packages (redis-server, dcmtk, orthanc, dicom3tools, openssl) from Debian's archive, then a
#   virtual environment in .venv with the CPU build of PyTorch and this package with its extras.
# Usage: bash deploy/install.sh        (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq --no-install-recommends \
        redis-server dcmtk orthanc dicom3tools openssl python3-venv >/dev/null
else
    echo "apt-get not found: install redis-server, dcmtk, orthanc, dicom3tools and openssl yourself" >&2
fi

python_bin="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build of PyTorch; on a GPU machine install the CUDA build of your choice instead.
.venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install -q -e ".[dev]"
echo "dicom-node installed in .venv: run .venv/bin/dicom-node --help"
