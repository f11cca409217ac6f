"""``runtime-adapter doctor``: what an operator runs on a degraded workspace.

Checks in order (settings, config volume, adapter, provider env, Claude Code
settings files, advertised URL, platform reachability, LLM credential
probe), one row each with a verdict and, when something is wrong, the
remedy. A check whose prerequisite failed is skipped, not failed again.
Nothing here prints a secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx

from . import isolation
from .adapter import AdapterContext, BaseAdapter, discover_adapter
from .advertise import advertise, listen_port
from .claude_settings import find_overrides, settings_files
from .envplan import EnvPlan, apply_plan
from .errors import ConfigError, Redactor, RuntimeAdapterError
from .health import Health
from .inbound import Callers, bearer_tokens, describe
from .logs import REDACTOR
from .reconcile import reconcile
from .server import bind
from .settings import Settings, load_settings
from .volume import WorkspaceConfig, load_config, read_token

__all__ = ["Check", "run_checks"]

Verdict = Literal["pass", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    remedy: str = ""


async def run_checks(environ: Mapping[str, str]) -> list[Check]:
    """Every check, in order. Applies the provider env to ``os.environ`` for the probe."""
    checks: list[Check] = []
    settings: Settings | None = None
    config: WorkspaceConfig | None = None
    plan: EnvPlan | None = None

    try:
        settings = load_settings()
        missing = [
            name
            for name, value in (
                ("WORKSPACE_ID", settings.workspace_id),
                ("PLATFORM_URL", settings.platform_url),
            )
            if not value
        ]
        if missing:
            checks.append(
                Check(
                    "settings",
                    "fail",
                    f"{', '.join(missing)} not set",
                    "the platform sets these in the container's environment; run needs both",
                )
            )
        else:
            checks.append(
                Check(
                    "settings",
                    "pass",
                    f"workspace {settings.workspace_id}, platform "
                    f"{settings.platform_url}, volume {settings.config_path}",
                )
            )
    except ConfigError as error:
        checks.append(Check("settings", "fail", error.message, error.hint or ""))

    if settings is None:
        checks.append(Check("config volume", "skip", "settings are not usable"))
    else:
        try:
            config = await anyio.to_thread.run_sync(load_config, settings.config_path)
            checks.append(
                Check(
                    "config volume",
                    "pass",
                    f"{config.file}: name {config.name or '-'}, runtime {config.runtime or '-'}",
                )
            )
        except ConfigError as error:
            checks.append(Check("config volume", "fail", error.located(), error.hint or ""))

    if settings is None:
        checks.append(Check("adapter", "skip", "settings are not usable"))
    elif config is None and not settings.adapter_module:
        # which adapter follows from config.yaml's runtime:, which could not be read
        checks.append(Check("adapter", "skip", "needs a readable config.yaml (or ADAPTER_MODULE)"))
    else:
        checks.append(await _adapter(settings, config))

    if settings is None or config is None:
        checks.append(Check("provider env", "skip", "needs settings and config.yaml"))
    else:
        try:
            plan = (await anyio.to_thread.run_sync(reconcile, settings, environ, config)).plan
            credential = plan.credential
            detail = (
                f"provider {plan.provider}, model {plan.model or '-'}, credential "
                f"{credential.source if credential else '-'} "
                f"{credential.fingerprint if credential else ''}".rstrip()
            )
            if plan.warnings:
                checks.append(
                    Check(
                        "provider env",
                        "warn",
                        detail + "; " + "; ".join(plan.warnings),
                        "see `runtime-adapter env` for every variable",
                    )
                )
            else:
                checks.append(Check("provider env", "pass", detail))
        except ConfigError as error:
            checks.append(Check("provider env", "fail", error.message, error.hint or ""))

    checks.append(await anyio.to_thread.run_sync(_claude_settings, settings, environ, plan))
    checks.append(_isolation(environ, settings))

    if settings is not None:
        checks.append(_delivery(settings))
        checks.append(_callers(settings))
        checks.append(_listen(settings, config))
    if settings is None or not settings.workspace_id:
        checks.append(Check("advertised URL", "skip", "needs WORKSPACE_ID"))
    elif settings.delivery_mode == "poll":
        checks.append(Check("advertised URL", "skip", "poll delivery advertises no URL (§14)"))
    else:
        checks.append(await _advertised(settings, config))

    if settings is None or not settings.platform_url:
        checks.append(Check("platform reachability", "skip", "needs PLATFORM_URL"))
    else:
        checks.append(await _reachable(settings.platform_url))

    if plan is None or settings is None or config is None:
        checks.append(Check("LLM credential probe", "skip", "needs a provider env plan"))
    elif plan.provider is None:
        checks.append(Check("LLM credential probe", "skip", "no LLM provider is configured"))
    else:
        checks.append(await _probe(settings, config, plan))
    return _redacted(checks, plan, settings)


def _redacted(checks: list[Check], plan: EnvPlan | None, settings: Settings | None) -> list[Check]:
    """Every row through one redactor: an upstream that echoes the key in its error, or a
    value that reached a message, never reaches the operator's terminal."""
    redact = Redactor(REDACTOR.secrets())
    if plan is not None:
        redact.add(*(item.value for item in plan.assignments if item.secret))
    if settings is not None:
        redact.add(read_token(settings.config_path))
    return [replace(c, detail=redact(c.detail), remedy=redact(c.remedy)) for c in checks]


async def _adapter(settings: Settings, config: WorkspaceConfig | None) -> Check:
    """Which adapter class ``run`` would start, found and imported (in a worker thread)."""
    where = (
        f"ADAPTER_MODULE={settings.adapter_module}"
        if settings.adapter_module
        else f"entry point {config.runtime!r}"
        if config is not None and config.runtime
        else "nothing configured"
    )
    try:
        adapter = await anyio.to_thread.run_sync(discover_adapter, settings, config)
    except ConfigError as error:
        return Check("adapter", "fail", f"{where}: {error.message}", error.hint or "")
    except Exception as error:  # the template's own import failed
        return Check(
            "adapter",
            "fail",
            f"{where}: importing it raised {type(error).__name__}: {error}",
            "fix the template's import (run python -c 'import MODULE' to see the traceback)",
        )
    return Check("adapter", "pass", f"{adapter.__module__}:{adapter.__qualname__} ({where})")


def _claude_settings(
    settings: Settings | None, environ: Mapping[str, str], plan: EnvPlan | None
) -> Check:
    """Claude Code settings files whose env, apiKeyHelper or model would override the
    host's provider env; the plan's host flag makes the CLI ignore them."""
    home = environ.get("HOME")
    workspace = Path(environ.get("WORKSPACE_DIR", "/workspace"))
    projects = [workspace, Path.cwd()]
    # the user settings the template's CLI reads: its CLAUDE_CONFIG_DIR is the sessions
    # directory (the config volume's .claude-code, else the workspace's)
    configs = [Path(environ["CLAUDE_CONFIG_DIR"])] if environ.get("CLAUDE_CONFIG_DIR") else []
    if settings is not None:
        projects.insert(0, settings.config_path)
        configs.append(settings.config_path / ".claude-code")
    configs.append(workspace / ".claude-code")
    files = settings_files(Path(home) if home else None, projects, config_dirs=configs)
    effective = {**environ, **(plan.values() if plan is not None else {})}
    found = find_overrides(files, effective)
    if not found:
        return Check("Claude Code settings", "pass", f"no provider keys in {len(files)} files")
    detail = "; ".join(item.describe() for item in found)
    if all(item.held for item in found):
        return Check(
            "Claude Code settings",
            "warn",
            detail,
            "remove these keys: the runtime's CLI ignores them, but a CLI started by hand "
            "without CLAUDE_CODE_PROVIDER_MANAGED_BY_HOST=1 would send the key where they say",
        )
    return Check(
        "Claude Code settings",
        "fail",
        detail,
        "fix the provider env (doctor's row above) so the plan sets "
        "CLAUDE_CODE_PROVIDER_MANAGED_BY_HOST=1, and remove these keys",
    )


def _isolation(environ: Mapping[str, str], settings: Settings | None) -> Check:
    """DESIGN §13: what the agent can reach of the runtime's credentials."""
    gateway = settings is None or settings.llm_gateway == "on"
    road = (
        "the agent reaches its LLM through the runtime's gateway and holds no provider key"
        if gateway
        else "LLM_GATEWAY=off: the agent's environment holds the provider credential"
    )
    found = isolation.check(environ)
    if found.separate and gateway:
        return Check(
            "isolation",
            "pass",
            f"{road}; the CLI runs as {found.agent_user} with no capability, the runtime "
            "as another user, not dumpable",
        )
    missing = found.missing or "the runtime and the agent are one user"
    remedy = found.remedy or ""
    if not gateway:
        remedy = "set LLM_GATEWAY=on" + (f"; {remedy}" if remedy else "")
    return Check("isolation", "warn", f"{road}; {missing}", remedy)


def _delivery(settings: Settings) -> Check:
    if settings.delivery_mode == "poll":
        return Check(
            "delivery",
            "pass",
            f"poll (DELIVERY_MODE=poll): registered without a URL, messages pulled from the "
            f"platform every {settings.poll_interval_seconds:g} s ±10 %, replies sent through "
            "it; a message waits about half the interval",
        )
    return Check(
        "delivery",
        "pass",
        "push (DELIVERY_MODE unset or push): the platform calls the advertised URL; a "
        "workspace it cannot reach (NAT, a laptop, another cluster) needs DELIVERY_MODE=poll",
    )


def _listen(settings: Settings, config: WorkspaceConfig | None) -> Check:
    """The port ``run`` would serve on can be bound (nothing else listens there)."""
    port = listen_port(settings, config)
    try:
        bind("0.0.0.0", port).close()  # noqa: S104 - what run binds
    except RuntimeAdapterError as error:
        platform = httpx.URL(settings.platform_url or "http://-")
        mine = platform.port == port and platform.host in ("127.0.0.1", "localhost", "::1")
        said = f"{error}" + ("; it is the platform's own port" if mine else "")
        return Check("listen port", "fail", said, "set PORT (or a2a.port) to a free port")
    return Check("listen port", "pass", f"port {port} is free")


def _callers(settings: Settings) -> Check:
    callers = Callers(settings.a2a_auth)
    if settings.a2a_auth == "bearer":
        raw = settings.a2a_bearer_tokens
        text = raw.get_secret_value() if raw is not None else None
        folder = settings.runtime_secrets_dir
        if text is None and folder is not None and (folder / "A2A_BEARER_TOKENS").is_file():
            text = (folder / "A2A_BEARER_TOKENS").read_text(errors="replace")
        callers.tokens = bearer_tokens(text)
        if not callers.tokens:
            return Check(
                "A2A callers",
                "fail",
                "A2A_AUTH=bearer but no token is set: every A2A request is refused",
                "set A2A_BEARER_TOKENS (comma-separated) or a file A2A_BEARER_TOKENS in "
                "RUNTIME_SECRETS_DIR",
            )
    detail = describe(callers)
    if settings.a2a_auth == "none" and settings.delivery_mode == "push":
        detail += ": anyone who reaches the port may send work (A2A_AUTH=platform or bearer)"
    return Check("A2A callers", "pass", detail)


async def _advertised(settings: Settings, config: WorkspaceConfig | None) -> Check:
    chosen = await advertise(settings, listen_port(settings, config))
    if chosen.predicted_refusal is None:
        return Check("advertised URL", "pass", chosen.explain())
    return Check(
        "advertised URL",
        "warn",
        chosen.explain(),
        "set ADVERTISE_URL or ADVERTISE_HOST to an address the platform can reach "
        "(self-hosted Docker: the platform keeps its provisioner's URL, which is expected)",
    )


async def _reachable(platform_url: str) -> Check:
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=5.0)) as client:
            answer = await client.get(f"{platform_url}/health")
    except httpx.HTTPError as error:
        return Check(
            "platform reachability",
            "fail",
            f"GET {platform_url}/health: {type(error).__name__}: {error}",
            "check PLATFORM_URL, DNS and the network path from this container to the platform",
        )
    if answer.status_code >= 500:
        return Check(
            "platform reachability",
            "fail",
            f"GET {platform_url}/health answered {answer.status_code}",
            "the platform is up but failing; see its logs",
        )
    return Check(
        "platform reachability", "pass", f"GET {platform_url}/health: {answer.status_code}"
    )


async def _probe(settings: Settings, config: WorkspaceConfig, plan: EnvPlan) -> Check:
    apply_plan(plan, os.environ)
    try:
        adapter: BaseAdapter = discover_adapter(settings, config)()
    except ConfigError:
        adapter = BaseAdapter()  # the default probe still tells whether the key works
    health = Health()
    context = AdapterContext(settings=settings, config=config, plan=plan, health=health)
    if await adapter.run_probe(context):
        return Check("LLM credential probe", "pass", f"{plan.provider} accepted the credential")
    error = health.current()
    assert error is not None
    remedy = error.hint or (
        "check the provider's endpoint and the network path to it"
        if error.kind in ("network_error", "timeout")
        else "see the error; `runtime-adapter env` shows the projected variables"
    )
    return Check("LLM credential probe", "fail", error.summary(), remedy)


def as_json(checks: list[Check]) -> dict[str, Any]:
    return {
        "ok": all(check.verdict != "fail" for check in checks),
        "checks": [asdict(check) for check in checks],
    }
