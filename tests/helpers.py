"""Small builders shared by the tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from runtime_adapter import EnvPlan, SecretsDir, WorkspaceConfig, builtin_arms, plan_env
from runtime_adapter._yaml import parse_yaml
from runtime_adapter.errors import VolumeError
from runtime_adapter.providers import Arm
from runtime_adapter.volume import parse_config

CONFIG_FILE = Path("/configs/config.yaml")


def config(text_or_data: str | Mapping[str, Any] = "") -> WorkspaceConfig:
    """A WorkspaceConfig as if read from /configs/config.yaml."""
    text = text_or_data if isinstance(text_or_data, str) else yaml.safe_dump(dict(text_or_data))
    return parse_config(parse_yaml(text.encode() or b"{}", CONFIG_FILE, VolumeError))


def plan(
    config_: str | Mapping[str, Any] | WorkspaceConfig = "",
    env: Mapping[str, str] | None = None,
    *,
    secrets: Mapping[str, str] | None = None,
    token: str | None = None,
    arms: Mapping[str, Arm] | None = None,
) -> EnvPlan:
    from pydantic import SecretStr

    cfg = config_ if isinstance(config_, WorkspaceConfig) else config(config_)
    secrets_dir = SecretsDir(
        Path("/run/secrets"), {k: SecretStr(v) for k, v in (secrets or {}).items()}
    )
    return plan_env(
        arms=arms if arms is not None else builtin_arms(),
        environ=dict(env or {}),
        config=cfg,
        secrets=secrets_dir if secrets else None,
        token=token,
        token_source="/configs/.auth_token",
    )
