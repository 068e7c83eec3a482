"""Settings: flags > environment > TOML file > defaults; clear errors for bad values."""

import pytest

from dicom_node.config import ConfigError, load_settings
from tests.conftest import REPO_ROOT


def test_precedence_flags_then_environment_then_toml(tmp_path, monkeypatch):
    config = tmp_path / "node.toml"
    config.write_text(
        'ae_title = "FROM_TOML"\nport = 104\nallow = ["PACS@10.0.0.1"]\ndestination = "PACS@pacs.local:104"\n'
    )
    monkeypatch.setenv("DICOM_NODE_PORT", "11113")
    monkeypatch.setenv("DICOM_NODE_ALLOW", "ORTHANC@127.0.0.1, PACS@10.1.0.0/16")
    settings = load_settings(config, ae_title="FROM_FLAG")
    assert settings.ae_title == "FROM_FLAG"
    assert settings.port == 11113
    assert [str(sender) for sender in settings.allow] == ["ORTHANC@127.0.0.1/32", "PACS@10.1.0.0/16"]
    assert str(settings.destination) == "PACS@pacs.local:104"


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
        ({"allow": ["OK@10.0.0.1", "BAD\\AE@10.0.0.1"]}, "1-16"),
        ({"allow": ["MODALITY"]}, "AET@ADDRESS"),
        ({"allow": ["MODALITY@pacs.example.org"]}, "IP addresses or networks"),
        ({"tls_certificate": "/nonexistent/node.pem", "tls_private_key": "/nonexistent/node.key"}, "not found"),
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


ROUTED = """
destination = "PACS@10.0.0.5:104"

[[allow]]
ae_title = "WARD_CR"
addresses = ["10.1.2.0/24", "10.1.3.7"]
destination = { ae_title = "ARCHIVE", host = "10.0.0.6", port = 11112 }

[[allow]]
ae_title = "WARD_CR"
addresses = ["10.9.0.0/16"]
"""


def test_senders_are_known_by_ae_title_and_address(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text(ROUTED)
    settings = load_settings(config)
    near = settings.known_sender("WARD_CR", "10.1.2.44", frozenset())
    assert str(settings.destination_of(near)) == "ARCHIVE@10.0.0.6:11112"
    assert settings.known_sender("WARD_CR", "::ffff:10.1.3.7", frozenset()) is near  # IPv4-mapped IPv6
    far = settings.known_sender("WARD_CR", "10.9.4.4", frozenset())
    assert str(settings.destination_of(far)) == "PACS@10.0.0.5:104"  # the default
    assert settings.known_sender("WARD_CR", "10.1.4.1", frozenset()) is None  # the right title, wrong address
    assert settings.known_sender("OTHER", "10.1.2.44", frozenset()) is None  # the right address, wrong title


def test_without_an_allow_list_anyone_is_admitted_and_routed_to_the_default():
    settings = load_settings(destination="PACS@10.0.0.5:104")
    sender = settings.known_sender("ANYBODY", "192.0.2.1", frozenset())
    assert sender is not None and str(settings.destination_of(sender)) == "PACS@10.0.0.5:104"


def test_routing_by_calling_ae_title_alone_is_refused(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text('[destinations]\nORTHANC = "ORTHANC@127.0.0.1:4242"\n')
    with pytest.raises(ConfigError, match="allow"):
        load_settings(config)


def test_a_certificate_subject_needs_client_certificate_verification(tmp_path):
    certificate, key = tmp_path / "node.pem", tmp_path / "node.key"
    certificate.write_text("x")
    key.write_text("x")
    entry = {"ae_title": "WARD_CR", "addresses": ["10.1.2.3"], "certificate_subject": "CN=ward-cr"}
    with pytest.raises(ConfigError, match="tls_ca"):
        load_settings(allow=[entry], tls_certificate=certificate, tls_private_key=key)
    settings = load_settings(allow=[entry], tls_certificate=certificate, tls_private_key=key, tls_ca=certificate)
    subject = frozenset({("commonName", "ward-cr"), ("organizationName", "Hospital")})
    assert settings.known_sender("WARD_CR", "10.1.2.3", subject) is not None
    assert settings.known_sender("WARD_CR", "10.1.2.3", frozenset({("commonName", "intruder")})) is None


def test_the_journal_s_destination_resolves_to_the_configured_one_with_its_tls_settings(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    settings = load_settings(destination={"ae_title": "PACS", "host": "pacs", "port": 2762, "tls": True, "tls_ca": ca})
    assert settings.configured_destination("PACS@pacs:2762").tls_ca == ca
    assert settings.configured_destination("OLD@pacs:104") is None  # no longer configured: not sent


def test_the_hardened_example_configuration_is_valid(tmp_path):
    """deploy/dicom-node-hardened.toml with its certificate paths pointed at files that exist."""
    example = (REPO_ROOT / "deploy" / "dicom-node-hardened.toml").read_text()
    for name in ("node.pem", "node.key", "hospital-ca.pem"):
        (tmp_path / name).write_text("PEM")
    config = tmp_path / "hardened.toml"
    config.write_text(example.replace("/etc/dicom-node/tls/", f"{tmp_path}/"))
    settings = load_settings(config)
    assert settings.tls and settings.tls_ca is not None and settings.destination.tls
    assert all(sender.certificate_subject for sender in settings.allow)
