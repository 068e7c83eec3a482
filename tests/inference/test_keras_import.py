"""Importing the authors' Keras weight file: both root layouts, nested variables in any order,
and clear refusals (nothing written) for truncated, foreign and shape-altered files."""

import shutil
from pathlib import Path

import h5py
import numpy as np
import pydicom
import pytest
import torch
from typer.testing import CliRunner

from dicom_node.cli import app
from inference import Predictor
from inference.bsnet.model import BSNet
from inference.errors import WeightsError
from inference.keras_import import file_sha256, import_keras_weights, keras_state_dict, read_keras_layers
from inference.model_spec import BSNET_SPEC
from inference.weights import AUTHORS_RELEASE, load_weights
from tests.conftest import REPO_ROOT, require_path

AUTHORS_H5 = REPO_ROOT.parent / "shared" / "reference" / "bsnet-keras" / "bscore-model.h5"


@pytest.fixture(scope="module")
def authors_h5() -> Path:
    return require_path(AUTHORS_H5)


@pytest.fixture(scope="module")
def imported(authors_h5, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imported") / "bsnet-authors.pt"
    import_keras_weights(authors_h5, out)
    return out


def test_import_writes_verified_weights_naming_their_source(authors_h5, imported):
    loaded = load_weights(imported, BSNET_SPEC)
    assert loaded.metadata.source == AUTHORS_RELEASE
    assert file_sha256(authors_h5) in loaded.metadata.source_file
    assert loaded.metadata.model_version == "2.0.0" and loaded.metadata.input_spec["height"] == 512
    model = BSNet()
    model.load_state_dict(loaded.state_dict, strict=True)
    with h5py.File(authors_h5) as handle:  # spot-check a kernel layout: Keras (kh, kw, in, out)
        kernel = np.asarray(handle["conv0"]["conv0/kernel:0"])
    np.testing.assert_array_equal(loaded.state_dict["backbone.conv0.weight"].numpy(), kernel.transpose(3, 2, 0, 1))


def test_results_from_imported_weights_name_the_authors_release(imported, fuji_cr):
    result = Predictor(weights=imported, device="cpu").predict(pydicom.dcmread(fuji_cr))
    assert result.model.weights_source == AUTHORS_RELEASE and not result.model.untrained
    assert result.model.version == "2.0.0" and AUTHORS_RELEASE in result.model.label


def _copy_under_model_weights(source: Path, target: Path) -> None:
    """The layout ``model.save`` writes: the same tree under the root group ``model_weights``."""
    with h5py.File(source) as src, h5py.File(target, "w") as dst:
        group = dst.create_group("model_weights")
        for key, value in src.attrs.items():
            group.attrs[key] = value
        for name in src:
            src.copy(src[name], group, name=name)


def test_full_model_layout_imports_to_the_same_tensors(authors_h5, tmp_path):
    full = tmp_path / "full-model.h5"
    _copy_under_model_weights(authors_h5, full)
    model = BSNet()
    direct = keras_state_dict(read_keras_layers(authors_h5), model)
    nested = keras_state_dict(read_keras_layers(full), model)
    assert direct.keys() == nested.keys()
    assert all(torch.equal(direct[name], nested[name]) for name in direct)


def test_nested_variables_are_mapped_by_sub_path_not_position(authors_h5, tmp_path):
    """A head saved while frozen lists each block's variables contiguously: same tensors."""
    shuffled = tmp_path / "frozen-heads.h5"
    shutil.copy(authors_h5, shuffled)
    with h5py.File(shuffled, "r+") as handle:
        head = next(n for n in map(str, handle.attrs["layer_names"]) if n.startswith("retina_net_classifier"))
        group = handle[head]
        names = list(group.attrs["weight_names"])
        group.attrs["weight_names"] = names[::-1]
    model = BSNet()
    original = keras_state_dict(read_keras_layers(authors_h5), model)
    reordered = keras_state_dict(read_keras_layers(shuffled), model)
    assert all(torch.equal(original[name], reordered[name]) for name in original)


def _refused(source: Path, out: Path, expected: str) -> None:
    with pytest.raises(WeightsError, match=expected):
        import_keras_weights(source, out)
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))


def test_truncated_file_is_refused_and_nothing_written(authors_h5, tmp_path):
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(authors_h5.read_bytes()[: 30 * 1024 * 1024])
    _refused(truncated, tmp_path / "out" / "w.pt", "truncated|cannot be read")


def test_h5_of_another_network_is_refused_naming_the_first_missing_layer(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle.attrs["layer_names"] = [b"dense_1"]
        group = handle.create_group("dense_1")
        group.attrs["weight_names"] = [b"dense_1/kernel:0"]
        group.create_dataset("dense_1/kernel:0", data=np.zeros((4, 2), dtype=np.float32))
    _refused(other, tmp_path / "w.pt", "layer 'bn_data' not found")


def test_shape_altered_copy_is_refused_naming_the_layer(authors_h5, tmp_path):
    altered = tmp_path / "altered.h5"
    shutil.copy(authors_h5, altered)
    with h5py.File(altered, "r+") as handle:
        del handle["stage3_unit1_conv2"]["stage3_unit1_conv2/kernel:0"]
        handle["stage3_unit1_conv2"].create_dataset(
            "stage3_unit1_conv2/kernel:0", data=np.zeros((3, 3, 256, 128), dtype=np.float32)
        )
    _refused(altered, tmp_path / "w.pt", r"layer 'stage3_unit1_conv2' weight 'kernel' has shape \(3, 3, 256, 128\)")


def test_not_an_h5_file_is_refused(tmp_path):
    junk = tmp_path / "weights.h5"
    junk.write_bytes(b"not hdf5 at all" * 100)
    _refused(junk, tmp_path / "w.pt", "not a readable HDF5 file")


def test_import_weights_command(authors_h5, tmp_path):
    out = tmp_path / "w.pt"
    result = CliRunner().invoke(app, ["import-weights", str(authors_h5), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_weights(out, BSNET_SPEC).metadata.source == AUTHORS_RELEASE
    refused = CliRunner().invoke(app, ["import-weights", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x.pt")])
    assert refused.exit_code == 2 and "cannot import" in refused.output
    assert not (tmp_path / "x.pt").exists()
