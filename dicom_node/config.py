"""Node settings from flags, ``DICOM_NODE_*`` environment variables and a TOML file
(pydantic-settings; precedence: flags > environment > TOML file > defaults)."""

import os
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, NonNegativeInt, PositiveInt, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from dicom_node.broker import spool_broker_url
from dicom_node.retry_schedule import DEFAULT_GIVE_UP_AFTER_S, DEFAULT_MAX_BACKOFF_S

CONFIG_ENV = "DICOM_NODE_CONFIG"
DEFAULT_MAX_PIXELS = 50_000_000  # e.g. 7000 x 7000; chest radiographs are 2-12 million pixels
OutputKind = Literal["sr", "overlay", "explainability", "seg"]  # built by dicom_node.outputs
OUTPUT_KINDS: tuple[OutputKind, ...] = get_args(OutputKind)


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


class Destination(BaseModel):
    """A DICOM peer written ``AET@HOST:PORT`` (PS3.8 AE title: at most 16 characters)."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "Destination":
        try:
            ae_title, address = text.split("@", 1)
            host, port = address.rsplit(":", 1)
            destination = cls(ae_title=ae_title.strip(), host=host.strip("[] "), port=int(port))
        except ValueError as error:
            raise ConfigError(f"destination {text!r} is not AET@HOST:PORT") from error
        validate_ae_title(destination.ae_title)
        return destination

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def validate_ae_title(value: str) -> str:
    """PS3.5 AE VR: 1-16 characters, no backslash or control characters, not only spaces."""
    if not value.strip() or len(value) > 16 or "\\" in value or any(ord(c) < 32 for c in value):
        raise ConfigError(f"AE title {value!r} must be 1-16 printable characters without '\\'")
    return value


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class NodeSettings(BaseSettings):
    """Everything ``dicom-node serve`` and ``dicom-node worker`` need."""

    model_config = SettingsConfigDict(env_prefix="DICOM_NODE_", extra="forbid")

    ae_title: str = "DICOM_NODE"
    host: str = "0.0.0.0"
    port: int = 11112
    spool: Path = Path("spool")
    allow: Annotated[list[str], NoDecode] = []
    destination: Destination | None = None
    destinations: dict[str, Destination] = {}
    weights: Path | None = None
    untrained: bool = False
    worker: bool = True
    broker_url: str | None = None  # None: the node's own private, supervised redis-server
    outputs: Annotated[list[str], NoDecode] = list(OUTPUT_KINDS)
    delivery_max_backoff: PositiveInt = DEFAULT_MAX_BACKOFF_S  # longest wait between delivery attempts, s
    delivery_give_up_after: PositiveInt = DEFAULT_GIVE_UP_AFTER_S  # retrying this long (s) ends in `failed`
    max_pixels: PositiveInt = DEFAULT_MAX_PIXELS  # larger images fail at triage, before decoding
    min_free_space_mb: NonNegativeInt = 512  # below this much free space in the spool, C-STORE answers 0xA700
    visibility_timeout: PositiveInt = 600  # must exceed the longest task and delivery_max_backoff

    @field_validator("ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        return validate_ae_title(value)

    @field_validator("allow", mode="before")
    @classmethod
    def _allow(cls, value: Any) -> Any:
        titles = _split_list(value)
        return [validate_ae_title(title) for title in titles] if isinstance(titles, list) else titles

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs(cls, value: Any) -> Any:
        kinds = _split_list(value)
        if isinstance(kinds, list):
            unknown = sorted(set(kinds) - set(OUTPUT_KINDS))
            if unknown or not kinds:
                raise ConfigError(f"outputs {unknown or 'empty'}: choose from {', '.join(OUTPUT_KINDS)}")
        return kinds

    @field_validator("destination", mode="before")
    @classmethod
    def _destination(cls, value: Any) -> Any:
        return Destination.parse(value) if isinstance(value, str) else value

    @field_validator("destinations", mode="before")
    @classmethod
    def _destinations(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: Destination.parse(v) if isinstance(v, str) else v for k, v in value.items()}
        return value

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

    def destination_for(self, calling_ae: str) -> Destination | None:
        """Where results for images sent by ``calling_ae`` go: its own entry, else the default."""
        return self.destinations.get(calling_ae.strip(), self.destination)

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
