"""Gather a plan's inputs from disk (volume, secrets, providers files) and plan.

This is the I/O edge in front of the pure ``envplan``: it reads the config
volume, the secrets directory and the providers files, finds the
template's ``providers.yaml`` without importing the template, and calls
``plan_env``. It never applies anything.
"""

from __future__ import annotations

import importlib.machinery
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from .envplan import EnvPlan, plan_env
from .errors import ConfigError
from .providers import Arm, load_arms
from .settings import SecretsDir, Settings, read_secrets_dir
from .volume import PROVIDERS_FILE, TOKEN_FILE, WorkspaceConfig, load_config, read_token

__all__ = ["Reconciled", "reconcile", "template_dir"]

ENTRY_POINT_GROUP = "runtime_adapter.adapters"


@dataclass(frozen=True)
class Reconciled:
    """Everything a plan was made from, and the plan."""

    settings: Settings
    config: WorkspaceConfig
    arms: Mapping[str, Arm]
    secrets: SecretsDir
    plan: EnvPlan


def _module_dir(module: str) -> Path | None:
    """The directory holding ``module``'s file, found without importing any of it."""
    search: list[str] | None = None
    spec = None
    for part in module.split("."):
        spec = importlib.machinery.PathFinder.find_spec(part, search)
        if spec is None:
            return None
        search = list(spec.submodule_search_locations or [])
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def template_dir(settings: Settings, config: WorkspaceConfig | None) -> Path | None:
    """The directory of the adapter's module, where its ``providers.yaml`` lives.

    Found from ``ADAPTER_MODULE`` or the entry point named after config
    ``runtime``, without importing the adapter (an LLM SDK may be behind it).
    """
    if settings.adapter_module:
        return _module_dir(settings.adapter_module.partition(":")[0])
    if config is not None and config.runtime:
        for entry in entry_points(group=ENTRY_POINT_GROUP, name=config.runtime):
            return _module_dir(entry.module)
    return None


def reconcile(
    settings: Settings,
    environ: Mapping[str, str],
    config: WorkspaceConfig | None = None,
) -> Reconciled:
    """Read the volume (unless ``config`` is given), secrets and providers files; plan."""
    config_dir = settings.config_path
    if config is None:
        config = load_config(config_dir)
    secrets = read_secrets_dir(settings.runtime_secrets_dir)
    template = template_dir(settings, config)
    if settings.adapter_module and template is None:
        # before any plan: a mistyped module would otherwise surface as a provider error
        # about a model only the template's providers.yaml serves
        module = settings.adapter_module.partition(":")[0]
        searched = [entry or "." for entry in sys.path if entry][:5]
        raise ConfigError(
            f"ADAPTER_MODULE names module {module}, which is not on the search path",
            hint="check the spelling; install the template's package (pip install -e "
            "path/to/template) or add its parent directory to PYTHONPATH (searched: "
            + ", ".join(searched)
            + (", ..." if len(sys.path) > 5 else "")
            + ")",
            variable="ADAPTER_MODULE",
        )
    files = [template / PROVIDERS_FILE] if template is not None else []
    files.append(config_dir / PROVIDERS_FILE)
    arms = load_arms(files)
    plan = plan_env(
        arms=arms,
        environ=environ,
        config=config,
        secrets=secrets,
        token=read_token(config_dir),
        token_source=str(config_dir / TOKEN_FILE),
    )
    return Reconciled(settings, config, arms, secrets, plan)
