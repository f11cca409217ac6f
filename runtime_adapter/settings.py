"""Settings read from the process environment, and the secrets directory.

The variable names are the platform's (DESIGN §4) and are a contract: no
prefix, no renaming. A bad value is a ``SettingsError`` that names the
variable and the accepted form; it never echoes a value that could be a
secret. Provider keys are not settings fields (the provider arms decide
which variables are keys); they are read by ``read_secrets_dir`` and the
env planner.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import SettingsError

__all__ = ["SecretsDir", "Settings", "load_settings", "read_secrets_dir"]

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ADAPTER_MODULE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?\Z")
_SECRET_FILE_LIMIT = 64 * 1024


def _check_http_url(value: str | None, variable: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{variable} must be an http:// or https:// URL with a host")
    return value.rstrip("/")


class Settings(BaseSettings):
    """The environment of the adapter process (DESIGN §4).

    Empty variables count as unset. Unknown variables are ignored on purpose:
    the container environment carries many variables that are not ours.
    """

    model_config = SettingsConfigDict(
        case_sensitive=True,
        extra="ignore",
        env_ignore_empty=True,
        frozen=True,
        populate_by_name=False,
    )

    workspace_id: str | None = Field(
        default=None,
        validation_alias="WORKSPACE_ID",
        description="the workspace id the platform knows this container by",
    )
    platform_url: str | None = Field(
        default=None,
        validation_alias="PLATFORM_URL",
        description="an http:// or https:// URL, the platform's base URL",
    )
    config_path: Path = Field(
        default=Path("/configs"),
        validation_alias=AliasChoices("WORKSPACE_CONFIG_PATH", "CONFIGS_DIR"),
        description="a directory path, where the config volume is mounted",
    )
    adapter_module: str | None = Field(
        default=None,
        validation_alias="ADAPTER_MODULE",
        description="'pkg.module' or 'pkg.module:Class'",
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        validation_alias="PORT",
        description="an integer from 1 to 65535",
    )
    advertise_url: str | None = Field(
        default=None,
        validation_alias="ADVERTISE_URL",
        description="an http:// or https:// URL the platform can reach this container at",
    )
    advertise_host: str | None = Field(
        default=None,
        validation_alias="ADVERTISE_HOST",
        description="a host name or IP address the platform can reach this container at",
    )
    pod_ip: str | None = Field(
        default=None,
        validation_alias="POD_IP",
        description="the pod's IP address (Kubernetes downward API)",
    )
    hostname: str | None = Field(
        default=None,
        validation_alias="HOSTNAME",
        description="the container's host name",
    )
    heartbeat_interval_seconds: float = Field(
        default=30.0,
        ge=1.0,
        le=3600.0,
        validation_alias="HEARTBEAT_INTERVAL_SECONDS",
        description="a number of seconds from 1 to 3600",
    )
    # DESIGN §7's cap on the failure backoff. Late in an outage a fleet sends about
    # interval / (cap / 2) of its normal rate, and a workspace notices the platform is
    # back within about one cap: a large fleet may trade the one for the other (bench/:
    # in a 3-minute outage cap 600 s gives 0.8x instead of 1.2x, the ramp from 1 s
    # dominating, and ~9 minutes instead of one to come back).
    heartbeat_backoff_cap_seconds: float = Field(
        default=60.0,
        ge=5.0,
        le=3600.0,
        validation_alias="HEARTBEAT_BACKOFF_CAP_SECONDS",
        description="a number of seconds from 5 to 3600",
    )
    deploy_mode: Literal["saas", "self-hosted"] | None = Field(
        default=None,
        validation_alias="MOLECULE_DEPLOY_MODE",
        description="'saas' or 'self-hosted'",
    )
    org_id: str | None = Field(
        default=None,
        validation_alias="MOLECULE_ORG_ID",
        description="the tenant organisation id (its presence implies SaaS mode)",
    )
    model_provider: str | None = Field(
        default=None,
        validation_alias="MODEL_PROVIDER",
        description="a provider arm name such as 'minimax' or 'platform'",
    )
    llm_proxy_url: str | None = Field(
        default=None,
        validation_alias="LLM_PROXY_URL",
        description="an http:// or https:// URL of the platform's Anthropic-compatible proxy",
    )
    runtime_secrets_dir: Path | None = Field(
        default=None,
        validation_alias="RUNTIME_SECRETS_DIR",
        description="a directory with one file per secret variable",
    )
    config_grace_seconds: float = Field(
        default=15.0,
        ge=0.0,
        le=600.0,
        validation_alias="CONFIG_GRACE_SECONDS",
        description="a number of seconds from 0 to 600 to wait for config.yaml at boot",
    )
    probe_retry_seconds: float = Field(
        default=60.0,
        ge=1.0,
        le=3600.0,
        validation_alias="PROBE_RETRY_SECONDS",
        description="a number of seconds from 1 to 3600 between credential probes while "
        "the last one failed",
    )
    llm_gateway: Literal["on", "off"] = Field(
        default="on",
        validation_alias="LLM_GATEWAY",
        description="'on' or 'off': the agent reaches its LLM through the runtime's loopback "
        "gateway and never holds the provider credential (DESIGN §13)",
    )
    a2a_auth: Literal["none", "platform", "bearer"] = Field(
        default="none",
        validation_alias="A2A_AUTH",
        description="'none', 'platform' or 'bearer': who may send A2A work (DESIGN §12)",
    )
    a2a_bearer_tokens: SecretStr | None = Field(
        default=None,
        validation_alias="A2A_BEARER_TOKENS",
        description="comma-separated tokens a caller may present when A2A_AUTH=bearer",
    )
    a2a_max_request_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        validation_alias="A2A_MAX_REQUEST_BYTES",
        description="a number of bytes from 1024 to 1073741824: the largest A2A request "
        "body accepted (413 beyond)",
    )
    delivery_mode: Literal["push", "poll"] = Field(
        default="push",
        validation_alias="DELIVERY_MODE",
        description="'push' (the platform calls the advertised URL) or 'poll' (no inbound "
        "route: the runtime pulls its messages, DESIGN §14)",
    )
    poll_interval_seconds: float = Field(
        default=2.0,
        ge=0.2,
        le=3600.0,
        validation_alias="POLL_INTERVAL_SECONDS",
        description="a number of seconds from 0.2 to 3600 between two pulls in poll mode",
    )
    log_format: Literal["json", "console"] | None = Field(
        default=None,
        validation_alias="LOG_FORMAT",
        description="'json' or 'console'",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        validation_alias="LOG_LEVEL",
        description="'DEBUG', 'INFO', 'WARNING' or 'ERROR'",
    )

    @field_validator("platform_url", mode="after")
    @classmethod
    def _platform_url(cls, value: str | None) -> str | None:
        return _check_http_url(value, "PLATFORM_URL")

    @field_validator("advertise_url", mode="after")
    @classmethod
    def _advertise_url(cls, value: str | None) -> str | None:
        return _check_http_url(value, "ADVERTISE_URL")

    @field_validator("llm_proxy_url", mode="after")
    @classmethod
    def _llm_proxy_url(cls, value: str | None) -> str | None:
        return _check_http_url(value, "LLM_PROXY_URL")

    @field_validator("adapter_module", mode="after")
    @classmethod
    def _adapter_module(cls, value: str | None) -> str | None:
        if value is not None and not _ADAPTER_MODULE.match(value.strip()):
            raise ValueError("ADAPTER_MODULE must look like 'pkg.module' or 'pkg.module:Class'")
        return value.strip() if value is not None else None

    @field_validator("a2a_auth", "delivery_mode", mode="before")
    @classmethod
    def _a2a_auth(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("deploy_mode", mode="before")
    @classmethod
    def _deploy_mode(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def saas(self) -> bool:
        """SaaS mode: ``MOLECULE_DEPLOY_MODE=saas``, or unset with a non-empty org id."""
        if self.deploy_mode is not None:
            return self.deploy_mode == "saas"
        return bool(self.org_id and self.org_id.strip())


def _variable_of(loc: tuple[int | str, ...]) -> str:
    return str(loc[0]) if loc else "environment"


# without these, run cannot report anything: "unset it" is no remedy for them
_REQUIRED_FOR_RUN = frozenset({"WORKSPACE_ID", "PLATFORM_URL"})


def load_settings() -> Settings:
    """Read the settings from ``os.environ``; a bad value raises ``SettingsError``."""
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        variable = _variable_of(error["loc"])
        form = _accepted_form(variable)
        message = str(error["msg"]).removeprefix("Value error, ")
        raise SettingsError(
            f"{variable} is not valid: {message}",
            hint=(
                f"set {variable} to {form}"
                + ("" if variable in _REQUIRED_FOR_RUN else ", or unset it for the default")
            )
            if form
            else None,
            variable=variable,
        ) from None


def _accepted_form(variable: str) -> str | None:
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else [alias]
        if variable in names:
            return field.description
    return None


class SecretsDir:
    """Values read from a one-file-per-variable secrets directory, with their paths."""

    def __init__(self, path: Path | None, values: Mapping[str, SecretStr]) -> None:
        self.path = path
        self.values = dict(values)

    def source(self, name: str) -> str:
        return f"secrets file {self.path / name}" if self.path else "secrets"

    @classmethod
    def empty(cls) -> SecretsDir:
        return cls(None, {})


def read_secrets_dir(path: Path | None) -> SecretsDir:
    """Read ``RUNTIME_SECRETS_DIR``: each regular file named like a variable is one value.

    Dot files and directories are skipped (Kubernetes mounts secrets as
    symlinks into a ``..data`` directory). Values are returned raw; key
    hygiene is the env planner's job, so that it can name the variable.
    """
    if path is None:
        return SecretsDir.empty()
    if not path.is_dir():
        raise SettingsError(
            f"RUNTIME_SECRETS_DIR {path} is not a directory",
            hint="mount the secrets there, or unset RUNTIME_SECRETS_DIR",
            variable="RUNTIME_SECRETS_DIR",
        )
    values: dict[str, SecretStr] = {}
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(".") or not _VARIABLE_NAME.match(entry.name):
            continue
        if not entry.is_file():
            continue
        try:
            size = entry.stat().st_size
            if size > _SECRET_FILE_LIMIT:
                raise SettingsError(
                    f"secrets file {entry} is {size} bytes, more than a secret can be",
                    hint=f"a secrets file holds one value of at most {_SECRET_FILE_LIMIT} bytes",
                    file=entry,
                )
            raw = entry.read_bytes()
        except OSError as exc:
            raise SettingsError(
                f"secrets file {entry} cannot be read: {exc.strerror}",
                hint="make it readable by the adapter's user",
                file=entry,
            ) from None
        try:
            values[entry.name] = SecretStr(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise SettingsError(
                f"secrets file {entry} is not UTF-8 text",
                hint="write the value as plain text",
                file=entry,
            ) from None
    return SecretsDir(path, values)
