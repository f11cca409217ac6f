"""runtime-adapter: the main process of an AI-agent workspace container."""

from __future__ import annotations

from ._version import __version__
from .envplan import (
    MANAGED_VARIABLES,
    Action,
    Assignment,
    EnvPlan,
    apply_plan,
    check_applied,
    plan_env,
)
from .errors import (
    ConfigError,
    EnvGuardError,
    ProviderError,
    RuntimeAdapterError,
    SettingsError,
    VolumeError,
    fingerprint,
)
from .providers import Arm, builtin_arms, load_arms
from .reconcile import Reconciled, reconcile
from .settings import SecretsDir, Settings, load_settings, read_secrets_dir
from .volume import WorkspaceConfig, load_config, read_token, wait_for_config

__all__ = [
    "MANAGED_VARIABLES",
    "Action",
    "Arm",
    "Assignment",
    "ConfigError",
    "EnvGuardError",
    "EnvPlan",
    "ProviderError",
    "Reconciled",
    "RuntimeAdapterError",
    "SecretsDir",
    "Settings",
    "SettingsError",
    "VolumeError",
    "WorkspaceConfig",
    "__version__",
    "apply_plan",
    "builtin_arms",
    "check_applied",
    "fingerprint",
    "load_arms",
    "load_config",
    "load_settings",
    "plan_env",
    "read_secrets_dir",
    "read_token",
    "reconcile",
    "wait_for_config",
]
