"""Watching the config volume and the secrets while the runtime lives (DESIGN §9, §7).

``wait_for_change`` returns when the volume or the secrets directory changes
(a failed boot then boots again). ``CredentialCheck`` keeps a running
workspace's projection true: when the secrets or the workspace token file
change it plans again and, if the plan changed, applies it and probes again;
while the probe's error is sticky it probes every ``PROBE_RETRY_SECONDS``
(±10 %). File work runs in worker threads; nothing here boots or serves.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio

from .adapter import AdapterContext, BaseAdapter
from .envplan import EnvPlan
from .errors import ConfigError
from .health import Health, classify
from .logs import REDACTOR
from .reconcile import reconcile
from .settings import Settings
from .volume import TOKEN_FILE, WorkspaceConfig

__all__ = ["WATCH_INTERVAL", "CredentialCheck", "signature", "wait_for_change"]

log = logging.getLogger("runtime_adapter.lifecycle")

WATCH_INTERVAL = 1.0

Running = Callable[[], "tuple[WorkspaceConfig | None, BaseAdapter, AdapterContext] | None"]


# what the runtime and the agent write into the config volume themselves: never a
# reason to boot again (the token has its own watch, CredentialCheck)
_OWN = frozenset({".auth_token", ".platform_inbound_secret", ".claude-code", ".a2a", ".a2a_cursor"})
_OWN_TEMPORARY = (".auth_token.", ".platform_inbound_secret.", ".a2a_cursor.")


def signature(*roots: Path | None) -> tuple[tuple[str, int, int], ...]:
    """What changed on the volume or in the secrets dir: names, sizes, mtimes (2 levels),
    leaving out what the runtime and the agent write there themselves."""
    entries: list[tuple[str, int, int]] = []
    for root in roots:
        if root is None:
            continue
        try:
            if not root.is_dir():
                stat = root.stat()
                entries.append((str(root), stat.st_size, stat.st_mtime_ns))
                continue
            children = list(root.iterdir())
        except OSError:
            entries.append((str(root), -1, -1))
            continue
        for child in children:
            if child.name in _OWN or child.name.startswith(_OWN_TEMPORARY):
                continue
            paths = [child]
            if child.is_dir() and not child.is_symlink():
                with contextlib.suppress(OSError):
                    paths += list(child.iterdir())
            for path in paths:
                try:
                    stat = path.stat()
                except OSError:
                    continue
                entries.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


async def wait_for_change(
    *roots: Path | None, since: tuple[tuple[str, int, int], ...] | None = None
) -> None:
    """Return when anything under ``roots`` differs from ``since`` (a ``signature`` taken
    before the boot read them, so a fix made while that boot failed is not missed), or,
    without it, from how they are now."""
    before = since if since is not None else await anyio.to_thread.run_sync(signature, *roots)
    while True:
        await anyio.sleep(WATCH_INTERVAL)
        if await anyio.to_thread.run_sync(signature, *roots) != before:
            return


class CredentialCheck:
    """Re-plans on a credential change and re-probes a refused credential.

    ``running`` gives the booted workspace (None while it is not running), ``planned``
    the plan in force; ``replan`` takes a changed plan and applies it (the runtime
    knows what the agent's environment gets of it).
    """

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str],
        health: Health,
        *,
        running: Running,
        planned: Callable[[], EnvPlan | None],
        replan: Callable[[EnvPlan], None],
    ) -> None:
        self.settings, self.environ, self.health = settings, environ, health
        self.running, self.planned, self.replan = running, planned, replan

    def _delay(self) -> float:
        return self.settings.probe_retry_seconds * random.uniform(0.9, 1.1)  # noqa: S311

    async def run(self) -> None:
        roots = (self.settings.runtime_secrets_dir, self.settings.config_path / TOKEN_FILE)
        before = await anyio.to_thread.run_sync(signature, *roots)
        retry_at = time.monotonic() + self._delay()
        while True:
            await anyio.sleep(WATCH_INTERVAL)
            current = self.running()
            if current is None:
                continue
            config, adapter, context = current
            now = await anyio.to_thread.run_sync(signature, *roots)
            changed, before = now != before, now
            sticky = any(e.source == "llm_probe" for e in self.health.errors())
            due = sticky and time.monotonic() >= retry_at
            if changed:
                try:
                    reconciled = await anyio.to_thread.run_sync(
                        reconcile, self.settings, self.environ, config
                    )
                except ConfigError as error:
                    self.health.record_failure(classify(error, "config", redact=REDACTOR))
                    continue
                self.health.record_success("config")
                current_plan = self.planned()
                if current_plan is None or reconciled.plan.target() != current_plan.target():
                    REDACTOR.add(*(a.value for a in reconciled.plan.assignments if a.secret))
                    self.replan(reconciled.plan)
                    log.info("credentials changed: provider env planned and applied again")
                    due = True
            if not due:
                continue
            retry_at = time.monotonic() + self._delay()
            if await adapter.run_probe(context):
                log.info("credential probe passed")
