"""runtime-adapter: the main process of an AI-agent workspace container."""

from __future__ import annotations

from ._version import __version__
from .adapter import AdapterContext, BaseAdapter, discover_adapter, load_adapter_class
from .advertise import Advertisement, Candidate, NetworkFacts, choose_url, gather_facts
from .card import build_card, minimal_card
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
    PlatformAuthError,
    PlatformError,
    PlatformRejected,
    PlatformUnavailable,
    ProviderError,
    Redactor,
    RuntimeAdapterError,
    SettingsError,
    VolumeError,
    WorkspaceUnknown,
    fingerprint,
)
from .health import Health, LLMContext, SampleError, classify
from .heartbeat import Heartbeat, RuntimeStatus, heartbeat_body
from .platform import PlatformClient, backoff_delay, parse_retry_after
from .providers import Arm, builtin_arms, load_arms
from .reconcile import Reconciled, reconcile
from .settings import SecretsDir, Settings, load_settings, read_secrets_dir
from .tokens import TokenStore
from .volume import WorkspaceConfig, load_config, read_token, wait_for_config

__all__ = [
    "MANAGED_VARIABLES",
    "Action",
    "AdapterContext",
    "Advertisement",
    "Arm",
    "Assignment",
    "BaseAdapter",
    "Candidate",
    "ConfigError",
    "EnvGuardError",
    "EnvPlan",
    "Health",
    "Heartbeat",
    "LLMContext",
    "NetworkFacts",
    "PlatformAuthError",
    "PlatformClient",
    "PlatformError",
    "PlatformRejected",
    "PlatformUnavailable",
    "ProviderError",
    "Reconciled",
    "Redactor",
    "RuntimeAdapterError",
    "RuntimeStatus",
    "SampleError",
    "SecretsDir",
    "Settings",
    "SettingsError",
    "TokenStore",
    "VolumeError",
    "WorkspaceConfig",
    "WorkspaceUnknown",
    "__version__",
    "apply_plan",
    "backoff_delay",
    "build_card",
    "builtin_arms",
    "check_applied",
    "choose_url",
    "classify",
    "discover_adapter",
    "fingerprint",
    "gather_facts",
    "heartbeat_body",
    "load_adapter_class",
    "load_arms",
    "load_config",
    "load_settings",
    "minimal_card",
    "parse_retry_after",
    "plan_env",
    "read_secrets_dir",
    "read_token",
    "reconcile",
    "wait_for_config",
]
