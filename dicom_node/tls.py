"""DICOM TLS (PS3.15 B.9, the BCP 195 profiles): TLS 1.2 or later with the ssl module's
secure cipher defaults, for the SCP (server certificate, optionally client certificates
verified against a CA) and for delivery (the destination's certificate and host verified)."""

import ssl

from dicom_node.peers import Destination

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2  # BCP 195 (RFC 9325): no TLS 1.0/1.1


def server_context(certificate: str, private_key: str, client_ca: str | None) -> ssl.SSLContext:
    """The SCP's context; with ``client_ca`` a sender without a certificate it signed is refused
    during the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.load_cert_chain(certificate, private_key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca)
    return context


def client_context(destination: Destination) -> ssl.SSLContext:
    """The context for delivering to ``destination``: its certificate must chain to its
    ``tls_ca`` (else the system's CAs) and name its host; ours is presented if configured."""
    context = ssl.create_default_context(cafile=str(destination.tls_ca) if destination.tls_ca else None)
    context.minimum_version = MINIMUM_VERSION
    if destination.tls_certificate is not None and destination.tls_private_key is not None:
        context.load_cert_chain(str(destination.tls_certificate), str(destination.tls_private_key))
    return context
