"""Node settings from flags, ``DICOM_NODE_*`` environment variables and a TOML file
(pydantic-settings; precedence: flags > environment > TOML file > defaults)."""

import os
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import NonNegativeInt, PositiveFloat, PositiveInt, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from dicom_node.broker import spool_broker_url
from dicom_node.peers import (
    ANYONE,
    AETitle,
    ConfigError,
    Destination,
    DestinationSetting,
    ExistingFile,
    Sender,
)
from dicom_node.retry_schedule import DEFAULT_GIVE_UP_AFTER_S, DEFAULT_MAX_BACKOFF_S

CONFIG_ENV = "DICOM_NODE_CONFIG"
DEFAULT_MAX_PIXELS = 50_000_000  # e.g. 7000 x 7000; chest radiographs are 2-12 million pixels
DEFAULT_MAX_IN_FLIGHT = 128  # four batches of a GPU worker's default 32
OutputKind = Literal["sr", "overlay", "explainability", "seg"]  # built by dicom_node.outputs
OUTPUT_KINDS: tuple[OutputKind, ...] = get_args(OutputKind)
Precision = Literal["fp32", "bf16"]  # inference.device.RunOptions (not imported here: it needs torch)
__all__ = ["ConfigError", "Destination", "NodeSettings", "Sender", "load_settings"]


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class NodeSettings(BaseSettings):
    """Everything ``dicom-node serve`` and ``dicom-node worker`` need."""

    model_config = SettingsConfigDict(env_prefix="DICOM_NODE_", extra="forbid")

    ae_title: AETitle = "DICOM_NODE"
    host: str = "0.0.0.0"
    port: int = 11112
    spool: Path = Path("spool")
    allow: Annotated[list[Sender], NoDecode] = []  # known senders; empty: anyone (warned at start)
    destination: DestinationSetting | None = None
    # DICOM TLS for the SCP (PS3.15 B.9); with tls_ca every sender must present a certificate it signed
    tls_certificate: ExistingFile | None = None
    tls_private_key: ExistingFile | None = None
    tls_ca: ExistingFile | None = None
    # limits against hostile peers (docs/security.md)
    max_associations: PositiveInt = 20  # connections open at once, in total
    max_associations_per_peer: PositiveInt = 5  # connections open at once from one address
    negotiation_timeout: PositiveFloat = 10.0  # s from connection (TLS handshake included) to association
    pdu_timeout: PositiveFloat = 60.0  # s to receive one whole PDU once its first byte arrived
    max_pdu_size: PositiveInt = 1_048_576  # bytes; longer PDUs cut the connection (PS3.8 9.3.1)
    max_dataset_size_mb: PositiveInt = 256  # one C-STORE's dataset (held in memory); larger ones cut the connection
    weights: Path | None = None
    untrained: bool = False
    # how an inference worker runs the network (inference.device.RunOptions; docs/operations.md "Scheduling")
    device: str | None = None  # e.g. "cuda:1"; None: the first CUDA device, else the CPU
    batch_size: PositiveInt | None = None  # images per forward pass; None: the device's default (CPU 1, CUDA 32)
    batch_wait_ms: NonNegativeInt = 20  # how long a batch waits to fill once its first image is taken
    scoring_threads: PositiveInt | None = None  # batches an inference worker scores at once; None: CPU 1, CUDA 2
    precision: Precision = "fp32"  # "bf16": autocast, faster on tensor cores; may move a borderline score
    channels_last: bool = True
    compile_network: bool = False  # torch.compile at start (tens of seconds); worth it on GPUs
    cuda_graphs: bool = False  # GPU only: the network replayed as CUDA graphs, one per scoring thread
    max_in_flight: PositiveInt = DEFAULT_MAX_IN_FLIGHT  # images queued for scoring at once; others wait
    node_concurrency: PositiveInt | None = None  # processes of a node-queue worker; None: one per CPU core
    inference_processes: PositiveInt = 1  # processes of an inference-queue worker, sharing its device
    worker: bool = True
    broker_url: str | None = None  # None: the node's own private, supervised redis-server
    outputs: Annotated[list[str], NoDecode] = list(OUTPUT_KINDS)
    delivery_max_backoff: PositiveInt = DEFAULT_MAX_BACKOFF_S  # longest wait between delivery attempts, s
    delivery_give_up_after: PositiveInt = DEFAULT_GIVE_UP_AFTER_S  # retrying this long (s) ends in `failed`
    max_pixels: PositiveInt = DEFAULT_MAX_PIXELS  # larger images fail at triage, before decoding
    min_free_space_mb: NonNegativeInt = 512  # below this much free space in the spool, C-STORE answers 0xA700
    visibility_timeout: PositiveInt = 600  # must exceed the longest task and delivery_max_backoff

    @field_validator("allow", mode="before")
    @classmethod
    def _allow(cls, value: Any) -> Any:
        entries = _split_list(value)
        if isinstance(entries, list):
            return [Sender.parse(entry) if isinstance(entry, str) else entry for entry in entries]
        return entries

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs(cls, value: Any) -> Any:
        kinds = _split_list(value)
        if isinstance(kinds, list):
            unknown = sorted(set(kinds) - set(OUTPUT_KINDS))
            if unknown or not kinds:
                raise ConfigError(f"outputs {unknown or 'empty'}: choose from {', '.join(OUTPUT_KINDS)}")
        return kinds

    @model_validator(mode="before")
    @classmethod
    def _no_routing_by_ae_title(cls, values: Any) -> Any:
        if isinstance(values, dict) and "destinations" in values:
            raise ConfigError(
                "[destinations] (routing by calling AE title) is gone: anyone can claim an AE title. Give the "
                "sender an [[allow]] entry with its addresses and a destination (docs/security.md)"
            )
        return values

    @model_validator(mode="after")
    def _tls_consistent(self) -> "NodeSettings":
        if (self.tls_certificate is None) != (self.tls_private_key is None):
            raise ConfigError("give tls_certificate and tls_private_key together")
        if self.tls_ca is not None and self.tls_certificate is None:
            raise ConfigError("tls_ca (client certificate verification) needs tls_certificate and tls_private_key")
        if self.tls_ca is None and any(sender.certificate_subject for sender in self.allow):
            raise ConfigError("an allow entry names a certificate_subject: set tls_ca to verify senders' certificates")
        by_address: dict[str, Destination] = {}
        for destination in self.configured_destinations():
            if by_address.setdefault(str(destination), destination) != destination:
                raise ConfigError(f"destination {destination} is configured twice with different TLS settings")
        return self

    @model_validator(mode="after")
    def _backoff_within_visibility(self) -> "NodeSettings":
        # a delivery retry waits in the worker unacknowledged; Redis would hand it out again
        if self.delivery_max_backoff >= self.visibility_timeout:
            raise ConfigError(
                f"delivery_max_backoff ({self.delivery_max_backoff} s) must be below visibility_timeout "
                f"({self.visibility_timeout} s)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    def require_model(self) -> None:
        """Scoring needs weights, or an explicit ``untrained`` (outputs then say so): ConfigError."""
        if self.weights is None and not self.untrained:
            raise ConfigError(
                "no model weights: give --weights PATH (or DICOM_NODE_WEIGHTS), or --untrained to run "
                "a randomly initialised network whose outputs say UNTRAINED MODEL - DEMONSTRATION ONLY"
            )
        if self.weights is not None and not self.weights.is_file():
            raise ConfigError(f"weights file not found: {self.weights}")

    @property
    def tls(self) -> bool:
        """Whether the SCP speaks DICOM TLS only."""
        return self.tls_certificate is not None

    def known_sender(self, calling_ae: str, address: str, subject: frozenset[tuple[str, str]]) -> Sender | None:
        """The first allow entry admitting this association, :data:`ANYONE` without an
        allow-list, or None: the association is rejected."""
        if not self.allow:
            return ANYONE
        return next((sender for sender in self.allow if sender.admits(calling_ae, address, subject)), None)

    def destination_of(self, sender: Sender) -> Destination | None:
        """Where results of images from ``sender`` go: its own destination, else the default."""
        return sender.destination or self.destination

    def configured_destinations(self) -> list[Destination]:
        """The default destination and every allow entry's."""
        candidates = [self.destination, *(sender.destination for sender in self.allow)]
        return [destination for destination in candidates if destination is not None]

    def configured_destination(self, text: str) -> Destination | None:
        """The destination the journal wrote as ``text`` (``AET@HOST:PORT``) with the TLS settings
        this process's configuration gives it; None where the configuration no longer names it
        (results are never sent where it no longer sends them)."""
        for destination in self.configured_destinations():
            if str(destination) == text:
                return destination
        return None

    def picklable(self) -> "NodeSettings":
        """These settings as a plain NodeSettings, as they are (no source read again): the class
        :func:`load_settings` makes for a configuration file cannot be pickled for another process."""
        values = {name: getattr(self, name) for name in NodeSettings.model_fields}
        return NodeSettings.model_construct(_fields_set=self.model_fields_set, **values)

    def worker_broker_url(self) -> str:
        """The broker a worker or ``retry`` uses: ``broker_url``, else the embedded broker of the
        node running on this spool (dicom_node.broker.spool_broker_url)."""
        url = self.broker_url or spool_broker_url(self.spool)
        if url is None:
            raise ConfigError(
                f"no broker: no node with an embedded broker runs on {self.spool}; start dicom-node serve "
                "there, or give --broker-url"
            )
        return url

    @property
    def journal_path(self) -> Path:
        return self.spool / "journal.sqlite"


def load_settings(config_file: Path | None = None, **overrides: Any) -> NodeSettings:
    """Settings from ``config_file`` (or ``$DICOM_NODE_CONFIG``), the environment and the
    non-None ``overrides`` (command-line flags)."""
    path = config_file or os.environ.get(CONFIG_ENV)
    settings_class: type[NodeSettings] = NodeSettings
    if path:
        if not Path(path).is_file():
            raise ConfigError(f"config file not found: {path}")
        settings_class = type(
            "NodeSettingsFromFile",
            (NodeSettings,),
            {"model_config": {**NodeSettings.model_config, "toml_file": Path(path)}},
        )
    try:
        return settings_class(**{key: value for key, value in overrides.items() if value is not None})
    except ConfigError:
        raise
    except ValueError as error:  # pydantic's ValidationError: list every bad field
        raise ConfigError(str(error)) from error
