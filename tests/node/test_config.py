"""Settings: flags > environment > TOML file > defaults; clear errors for bad values."""

import pytest

from dicom_node.config import ConfigError, Destination, load_settings


def test_precedence_flags_then_environment_then_toml(tmp_path, monkeypatch):
    config = tmp_path / "node.toml"
    config.write_text(
        'ae_title = "FROM_TOML"\nport = 104\nallow = ["PACS"]\ndestination = "PACS@pacs.local:104"\n'
        '[destinations]\nORTHANC = "ORTHANC@127.0.0.1:4242"\n'
    )
    monkeypatch.setenv("DICOM_NODE_PORT", "11113")
    monkeypatch.setenv("DICOM_NODE_ALLOW", "ORTHANC, PACS")
    settings = load_settings(config, ae_title="FROM_FLAG")
    assert settings.ae_title == "FROM_FLAG"
    assert settings.port == 11113
    assert settings.allow == ["ORTHANC", "PACS"]
    assert settings.destination_for("ORTHANC") == Destination(ae_title="ORTHANC", host="127.0.0.1", port=4242)
    assert str(settings.destination_for("MODALITY")) == "PACS@pacs.local:104"


def test_config_file_from_environment(tmp_path, monkeypatch):
    config = tmp_path / "node.toml"
    config.write_text('spool = "/var/spool/dicom-node"\nuntrained = true\n')
    monkeypatch.setenv("DICOM_NODE_CONFIG", str(config))
    settings = load_settings()
    assert str(settings.spool) == "/var/spool/dicom-node" and settings.untrained


def test_outputs_are_configurable(monkeypatch):
    assert load_settings().outputs == ["sr", "overlay", "explainability", "seg"]
    monkeypatch.setenv("DICOM_NODE_OUTPUTS", "sr, overlay")
    assert load_settings().outputs == ["sr", "overlay"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"outputs": ["sr", "pdf"]}, "pdf"),
        ({"destination": "PACS:104"}, "AET@HOST:PORT"),
        ({"ae_title": "A" * 17}, "1-16"),
        ({"allow": ["OK", "BAD\\AE"]}, "1-16"),
        ({"port": "eleven"}, "port"),
    ],
)
def test_bad_values_are_clear_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(**overrides)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")


def test_unknown_keys_in_the_file_are_refused(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text("prot = 104\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(config)
