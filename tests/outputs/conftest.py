"""The outputs of every real chest radiograph, built once per test session, and the dciodvfy
check the output tests share."""

import dataclasses
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from dicom_node.outputs import OUTPUT_KINDS, build_outputs
from dicom_node.outputs.common import IDENTITY_KEYWORDS, valid_for_vr
from inference import BrixiaResult, Predictor
from tests.conftest import CHEST_RADIOGRAPHS, DICOM_DATA, require_path, require_tool

NAMES = sorted(CHEST_RADIOGRAPHS)
# Identity values broken in a source (a 56-character Accession Number) are copied verbatim on
# purpose; pydicom warns when such outputs are built or written.
LONG_VALUE_WARNING = "The value length .* exceeds"


@dataclasses.dataclass
class Built:
    """One radiograph, its result, its outputs by kind and their Part-10 files."""

    source: Dataset
    result: BrixiaResult
    outputs: dict[str, Dataset]
    files: dict[str, Path]


@pytest.fixture(scope="session")
def predictor() -> Predictor:
    return Predictor(allow_untrained=True, device="cpu")


@pytest.fixture(scope="session")
def built(predictor: Predictor, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Built]:
    """name -> :class:`Built` (scored and built once per session)."""
    cache: dict[str, Built] = {}
    folder = tmp_path_factory.mktemp("outputs")

    def get(name: str) -> Built:
        if name not in cache:
            source = pydicom.dcmread(require_path(DICOM_DATA / name))
            result = predictor.predict(source)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", LONG_VALUE_WARNING, UserWarning)
                outputs = dict(zip(OUTPUT_KINDS, build_outputs(source, result), strict=True))
                files = {kind: folder / f"{name}.{kind}.dcm" for kind in OUTPUT_KINDS}
                for kind, dataset in outputs.items():
                    pydicom.dcmwrite(files[kind], dataset, enforce_file_format=True)
            cache[name] = Built(source, result, outputs, files)
        return cache[name]

    return get


def _tolerated_tags(source: Dataset) -> set[str]:
    """dciodvfy tags of identity attributes that the source itself breaks (copied verbatim)."""
    tags = set()
    for keyword in IDENTITY_KEYWORDS:
        if keyword in source and source[keyword].VM and not valid_for_vr(source[keyword]):
            tag = source[keyword].tag
            tags.add(f"(0x{tag.group:04x},0x{tag.element:04x})")
    return tags


def dciodvfy_errors(path: Path, source: Dataset) -> list[str]:
    """dciodvfy's Error lines, less those about identity values broken in the source (the
    warnings are printed, so ``pytest -s`` or a failure lists them)."""
    run = subprocess.run(
        [require_tool("dciodvfy"), str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = (run.stdout + run.stderr).splitlines()
    print("\n".join(line for line in lines if line.startswith("Warning")))
    tolerated = _tolerated_tags(source)
    errors = [line for line in lines if line.startswith("Error")]
    inherited = [line for line in errors if any(tag in line for tag in tolerated)]
    if inherited:
        print("inherited from the source:", *inherited, sep="\n")
        errors = [line for line in errors if line not in inherited]
        errors.remove(
            "Error - Dicom dataset contains invalid data values for Value Representations"
        )
    return errors
