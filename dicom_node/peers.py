"""The DICOM peers in the configuration: destinations we send results to and the known senders
allowed to send to us (issue 12, "Known senders").

A sender is known by its calling AE title *and* the addresses it may come from, and with TLS
optionally by its certificate's subject: the AE title alone is a claim anyone can make
(PS3.8 7.1.1.3 leaves its verification to the acceptor). Results are routed by the entry that
admitted the association, never by the AE title alone.
"""

from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, field_validator, model_validator

ANY_ADDRESS = (ip_network("0.0.0.0/0"), ip_network("::/0"))
# RFC 4514 attribute types as written in a subject, and the names Python's ssl module gives them.
SUBJECT_NAMES = {
    "CN": "commonName", "O": "organizationName", "OU": "organizationalUnitName", "C": "countryName",
    "L": "localityName", "ST": "stateOrProvinceName", "DC": "domainComponent",
}


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def validate_ae_title(value: str) -> str:
    """PS3.5 AE VR: 1-16 characters, no backslash or control characters, not only spaces."""
    if not value.strip() or len(value) > 16 or "\\" in value or any(ord(c) < 32 for c in value):
        raise ConfigError(f"AE title {value!r} must be 1-16 printable characters without '\\'")
    return value


def existing_file(value: Path) -> Path:
    """A configured file (a certificate, key or CA bundle) that must exist."""
    if not Path(value).is_file():
        raise ConfigError(f"TLS file not found: {value}")
    return value


AETitle = Annotated[str, AfterValidator(validate_ae_title)]
ExistingFile = Annotated[Path, AfterValidator(existing_file)]


class Destination(BaseModel):
    """A DICOM peer written ``AET@HOST:PORT`` (PS3.8 AE title: at most 16 characters); in TOML
    also a table whose ``tls*`` keys select DICOM TLS (PS3.15 B.9) for delivery to it:
    ``tls_ca`` verifies its certificate (default: the system's CAs; its host name or IP address
    must be in the certificate), ``tls_certificate``/``tls_private_key`` are ours if it asks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ae_title: AETitle
    host: str
    port: int
    tls: bool = False
    tls_ca: ExistingFile | None = None
    tls_certificate: ExistingFile | None = None
    tls_private_key: ExistingFile | None = None

    @classmethod
    def parse(cls, text: str) -> "Destination":
        try:
            ae_title, address = text.split("@", 1)
            host, port = address.rsplit(":", 1)
            destination = cls(ae_title=ae_title.strip(), host=host.strip("[] "), port=int(port))
        except ValueError as error:
            raise ConfigError(f"destination {text!r} is not AET@HOST:PORT") from error
        return destination

    @model_validator(mode="after")
    def _tls_pieces(self) -> "Destination":
        if (self.tls_certificate is None) != (self.tls_private_key is None):
            raise ConfigError(f"destination {self}: give tls_certificate and tls_private_key together")
        if not self.tls and (self.tls_ca or self.tls_certificate):
            raise ConfigError(f"destination {self}: tls_* files given but tls is not true")
        return self

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def parse_destination(value: Any) -> Any:
    """A destination from its text form; tables (dicts) are left to pydantic."""
    return Destination.parse(value) if isinstance(value, str) else value


DestinationSetting = Annotated[Destination, BeforeValidator(parse_destination)]


def parse_subject(text: str) -> frozenset[tuple[str, str]]:
    """``"CN=ward-cr,O=Hospital"`` (RFC 4514, simple values) as (ssl attribute name, value) pairs."""
    pairs = set()
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        key, _, value = part.partition("=")
        name = SUBJECT_NAMES.get(key.strip().upper())
        if name is None or not value.strip():
            raise ConfigError(f"certificate subject {text!r}: use KEY=VALUE pairs with {', '.join(SUBJECT_NAMES)}")
        pairs.add((name, value.strip()))
    if not pairs:
        raise ConfigError("certificate subject is empty")
    return frozenset(pairs)


def certificate_subject(certificate: dict | None) -> frozenset[tuple[str, str]]:
    """The subject of a peer certificate as :meth:`ssl.SSLSocket.getpeercert` returns it."""
    if not certificate:
        return frozenset()
    return frozenset(pair for relative_name in certificate.get("subject", ()) for pair in relative_name)


class Sender(BaseModel):
    """One known sender: ``AET@ADDRESS[/PREFIX]`` as text, or a TOML table with ``ae_title``,
    ``addresses`` (hosts or networks), optionally ``certificate_subject`` (needs ``tls_ca``)
    and ``destination`` (default: the node's ``destination``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ae_title: AETitle
    addresses: list[IPv4Network | IPv6Network]
    certificate_subject: str | None = None
    destination: DestinationSetting | None = None

    @classmethod
    def parse(cls, text: str) -> "Sender":
        ae_title, separator, network = text.partition("@")
        if not separator or not network.strip():
            raise ConfigError(
                f"allow entry {text!r} is not AET@ADDRESS or AET@NETWORK/PREFIX: a sender is known by its "
                "AE title and where it comes from (e.g. MODALITY@10.1.2.3 or PACS@10.1.0.0/16)"
            )
        return cls(ae_title=ae_title.strip(), addresses=[network.strip()])

    @field_validator("addresses", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            if not value:
                raise ConfigError("a known sender needs at least one address or network")
            try:
                return [ip_network(str(item).strip(), strict=False) for item in value]
            except ValueError as error:
                raise ConfigError(f"allow addresses {value}: {error} (IP addresses or networks, not names)") from error
        return value

    @field_validator("certificate_subject")
    @classmethod
    def _subject(cls, value: str | None) -> str | None:
        if value is not None:
            parse_subject(value)
        return value

    def admits(self, calling_ae: str, address: str, subject: frozenset[tuple[str, str]]) -> bool:
        """Whether an association from ``address`` calling itself ``calling_ae`` with a
        certificate of ``subject`` is this sender."""
        if calling_ae.strip() != self.ae_title.strip():
            return False
        try:
            peer = ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if getattr(peer, "ipv4_mapped", None):
            peer = peer.ipv4_mapped
        if not any(peer in network for network in self.addresses):
            return False
        return self.certificate_subject is None or parse_subject(self.certificate_subject) <= subject

    def __str__(self) -> str:
        networks = ",".join(str(network) for network in self.addresses)
        subject = f" [{self.certificate_subject}]" if self.certificate_subject else ""
        return f"{self.ae_title}@{networks}{subject}"


ANYONE = Sender(ae_title="*", addresses=list(ANY_ADDRESS))
"""Who is admitted when there is no allow-list: any AE title from any address, results to the
node's default destination."""
