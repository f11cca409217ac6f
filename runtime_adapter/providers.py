"""Provider arms: how a model is served (endpoint, credential variable, auth scheme).

Built-in arms ship in ``builtin_providers.yaml``; a template's
``providers.yaml`` and then the volume's extend them or override them field
by field, by arm name. An arm that sends an Anthropic credential
(``x-api-key`` or ``oauth``) may only point at Anthropic's endpoint: no
Anthropic credential goes to a third-party host. Base URLs must be http(s)
and never a cloud metadata address.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._yaml import Document, parse_yaml, read_yaml, type_name
from .errors import ProviderError

__all__ = [
    "ANTHROPIC_HOST",
    "Arm",
    "builtin_arms",
    "check_base_url",
    "load_arms",
]

ANTHROPIC_HOST = "api.anthropic.com"
_ARM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}\Z")
_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]*\Z")
_SECRETISH = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
# Variables an arm's static ``env`` may never set: the credential plumbing is
# the planner's, and these change what code runs or where the process looks.
_FORBIDDEN_ENV = re.compile(
    r"(PATH|HOME|USER|SHELL|ENV|BASH_ENV|IFS|NODE_OPTIONS|NODE_PATH|HOSTNAME"
    r"|LD_\w*|DYLD_\w*|PYTHON\w*|SSL_\w*|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE"
    r"|HTTPS?_PROXY|NO_PROXY|ALL_PROXY"
    r"|WORKSPACE_ID|PLATFORM_URL|WORKSPACE_CONFIG_PATH|CONFIGS_DIR|ADAPTER_MODULE"
    r"|MODEL_PROVIDER|LLM_PROXY_URL|RUNTIME_SECRETS_DIR|PORT|ADVERTISE_\w+"
    r"|ANTHROPIC_\w*|CLAUDE_CODE_OAUTH_TOKEN)\Z"
)
_METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog"})
_METADATA_NETS = tuple(
    ipaddress.ip_network(net)
    for net in ("169.254.0.0/16", "fe80::/10", "100.100.100.200/32", "fd00:ec2::/32")
)


def check_base_url(url: str) -> str | None:
    """Why ``url`` may not be an LLM base URL, or None when it may."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "it must be an http:// or https:// URL"
    try:
        host = (parts.hostname or "").lower().rstrip(".")
    except ValueError:
        return "its host is not valid"
    if not host:
        return "it has no host"
    if parts.username or parts.password:
        return "it carries credentials in the URL; use the arm's key variable instead"
    if host in _METADATA_HOSTS:
        return "its host is a cloud metadata service"
    address = _as_address(host)
    if address is None:
        return None
    if any(address in net for net in _METADATA_NETS):
        return "its host is a link-local or cloud metadata address"
    return None


def _as_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an address, normalised the way resolvers read it: decimal
    (``2852039166``), hex (``0xa9fea9fe``) and octal IPv4 forms, and IPv4-mapped
    IPv6 (``::ffff:169.254.169.254``), so none of them slips past the guard."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not re.fullmatch(r"[0-9a-fx.]+", host):
            return None
        try:
            address = ipaddress.ip_address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Arm(BaseModel):
    """One provider arm (DESIGN §5)."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    name: str
    display_name: str = ""
    key_env: tuple[str, ...] = ()
    key_from: Literal["env", "workspace-token"] = "env"
    auth: Literal["bearer", "x-api-key", "oauth"] = "bearer"
    base_url: str | None = None
    base_url_env: str | None = None
    models: tuple[str, ...] = ()
    suggested: tuple[str, ...] = ()
    default_model: str | None = None
    small_model: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    origin: str = "built-in"

    @field_validator("key_env", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("key_env")
    @classmethod
    def _variable_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _VARIABLE.match(name):
                raise ValueError(
                    "an entry is not an environment variable name (A-Z, 0-9 and _; name "
                    "the variable that holds the key, never the key itself)"
                )
        return value

    @field_validator("base_url_env")
    @classmethod
    def _base_url_env(cls, value: str | None) -> str | None:
        if value is not None and not _VARIABLE.match(value):
            raise ValueError("it is not an environment variable name (A-Z, 0-9 and _)")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        problem = check_base_url(value)
        if problem:
            raise ValueError(f"base_url is refused: {problem}")  # never the value itself
        return value

    @field_validator("env")
    @classmethod
    def _static_env(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _VARIABLE.match(name):
                raise ValueError("env: a key is not an environment variable name (A-Z, 0-9, _)")
            if _FORBIDDEN_ENV.match(name):
                raise ValueError(f"env: {name} may not be set by a provider arm")
            if _SECRETISH.search(name):
                raise ValueError(
                    f"env: {name} looks like a secret; secrets belong in the environment "
                    "or RUNTIME_SECRETS_DIR, named by key_env"
                )
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Arm:
        if self.key_from == "env" and not self.key_env:
            raise ValueError(
                "key_env must name at least one variable (or key_from: workspace-token)"
            )
        if self.anthropic:
            if self.key_from != "env":
                raise ValueError(f"auth {self.auth} needs a key from key_env")
            if self.base_url is not None and urlsplit(self.base_url).hostname != ANTHROPIC_HOST:
                raise ValueError(
                    f"auth {self.auth} sends an Anthropic credential, so base_url must be "
                    f"Anthropic's ({ANTHROPIC_HOST}) or null; a third-party endpoint uses "
                    "auth: bearer"
                )
        elif self.base_url is None and self.base_url_env is None:
            raise ValueError("a third-party arm needs base_url or base_url_env")
        for what in ("default_model", "small_model"):
            value = getattr(self, what)
            if value is not None and not self.serves(value):
                raise ValueError(f"{what} {value} is not served by the arm's models")
        return self

    @property
    def anthropic(self) -> bool:
        """True when the arm sends an Anthropic credential (x-api-key or OAuth)."""
        return self.auth in ("x-api-key", "oauth")

    @property
    def label(self) -> str:
        return self.display_name or self.name

    def serves(self, model: str) -> bool:
        """Whether ``model`` is served: named exactly or matched by a family pattern
        (``MiniMax-*``), so a model released after this package works unchanged."""
        return any(
            fnmatch.fnmatchcase(model, entry) if "*" in entry else model == entry
            for entry in self.models
        )

    def listed_models(self) -> list[str]:
        """Model ids to suggest in messages: ``suggested``, then exact ``models`` entries."""
        exact = [entry for entry in self.models if "*" not in entry]
        return list(dict.fromkeys([*self.suggested, *exact]))

    def model_default(self) -> str | None:
        """The model used when only the provider is given (None: the runtime's own default)."""
        if self.default_model is not None:
            return self.default_model
        if self.anthropic:
            return None
        listed = self.listed_models()
        return listed[0] if listed else None


def _arms_from(
    document: Document, base: Mapping[str, Arm], origin: str | None = None
) -> dict[str, Arm]:
    """Merge the arms of one providers.yaml over ``base``, field by field."""
    file = document.file
    data = document.data
    if data is None:
        return dict(base)
    if not isinstance(data, dict):
        raise ProviderError(
            f"{file} must be a mapping of arm names to arms; found {type_name(data)}",
            hint="see the built-in arms for the schema (runtime-adapter env --format table)",
            file=file,
            line=1,
            column=1,
        )
    arms = dict(base)
    for name, fields in data.items():
        line, column = document.position((name,))
        if not isinstance(name, str) or not _ARM_NAME.match(name):
            raise ProviderError(
                f"{file}: arm name {name!r} is not valid",
                hint="use lower-case letters, digits, '-' and '_'",
                file=file,
                line=line,
                column=column,
            )
        if not isinstance(fields, dict):
            raise ProviderError(
                f"{file}: arm {name} must be a mapping of fields; found {type_name(fields)}",
                hint="write the arm's fields (key_env:, auth:, base_url:, models: ...) under it",
                file=file,
                line=line,
                column=column,
                field=name,
            )
        merged: dict[str, Any] = {}
        if name in arms:
            merged = arms[name].model_dump(exclude={"name", "origin"}, exclude_defaults=True)
        fields = dict(fields)
        added = fields.pop("add_models", None)
        if "models" in fields:
            # new families: inherited default/small models that no longer fit go too
            for what in ("default_model", "small_model"):
                if what not in fields:
                    merged.pop(what, None)
        merged.update(fields)
        if added is not None:
            more = [added] if isinstance(added, str) else added
            if not isinstance(more, list):
                more = [more]
            merged["models"] = [*merged.get("models", ()), *more]
        merged["name"] = name
        merged["origin"] = origin or str(file)
        try:
            arms[name] = Arm.model_validate(merged)
        except ValidationError as exc:
            error = exc.errors(include_url=False, include_input=False)[0]
            loc = tuple(error["loc"])
            where = (name, *loc) if loc and loc[0] in fields else (name,)
            line, column = document.position(where)
            dotted = ".".join(str(part) for part in where)
            message = str(error["msg"]).removeprefix("Value error, ")
            raise ProviderError(
                f"{file}: arm {dotted}: {message}",
                hint="see DESIGN §5 for the arm schema",
                file=file,
                line=line,
                column=column,
                field=dotted,
            ) from None
    return arms


def builtin_arms() -> dict[str, Arm]:
    """The arms that ship with the package, in priority order."""
    return dict(_builtin_arms())


@functools.cache
def _builtin_arms() -> dict[str, Arm]:
    raw = resources.files(__package__).joinpath("builtin_providers.yaml").read_bytes()
    document = parse_yaml(raw, Path("builtin_providers.yaml"), ProviderError)
    return _arms_from(document, {}, origin="built-in")


def load_arms(files: Iterable[Path]) -> dict[str, Arm]:
    """Built-in arms, then each existing providers.yaml in ``files`` merged over them."""
    arms = builtin_arms()
    for file in files:
        if file.exists():
            arms = _arms_from(read_yaml(file, ProviderError), arms)
    return arms
