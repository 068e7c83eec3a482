"""The BrixIA COVID-19 Dataset layout: metadata CSV parsing (digit order, separators, lost leading
zeros), missing and malformed rows, layout detection, and an end-to-end evaluation of a small
synthetic folder of DICOMs with an untrained network."""

import csv
import json
import logging

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from dicom_node.cli import app
from inference.brixia_dataset import (
    LAYOUT_ANNOTATIONS,
    LAYOUT_BRIXIA,
    find_metadata_csv,
    open_annotated_folder,
    parse_brixia_score,
    read_brixia_table,
)
from inference.datasets import DatasetError
from inference.evaluate import evaluate_folder, write_report
from inference.model_spec import BSNET_SPEC, build_untrained
from inference.predictor import Predictor
from inference.regions import REGION_NAMES
from inference.weights import metadata_for, save_weights

SIZE = 128  # the smallest side BS-Net reads (a multiple of 128)
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
# The columns of metadata_global_v2.csv (brixia.github.io field list, plus users' v2 names).
COLUMNS = [
    "Filename", "StudyDate", "Modality", "StudyId", "BrixiaScore", "BrixiaScoreGlobal", "ConsensusTestset",
    "Subject", "Sex", "AgeAtStudyDateFiveYear", "Manufacturer", "PhotometricInterpretation",
]  # fmt: skip
ROWS = [  # filename, BrixiaScore (digits A..F), ConsensusTestset
    ("1000.dcm", "012301", "0"),
    ("1001.dcm", "321000", "1"),
    ("1002.dcm", "001203", "1"),
    ("1003.dcm", "000000", "0"),
]


def synthetic_dicom(path, seed: int, rows: int = 160, cols: int = 144) -> None:
    """A small MONOCHROME2 radiograph-like DICOM: bright body, two darker 'lungs', some noise."""
    generator = np.random.default_rng(seed)
    y, x = np.mgrid[-1 : 1 : rows * 1j, -1 : 1 : cols * 1j]
    lungs = (((x + 0.45) / 0.3) ** 2 + (y / 0.6) ** 2 < 1) | (((x - 0.45) / 0.3) ** 2 + (y / 0.6) ** 2 < 1)
    pixels = 3000 - 1800 * lungs + 400 * seed * (y > 0.2) * lungs + generator.integers(0, 200, (rows, cols))
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = DX_STORAGE, generate_uid()
    ds.Modality = "DX"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_metadata(path, rows, separator: str = ";") -> None:
    """metadata_global_v2.csv with the real columns; ``rows``: (filename, BrixiaScore, consensus)."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream, delimiter=separator)
        writer.writerow(COLUMNS)
        for index, (filename, score, consensus) in enumerate(rows):
            total = sum(int(d) for d in score) if score.isdigit() else ""
            study = ["20200315", "DX", 100 + index]
            patient = [f"S{index // 2}", "M", 13, "GE", "MONOCHROME2"]
            writer.writerow([filename, *study, score, total, consensus, *patient])


def brixia_folder(root, rows=ROWS, separator: str = ";", subfolder: bool = True):
    """A BrixIA-layout folder: metadata_global_v2.csv and the DICOMs in dicom_clean/ (or beside it)."""
    images = root / "dicom_clean" if subfolder else root
    images.mkdir(parents=True, exist_ok=True)
    for seed, (filename, _, _) in enumerate(rows):
        synthetic_dicom(images / filename, seed)
    write_metadata(root / "metadata_global_v2.csv", rows, separator)
    return root


def test_brixia_score_digits_are_regions_a_to_f_in_order():
    scores = parse_brixia_score("012301")
    assert dict(zip(REGION_NAMES, scores, strict=True)) == {"A": 0, "B": 1, "C": 2, "D": 3, "E": 0, "F": 1}
    # a spreadsheet that read the column as a number dropped the leading zeros (and may add ".0")
    assert parse_brixia_score("1203") == (0, 0, 1, 2, 0, 3)
    assert parse_brixia_score(" 1203.0 ") == (0, 0, 1, 2, 0, 3)
    assert parse_brixia_score("0") == (0,) * 6


@pytest.mark.parametrize("separator", [";", ",", "\t"])
def test_the_metadata_csv_is_read_with_any_usual_separator(tmp_path, separator):
    root = brixia_folder(tmp_path, separator=separator)
    table = read_brixia_table(root)
    assert table.csv_path.name == "metadata_global_v2.csv" and table.image_dir == root / "dicom_clean"
    assert [row.filename for row in table.rows] == [name for name, _, _ in ROWS]
    assert table.rows[0].scores == (0, 1, 2, 3, 0, 1) and table.rows[1].scores == (3, 2, 1, 0, 0, 0)
    assert [row.consensus for row in table.rows] == [False, True, True, False]
    assert table.rows[2].line == 4 and not table.missing


def test_numbers_that_lost_their_leading_zeros_are_padded(tmp_path):
    root = brixia_folder(tmp_path, rows=[("a.dcm", "1203", "0"), ("b.dcm", "0", "0")])
    assert [row.scores for row in read_brixia_table(root).rows] == [(0, 0, 1, 2, 0, 3), (0,) * 6]


def test_files_missing_on_disk_are_skipped_with_a_warning_and_counted(tmp_path, caplog):
    root = brixia_folder(tmp_path)
    (root / "dicom_clean" / "1001.dcm").unlink()
    with caplog.at_level(logging.WARNING, logger="inference.brixia_dataset"):
        source = open_annotated_folder(root)
    assert source.missing == ["1001.dcm"] and source.listed == 4 and len(source.records) == 3
    assert "1 file(s) listed in metadata_global_v2.csv" in caplog.text and "1001.dcm" in caplog.text
    assert [r.filename for r in source.records] == ["1000.dcm", "1002.dcm", "1003.dcm"]
    assert all(record.junior is None and record.mask is None for record in source.records)


@pytest.mark.parametrize("score", ["12301a", "0123012", "401200", "", "1.5", "-12301"])
def test_a_malformed_brixia_score_names_the_row(tmp_path, score):
    root = brixia_folder(tmp_path, rows=[*ROWS[:2], ("1002.dcm", score, "0")])
    with pytest.raises(DatasetError, match=r"metadata_global_v2\.csv line 4 \(1002\.dcm\).*BrixiaScore"):
        read_brixia_table(root)


def test_layouts_are_told_apart_by_their_files(tmp_path):
    ours = tmp_path / "ours"
    (ours / "images").mkdir(parents=True)
    Image.new("L", (160, 160), 128).save(ours / "images" / "x.png")
    (ours / "annotations.csv").write_text("filename,S-A,S-B,S-C,S-D,S-E,S-F\nx.png,0,1,2,3,0,1\n")
    source = open_annotated_folder(ours)
    assert source.layout == LAYOUT_ANNOTATIONS and source.paths == [ours / "images" / "x.png"]

    brixia = open_annotated_folder(brixia_folder(tmp_path / "brixia"))
    assert brixia.layout == LAYOUT_BRIXIA and brixia.records[0].senior == (0, 1, 2, 3, 0, 1)

    flat = open_annotated_folder(brixia_folder(tmp_path / "flat", subfolder=False))  # DICOMs beside the CSV
    assert flat.layout == LAYOUT_BRIXIA and flat.paths[0] == tmp_path / "flat" / "1000.dcm"

    renamed = brixia_folder(tmp_path / "renamed")
    (renamed / "metadata_global_v2.csv").rename(renamed / "brixia_metadata.csv")
    assert find_metadata_csv(renamed) == renamed / "brixia_metadata.csv"

    (tmp_path / "neither").mkdir()
    (tmp_path / "neither" / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match=r"annotations\.csv.*metadata_global_v2\.csv"):
        open_annotated_folder(tmp_path / "neither")

    (tmp_path / "brixia" / "annotations.csv").write_text((ours / "annotations.csv").read_text())
    with pytest.raises(DatasetError, match="both"):
        open_annotated_folder(tmp_path / "brixia")


def test_the_consensus_test_set_can_be_selected(tmp_path):
    source = open_annotated_folder(brixia_folder(tmp_path), consensus_only=True)
    assert [r.filename for r in source.records] == ["1001.dcm", "1002.dcm"] and source.excluded == 2


@pytest.fixture(scope="module")
def untrained_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "untrained.pt"
    save_weights(path, build_untrained(BSNET_SPEC).state_dict(), metadata_for(BSNET_SPEC.at_size(SIZE), "none"))
    return path


def test_evaluating_a_brixia_folder_scores_each_dicom_like_the_node(tmp_path, untrained_weights, monkeypatch):
    root = brixia_folder(tmp_path / "data")
    (root / "dicom_clean" / "1003.dcm").unlink()  # listed, missing
    (root / "dicom_clean" / "1002.dcm").write_bytes(b"not a DICOM file")  # listed, unreadable
    seen = []
    original = Predictor.predict_batch

    def spy(self, items):
        seen.append(len(items))
        return original(self, items)

    monkeypatch.setattr(Predictor, "predict_batch", spy)
    evaluation = evaluate_folder(root, untrained_weights, device="cpu", batch_size=1)
    assert max(seen) == 1  # one batch of model inputs at a time, never the whole folder
    assert evaluation.filenames == ["1000.dcm", "1001.dcm"]
    assert evaluation.reference.tolist() == [[0, 1, 2, 3, 0, 1], [3, 2, 1, 0, 0, 0]]
    monkeypatch.undo()
    predictor = Predictor(weights=untrained_weights, device="cpu")
    for name, predicted in zip(evaluation.filenames, evaluation.predicted, strict=True):
        expected = predictor.predict(pydicom.dcmread(root / "dicom_clean" / name)).region_scores
        assert predicted.tolist() == [expected[region] for region in REGION_NAMES]
    report = evaluation.report
    assert report["n_images"] == 2 and "human" not in report["baselines"]
    assert report["data"]["layout"] == LAYOUT_BRIXIA and report["data"]["listed"] == 4
    assert (report["data"]["missing_files"], report["data"]["missing_examples"]) == (1, ["1003.dcm"])
    assert (report["data"]["unreadable_files"], report["data"]["unreadable_examples"]) == (1, ["1002.dcm"])
    text = write_report(evaluation, tmp_path / "report").read_text()
    assert "BrixiaScore" in text and "1 listed files missing and 1 unreadable" in text
    with pytest.raises(ValueError, match="one score per image"):
        evaluate_folder(root, untrained_weights, label="junior", device="cpu")


def test_evaluating_the_consensus_test_set_only(tmp_path, untrained_weights):
    evaluation = evaluate_folder(brixia_folder(tmp_path), untrained_weights, device="cpu", consensus_only=True)
    assert evaluation.filenames == ["1001.dcm", "1002.dcm"]
    assert evaluation.report["data"]["consensus_test_set_only"] and evaluation.report["data"]["excluded"] == 2


def test_the_cli_evaluates_a_brixia_folder(tmp_path, untrained_weights):
    root = brixia_folder(tmp_path / "data")
    result = CliRunner().invoke(app, ["evaluate", "--data", str(root), "--weights", str(untrained_weights)])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["n_images"] == 4 and figures["data"]["layout"] == LAYOUT_BRIXIA
    (root / "metadata_global_v2.csv").unlink()
    refused = CliRunner().invoke(app, ["evaluate", "--data", str(root), "--weights", str(untrained_weights)])
    assert refused.exit_code == 2 and "neither known layout" in " ".join(refused.output.split())
