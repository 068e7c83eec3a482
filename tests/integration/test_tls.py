"""DICOM TLS end to end (issue 12): dcmtk's storescu sends over TLS with a certificate from the
test CA that deploy/tls/make-test-ca.sh makes (the one docs/security.md walks through); the node
verifies it, scores the image and delivers the SR over TLS to dcmtk's storescp, which verifies
the node's client certificate in turn. Senders without an accepted certificate, with the wrong
certificate subject, or speaking plain TCP are refused."""

import subprocess

import pydicom

from tests.conftest import REPO_ROOT, require_tool
from tests.servers import (
    LOOPBACK,
    listening,
    node_process,
    node_status,
    orthanc_server,
    storescp_server,
    wait_until,
)

NODE_AET = "TEST_NODE"
MAKE_TEST_CA = REPO_ROOT / "deploy" / "tls" / "make-test-ca.sh"


def _node_config(pki, destination_port: int) -> str:
    return f"""
tls_certificate = "{pki}/node.pem"
tls_private_key = "{pki}/node.key"
tls_ca = "{pki}/ca.pem"

[destination]
ae_title = "RESULTS"
host = "{LOOPBACK}"
port = {destination_port}
tls = true
tls_ca = "{pki}/ca.pem"
tls_certificate = "{pki}/node.pem"
tls_private_key = "{pki}/node.key"

[[allow]]
ae_title = "MODALITY"
addresses = ["{LOOPBACK}"]
certificate_subject = "CN=modality"
"""


def test_tls_sender_to_tls_destination_and_refusals(tmp_path, fuji_cr, broker_url, node_port):
    require_tool("openssl")
    storescu = require_tool("storescu")
    pki, other_pki = tmp_path / "pki", tmp_path / "other-pki"
    subprocess.run(["sh", str(MAKE_TEST_CA), str(pki), "node", "modality", "intruder", "results"], check=True)
    subprocess.run(["sh", str(MAKE_TEST_CA), str(other_pki), "modality"], check=True)  # another CA

    def send(*tls_options: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [storescu, *tls_options, "-aet", "MODALITY", "-aec", NODE_AET, LOOPBACK, str(node_port), str(fuji_cr)],
            capture_output=True, text=True, timeout=120,
        )

    def tls_as(folder, name: str) -> tuple[str, ...]:
        return ("+tls", str(folder / f"{name}.key"), str(folder / f"{name}.pem"), "+cf", str(pki / "ca.pem"))

    received, spool = tmp_path / "received", tmp_path / "spool"
    destination_tls = ("+tls", str(pki / "results.key"), str(pki / "results.pem"), "+cf", str(pki / "ca.pem"))
    with storescp_server(received, "RESULTS", options=destination_tls) as destination_port:
        config = tmp_path / "node.toml"
        config.write_text(_node_config(pki, destination_port))
        arguments = [
            "--config", str(config), "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port),
            "--spool", str(spool), "--broker-url", broker_url, "--untrained", "--outputs", "sr",
        ]
        with node_process(tmp_path / "node", arguments):
            wait_until(lambda: listening(node_port), 60, "the node to listen")
            refused = {
                "plain TCP": send(),
                "certificate from another CA": send(*tls_as(other_pki, "modality")),
                "certificate subject not listed": send(*tls_as(pki, "intruder")),
            }
            sent = send(*tls_as(pki, "modality"))
            assert sent.returncode == 0, sent.stderr
            rows = wait_until(
                lambda: [row for row in node_status(spool) if row["state"] in ("delivered", "failed")], 300,
                "the image to be delivered", interval=1.0,
            )
    for what, result in refused.items():
        assert result.returncode != 0, f"{what} was accepted: {result.stdout}{result.stderr}"
    assert len(rows) == 1 and rows[0]["state"] == "delivered", rows
    assert len(node_status(spool)) == 1  # nothing from the refused senders reached the journal
    delivered = [pydicom.dcmread(path) for path in received.rglob("*") if path.is_file()]
    assert [dataset.Modality for dataset in delivered] == ["SR"]
    log = (tmp_path / "node" / "serve.log").read_text()
    assert "TLS handshake with 127.0.0.1 failed" in log
    assert "no allow entry admits it" in log


def test_orthanc_sends_and_receives_over_tls(tmp_path, fuji_cr, broker_url, node_port):
    """The set-up docs/operations.md describes: Orthanc pushes to the node and receives its
    results, both ways over DICOM TLS with certificates from the test CA."""
    require_tool("openssl")
    pki = tmp_path / "pki"
    subprocess.run(["sh", str(MAKE_TEST_CA), str(pki), "node", "orthanc"], check=True)
    tls = {
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": str(pki / "orthanc.pem"),
        "DicomTlsPrivateKey": str(pki / "orthanc.key"),
        "DicomTlsTrustedCertificates": str(pki / "ca.pem"),
    }
    node = {"AET": NODE_AET, "Host": LOOPBACK, "Port": node_port, "UseDicomTls": True}
    with orthanc_server(tmp_path / "orthanc", {"node": node}, options=tls) as orthanc:
        config = tmp_path / "node.toml"
        config.write_text(f"""
tls_certificate = "{pki}/node.pem"
tls_private_key = "{pki}/node.key"
tls_ca = "{pki}/ca.pem"

[[allow]]
ae_title = "{orthanc.ae_title}"
addresses = ["{LOOPBACK}"]
certificate_subject = "CN=orthanc"

[allow.destination]
ae_title = "{orthanc.ae_title}"
host = "{LOOPBACK}"
port = {orthanc.dicom_port}
tls = true
tls_ca = "{pki}/ca.pem"
tls_certificate = "{pki}/node.pem"
tls_private_key = "{pki}/node.key"
""")
        arguments = [
            "--config", str(config), "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(node_port),
            "--spool", str(tmp_path / "spool"), "--broker-url", broker_url, "--untrained", "--outputs", "sr",
        ]
        with node_process(tmp_path / "node", arguments):
            wait_until(lambda: listening(node_port), 60, "the node to listen")
            uploaded = orthanc.request("POST", "/instances", fuji_cr.read_bytes())
            orthanc.request("POST", "/modalities/node/store", {"Resources": [uploaded["ID"]], "Synchronous": True})
            study = uploaded["ParentStudy"]
            series = wait_until(
                lambda: [s for s in orthanc.get(f"/studies/{study}/series") if s["MainDicomTags"]["Modality"] == "SR"],
                300, "the SR in Orthanc", interval=1.0,
            )
    assert len(series) == 1
