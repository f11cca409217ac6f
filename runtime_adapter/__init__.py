"""runtime-adapter: the main process of an AI-agent workspace container.

The public names below are imported on first use, so ``import runtime_adapter``
(and every command that needs only part of the package) does not pay for the
HTTP server, the platform client or the LLM SDKs it does not touch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .adapter import AdapterContext, BaseAdapter, discover_adapter, load_adapter_class
    from .advertise import Advertisement, Candidate, NetworkFacts, choose_url, gather_facts
    from .backoff import retry_delay
    from .card import build_card, minimal_card
    from .envplan import (
        HOST_FLAG,
        MANAGED_VARIABLES,
        MODEL_SLOTS,
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
    from .platform import PlatformClient, parse_retry_after
    from .providers import Arm, builtin_arms, load_arms
    from .reconcile import Reconciled
    from .settings import SecretsDir, Settings, load_settings, read_secrets_dir
    from .tokens import TokenStore
    from .volume import WorkspaceConfig, load_config, read_token, wait_for_config

_LAZY = {
    "Action": "envplan",
    "AdapterContext": "adapter",
    "Advertisement": "advertise",
    "Arm": "providers",
    "Assignment": "envplan",
    "BaseAdapter": "adapter",
    "Candidate": "advertise",
    "ConfigError": "errors",
    "EnvGuardError": "errors",
    "EnvPlan": "envplan",
    "Health": "health",
    "Heartbeat": "heartbeat",
    "LLMContext": "health",
    "HOST_FLAG": "envplan",
    "MANAGED_VARIABLES": "envplan",
    "MODEL_SLOTS": "envplan",
    "NetworkFacts": "advertise",
    "PlatformAuthError": "errors",
    "PlatformClient": "platform",
    "PlatformError": "errors",
    "PlatformRejected": "errors",
    "PlatformUnavailable": "errors",
    "ProviderError": "errors",
    "Reconciled": "reconcile",
    "Redactor": "errors",
    "RuntimeAdapterError": "errors",
    "RuntimeStatus": "heartbeat",
    "SampleError": "health",
    "SecretsDir": "settings",
    "Settings": "settings",
    "SettingsError": "errors",
    "TokenStore": "tokens",
    "VolumeError": "errors",
    "WorkspaceConfig": "volume",
    "WorkspaceUnknown": "errors",
    "apply_plan": "envplan",
    "retry_delay": "backoff",
    "build_card": "card",
    "builtin_arms": "providers",
    "check_applied": "envplan",
    "choose_url": "advertise",
    "classify": "health",
    "discover_adapter": "adapter",
    "fingerprint": "errors",
    "gather_facts": "advertise",
    "heartbeat_body": "heartbeat",
    "load_adapter_class": "adapter",
    "load_arms": "providers",
    "load_config": "volume",
    "load_settings": "settings",
    "minimal_card": "card",
    "parse_retry_after": "platform",
    "plan_env": "envplan",
    "read_secrets_dir": "settings",
    "read_token": "volume",
    "wait_for_config": "volume",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "HOST_FLAG",
    "MANAGED_VARIABLES",
    "MODEL_SLOTS",
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
    "retry_delay",
    "wait_for_config",
]
