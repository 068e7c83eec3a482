"""Shared test fixtures: where the shared test data lives and how to require external tools."""

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DICOM_NODE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
DICOM_DATA = SHARED_DATA / "dicom"
BRIXIA_DATA = SHARED_DATA / "brixia-public"
FUJI_CR = DICOM_DATA / "cr_mono1_explicit_fuji_small.dcm"

# Real chest radiographs in ../shared/data/dicom (see its README): name -> photometric.
CHEST_RADIOGRAPHS = {
    "cr_mono1_explicit_fuji_small.dcm": "MONOCHROME1",
    "cr_mono1_j2k_lossy_philips.dcm": "MONOCHROME1",
    "dx_mono1_j2k_lossless_canon.dcm": "MONOCHROME1",
    "sc_cr_jpeg_baseline_siim.dcm": "MONOCHROME2",
}


def require_path(path: Path) -> Path:
    """Skip cleanly where the shared data is absent (it is never committed)."""
    if not path.exists():
        pytest.skip(f"shared test data not found: {path}")
    return path


def missing_installation(message: str) -> NoReturn:
    """Something deploy/install.sh installs is missing: skipped outside CI, a failure in CI."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """Path of an external program that deploy/install.sh installs."""
    found = shutil.which(name)
    if found:
        return found
    missing_installation(f"{name} not installed (bash deploy/install.sh installs it)")


def require_installed(path: Path, what: str) -> Path:
    """``path`` of something deploy/install.sh installs."""
    if path.exists():
        return path
    missing_installation(f"{what} not installed: {path} missing (bash deploy/install.sh installs it)")


@pytest.fixture(scope="session")
def fuji_cr() -> Path:
    return require_path(FUJI_CR)
