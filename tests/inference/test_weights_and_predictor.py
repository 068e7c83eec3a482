"""Weights format round trip and checks; the Predictor's contract."""

import numpy as np
import pydicom
import pytest
import torch
from typer.testing import CliRunner

from dicom_node.cli import app
from inference import BrixiaResult, Predictor, UntrainedModelError, WeightsError
from inference.model_spec import BSNET_SPEC, ModelSpec, build_untrained
from inference.predictor import prepare_input
from inference.preprocessing import prepare_dataset
from inference.regions import REGION_NAMES
from inference.weights import load_weights, metadata_for, save_weights, tensors_sha256


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    model = build_untrained(BSNET_SPEC)
    with torch.no_grad():  # make it differ from the untrained initialisation
        model.heads.heads[0].score_regressor.bias.add_(0.5)
    path = tmp_path_factory.mktemp("weights") / "bsnet.pt"
    checksum = save_weights(path, model.state_dict(), metadata_for(BSNET_SPEC, "unit test", {"mae": 1.0}))
    return path, checksum, model


def test_round_trip_keeps_tensors_metadata_and_checksum(weights_file):
    path, checksum, model = weights_file
    loaded = load_weights(path, BSNET_SPEC)
    assert loaded.sha256 == checksum == tensors_sha256(model.state_dict())
    assert loaded.metadata.model_name == "BS-Net" and loaded.metadata.metrics == {"mae": 1.0}
    assert loaded.metadata.input_spec["height"] == 512
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict[name], tensor, rtol=0, atol=0)
    predictor = Predictor(weights=path, device="cpu")
    assert predictor.identity.weights_sha256 == checksum and not predictor.identity.untrained


def test_tampered_tensors_fail_the_checksum(weights_file, tmp_path):
    path, _, _ = weights_file
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["heads.heads.0.score_regressor.bias"][0] += 1.0
    tampered = tmp_path / "tampered.pt"
    torch.save(payload, tampered)
    with pytest.raises(WeightsError, match="checksum"):
        load_weights(tampered, BSNET_SPEC)


def test_corrupt_missing_and_foreign_files_are_clear_errors(weights_file, tmp_path):
    path, _, _ = weights_file
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="not a readable weights file"):
        Predictor(weights=truncated)
    with pytest.raises(WeightsError, match="not found"):
        Predictor(weights=tmp_path / "absent.pt")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(WeightsError, match="format"):
        Predictor(weights=plain)
    other = ModelSpec("Other-Net", "0.1", BSNET_SPEC.input_spec, BSNET_SPEC.build)
    with pytest.raises(WeightsError, match="Other-Net"):
        load_weights(path, other)


def test_weights_of_the_network_before_version_2_are_refused(tmp_path):
    """Version 1 weights (our own network before the layer-exact port) name their version: refused."""
    metadata = metadata_for(BSNET_SPEC)
    metadata.model_version = "1.0.0"
    path = tmp_path / "v1.pt"
    save_weights(path, build_untrained(BSNET_SPEC).state_dict(), metadata)
    with pytest.raises(WeightsError, match=r"BS-Net 1\.0\.0 weights.*runs BS-Net 2\.0\.0.*import-weights"):
        Predictor(weights=path)


def test_weights_of_another_shape_do_not_load(tmp_path):
    model = build_untrained(BSNET_SPEC)
    state = model.state_dict()
    state.pop("heads.heads.5.score_regressor.bias")
    path = tmp_path / "partial.pt"
    save_weights(path, state, metadata_for(BSNET_SPEC))
    with pytest.raises(WeightsError, match="does not fit"):
        Predictor(weights=path)


def test_no_weights_is_refused_unless_untrained_is_explicit():
    with pytest.raises(UntrainedModelError):
        Predictor()
    predictor = Predictor(allow_untrained=True, device="cpu")
    assert predictor.identity.untrained
    assert predictor.identity.weights_sha256 == Predictor(allow_untrained=True).identity.weights_sha256


def test_predict_returns_a_typed_result_mappable_to_source(fuji_cr):
    predictor = Predictor(allow_untrained=True, device="cpu")
    ds = pydicom.dcmread(fuji_cr)
    result = predictor.predict(ds)
    assert isinstance(result, BrixiaResult)
    assert tuple(result.region_scores) == REGION_NAMES
    assert all(score in (0, 1, 2, 3) for score in result.region_scores.values())
    assert result.global_score == sum(result.region_scores.values())
    for name, probabilities in result.probabilities.items():
        assert len(probabilities) == 4 and sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert result.region_scores[name] == int(np.argmax(probabilities))
    assert result.lung_mask.shape == (512, 512) and result.lung_mask.dtype == bool
    assert result.region_map.shape == (512, 512) and result.region_map.max() <= 6
    assert not result.region_map[~result.lung_mask].any()
    assert result.explainability.shape == (6, 512, 512)
    assert result.explainability.min() >= 0.0 and result.explainability.max() <= 1.0
    assert result.to_source(result.region_map, labels=True).shape == (ds.Rows, ds.Columns)
    assert result.model.untrained and "UNTRAINED MODEL" in result.model.label
    assert result.model.weights_source == "untrained" and "untrained" in result.model.label
    assert result.model.version == BSNET_SPEC.version


def test_region_map_follows_the_brixia_layout():
    """Identity alignment: image-left lung pixels are A-C (patient right), rows split in thirds."""
    from inference.explainability import region_label_map

    size = 64
    identity = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])
    labels = region_label_map(identity, torch.ones(1, size, size, dtype=torch.bool))[0]
    assert labels[2, 2] == 1 and labels[32, 2] == 2 and labels[61, 2] == 3
    assert labels[2, 61] == 4 and labels[32, 61] == 5 and labels[61, 61] == 6


def test_the_maps_a_result_draws_are_those_of_its_batch(fuji_cr):
    """A result keeps what its maps are made of (lung mask, alignment, contributions) and draws
    them on the CPU when asked: the same maps as computed for the whole batch from the output."""
    from inference.explainability import explainability_maps, lung_mask, region_label_map, severity_contributions

    predictor = Predictor(allow_untrained=True, device="cpu", batch_size=2)
    flipped = np.fliplr(np.linspace(0, 1, 300 * 300).reshape(300, 300)).copy()
    prepared = [prepare_dataset(pydicom.dcmread(fuji_cr)), prepare_input(flipped, predictor.input_size)]
    results = predictor.predict_batch(prepared)
    images = torch.from_numpy(np.stack([p.model_input for p in prepared]))[:, None]
    with torch.inference_mode():
        output = predictor.network(images.to(memory_format=predictor.options.memory_format))
    labels = region_label_map(output.theta, lung_mask(output))
    maps = explainability_maps(severity_contributions(output), output.theta, predictor.input_size)
    for index, result in enumerate(results):
        np.testing.assert_array_equal(result.region_map, labels[index].numpy())
        np.testing.assert_array_equal(result.explainability, maps[index].numpy())


def test_predict_batch_matches_single_predictions(fuji_cr):
    predictor = Predictor(allow_untrained=True, device="cpu", batch_size=2)
    ds = pydicom.dcmread(fuji_cr)
    flipped = np.fliplr(np.linspace(0, 1, 300 * 300).reshape(300, 300)).copy()
    results = predictor.predict_batch([ds, flipped, ds])
    assert len(results) == 3
    single = predictor.predict(flipped)
    np.testing.assert_allclose(results[1].probabilities["A"], single.probabilities["A"], atol=1e-4)
    assert results[0].region_scores == results[2].region_scores


def test_model_info_command_prints_parameters_and_flops():
    result = CliRunner().invoke(app, ["model-info"])
    assert result.exit_code == 0, result.output
    assert "BS-Net" in result.output and BSNET_SPEC.version in result.output
    assert "20,947,836" in result.output  # the authors' count, BatchNorm statistics included
    assert "GFLOPs" in result.output


def test_predictor_reads_images_at_the_size_the_weights_were_trained_at(tmp_path, fuji_cr):
    path = tmp_path / "small.pt"
    save_weights(path, build_untrained(BSNET_SPEC).state_dict(), metadata_for(BSNET_SPEC.at_size(256)))
    predictor = Predictor(weights=path, device="cpu")
    assert predictor.input_size == 256 and predictor.metadata.input_spec["height"] == 256
    result = predictor.predict(pydicom.dcmread(fuji_cr))
    assert result.lung_mask.shape == (256, 256) and result.explainability.shape == (6, 256, 256)
    assert result.mapping.model_size == 256
    assert result.to_source(result.region_map, labels=True).shape == (440, 440)
    # the node prepares at 512 before it knows the weights: the predictor adapts the input
    adapted = predictor.predict(prepare_dataset(pydicom.dcmread(fuji_cr)))
    assert adapted.lung_mask.shape == (256, 256) and adapted.mapping == result.mapping


def test_a_compiled_network_gets_its_batch_padded_with_zero_images(fuji_cr):
    """A compiled network sees one shape: the batch's images, then zero images up to the batch size."""
    prepared = prepare_input(pydicom.dcmread(fuji_cr), 512)
    predictor = Predictor(allow_untrained=True, device="cpu", batch_size=4, compiled=True)
    inputs = predictor._inputs([prepared, prepared]).numpy()
    assert inputs.shape == (4, 1, 512, 512) and inputs.dtype == np.float32
    np.testing.assert_array_equal(inputs[0, 0], prepared.model_input)
    np.testing.assert_array_equal(inputs[1, 0], prepared.model_input)
    assert not inputs[2:].any()
