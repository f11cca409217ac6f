"""The projected config volume: ``config.yaml``, ``.auth_token`` and ``providers.yaml``.

The provisioner copies template files after the container starts, so at boot
the volume may still be filling; ``wait_for_config`` waits a grace period
before a missing or half-written ``config.yaml`` becomes an error. Unknown
fields of ``config.yaml`` are kept for the adapter; a null value means the
default. Every error is a ``VolumeError`` naming file, line and column.
"""

from __future__ import annotations

import difflib
import logging
import math
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ._yaml import Document, read_yaml, type_name
from .errors import VolumeError

__all__ = [
    "CONFIG_FILE",
    "INBOUND_SECRET_FILE",
    "PROVIDERS_FILE",
    "TOKEN_FILE",
    "A2AConfig",
    "EnvConfig",
    "RuntimeConfig",
    "SkillConfig",
    "WorkspaceConfig",
    "load_config",
    "read_secret_file",
    "read_token",
    "wait_for_config",
]

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
# a config.yaml that does not parse and has not changed for this long is finished
SETTLED_SECONDS = 1.0
TOKEN_FILE = ".auth_token"  # noqa: S105 - a file name, not a password
# the credential the platform presents when it calls the workspace (DESIGN §7)
INBOUND_SECRET_FILE = ".platform_inbound_secret"  # noqa: S105 - a file name
PROVIDERS_FILE = "providers.yaml"
_TOKEN_LIMIT = 16 * 1024


class _Section(BaseModel):
    """A config section: unknown keys kept, a null value means the default."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class SkillConfig(_Section):
    """One skill of the agent card; a bare name in ``skills:`` becomes ``id=name=that``."""

    id: str
    name: str = ""
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        if isinstance(data, str | int | float) and not isinstance(data, bool):
            return {"id": str(data), "name": str(data)}
        if isinstance(data, dict) and "id" not in data and data.get("name") is not None:
            return {**data, "id": data["name"]}
        return data

    @model_validator(mode="after")
    def _default_name(self) -> SkillConfig:
        if not self.name:
            self.name = self.id
        return self


class A2AConfig(_Section):
    port: int | None = Field(default=None, ge=1, le=65535)
    streaming: bool | None = None  # None: the adapter's default (BaseAdapter.streaming)
    push_notifications: bool = False


class EnvConfig(_Section):
    required: list[str] = Field(default_factory=list)


class RuntimeConfig(_Section):
    model: str | None = None
    required_env: list[str] = Field(default_factory=list)


class WorkspaceConfig(_Section):
    """``config.yaml`` as typed data (DESIGN §4); extra fields are kept as attributes."""

    name: str | None = None
    description: str = ""
    version: str = "1.0.0"
    runtime: str | None = None
    model: str | None = None
    provider: str | None = None
    a2a: A2AConfig = Field(default_factory=A2AConfig)
    skills: list[SkillConfig] = Field(default_factory=list)
    env: EnvConfig = Field(default_factory=EnvConfig)
    runtime_config: RuntimeConfig = Field(default_factory=RuntimeConfig)

    _file: Path | None = PrivateAttr(default=None)
    _document: Document | None = PrivateAttr(default=None)

    @property
    def file(self) -> Path | None:
        """The file this config was read from (None when built in code)."""
        return self._file

    def position(self, *path: str | int) -> tuple[int | None, int | None]:
        """1-based (line, column) of a field in the file, when known."""
        if self._document is None:
            return (None, None)
        return self._document.position(path)

    def source(self, *path: str | int) -> str:
        """Where a field came from, for messages: ``/configs/config.yaml:3 (model)``."""
        dotted = ".".join(str(part) for part in path)
        if self._file is None:
            return f"config {dotted}"
        line, _ = self.position(*path)
        where = f"{self._file}:{line}" if line is not None else str(self._file)
        return f"{where} ({dotted})"


_FORMS = {
    "a2a.port": "an integer from 1 to 65535",
    "a2a.streaming": "true or false",
    "a2a.push_notifications": "true or false",
    "skills": "a list of skill names, or of mappings with id, name, description, tags, examples",
    "env.required": "a list of variable names",
    "runtime_config.required_env": "a list of variable names",
}


def parse_config(document: Document) -> WorkspaceConfig:
    """Validate a parsed ``config.yaml``; errors name the field and its position."""
    file = document.file
    if not isinstance(document.data, dict):
        found = "an empty file" if document.data is None else type_name(document.data)
        raise VolumeError(
            f"{file} must be a mapping of fields (name:, model:, runtime: ...); found {found}",
            hint="write config.yaml as 'key: value' lines",
            file=file,
            line=1,
            column=1,
        )
    try:
        config = WorkspaceConfig.model_validate(document.data)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        loc = tuple(part for part in error["loc"] if not _is_union_tag(part))
        dotted = ".".join(str(part) for part in loc)
        line, column = document.position(loc)
        general = ".".join(str(part) for part in loc if not isinstance(part, int))
        form = _FORMS.get(general)
        raise VolumeError(
            f"{file}: field {dotted}: {error['msg']}",
            hint=f"{dotted} takes {form}" if form else "fix the value of that field",
            file=file,
            line=line,
            column=column,
            field=dotted,
        ) from None
    config._file = file
    config._document = document
    _warn_misspelled(config)
    return config


_WARNED: set[tuple[Path | None, str]] = set()


def _warn_misspelled(config: WorkspaceConfig) -> None:
    """An unknown top-level key is kept for the adapter (DESIGN §4); one that looks like
    a known field misspelled (``modle:``) is worth a warning naming both."""
    known = list(WorkspaceConfig.model_fields)
    for key in config.model_extra or {}:
        if not isinstance(key, str) or key in known or (config.file, key) in _WARNED:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        if close:
            line, _ = config.position(key)
            where = f"{config.file}:{line}" if line is not None else str(config.file)
            if len(_WARNED) < 100:  # once per file and key: the volume is read often
                _WARNED.add((config.file, key))
            log.warning(
                "%s: unknown field %r kept for the adapter; did you mean %r?",
                where,
                key,
                close[0],
            )


def _is_union_tag(part: str | int) -> bool:
    # pydantic puts the tried union member (e.g. 'SkillConfig') into the location
    return isinstance(part, str) and part[:1].isupper()


def load_config(config_dir: Path) -> WorkspaceConfig:
    """Read ``<config_dir>/config.yaml`` now; ``VolumeError`` if missing or malformed."""
    return parse_config(read_yaml(config_dir / CONFIG_FILE, VolumeError))


async def wait_for_config(config_dir: Path, grace: float, *, poll: float = 0.25) -> WorkspaceConfig:
    """``load_config``, retried for ``grace`` seconds while the volume is still filling.

    A missing file may not have been copied yet, and one that does not parse
    may be mid-copy: both are waited for. A file that does not parse and has
    not changed for ``SETTLED_SECONDS`` is finished and simply wrong: reported
    then, not after the grace period (an operator's typo is not 15 s of silence).
    """
    deadline = anyio.current_time() + grace
    file = config_dir / CONFIG_FILE
    seen: tuple[int, int] | None = None
    since = anyio.current_time()
    while True:
        try:
            return await anyio.to_thread.run_sync(load_config, config_dir)
        except VolumeError:
            now = await anyio.to_thread.run_sync(_stat, file)
            if now != seen:
                seen, since = now, anyio.current_time()
            elif now is not None and anyio.current_time() - since >= SETTLED_SECONDS:
                raise  # complete (unchanged for a while) and still wrong
            remaining = deadline - anyio.current_time()
            if remaining <= 0 or math.isclose(remaining, 0):
                raise
            await anyio.sleep(min(poll, remaining))


def _stat(file: Path) -> tuple[int, int] | None:
    try:
        stat = file.stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)


def read_token(config_dir: Path) -> str | None:
    """The platform bearer token from ``<config_dir>/.auth_token``, or None if absent or empty.

    Surrounding whitespace is stripped (provisioners write a trailing
    newline). An unreadable file is an error; the value is never shown.
    """
    return read_secret_file(config_dir / TOKEN_FILE)


def read_secret_file(file: Path) -> str | None:
    """One secret alone in ``file`` (a token, the inbound secret), or None if absent or
    empty; an unreadable or malformed file is an error naming it, never the value."""
    try:
        raw = file.read_bytes()[: _TOKEN_LIMIT + 1]
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise VolumeError(
            f"{file} cannot be read: {exc.strerror}",
            hint="make it readable by the adapter's user",
            file=file,
        ) from None
    if len(raw) > _TOKEN_LIMIT:
        raise VolumeError(
            f"{file} is larger than {_TOKEN_LIMIT} bytes; it is not a token",
            hint="the provisioner writes the token alone",
            file=file,
        )
    try:
        token = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise VolumeError(
            f"{file} is not UTF-8 text", hint="the provisioner writes the token alone", file=file
        ) from None
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        raise VolumeError(
            f"{file} holds more than one token (it contains whitespace or control characters)",
            hint="write the token alone on one line",
            file=file,
        )
    return token or None
