"""The supervisor of the container main process (DESIGN §9): ``Runtime``.

It runs one boot attempt at a time (``boot.Boot``), wires the platform
(advertise, register, heartbeats), serves, re-checks credentials while
running (``watch.CredentialCheck``), and owns the one shutdown. A boot that
fails on the volume, the env plan or the adapter does not end the process:
it serves ``/health`` 503, registers with a minimal card, heartbeats the
structured error with ``runtime_state: "wedged"``, and boots again when the
config volume or secrets directory changes. SIGTERM/SIGINT: a last
heartbeat, a bounded adapter stop, exit 0. Steps are raced against the stop
request with cancel scopes (``Stopping.guard``).
"""

from __future__ import annotations

import contextlib
import enum
import gc
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from dataclasses import replace
from typing import Any

import anyio
import httpx

from . import isolation, prefetch, telemetry
from .adapter import AdapterContext, BaseAdapter
from .advertise import Advertisement, advertise, listen_port
from .boot import Boot, BootFailed, Stages, stop_adapter
from .card import build_card, minimal_card
from .envplan import EnvPlan, agent_plan, apply_plan
from .errors import ConfigError, RuntimeAdapterError, SettingsError
from .gateway import Gateway, Outcomes
from .health import Health, LLMContext, classify, classify_status
from .heartbeat import Heartbeat, RuntimeStatus
from .inbound import Callers, bearer_tokens, describe, limit_body
from .logs import REDACTOR
from .platform import PlatformClient
from .poll import Cursor, InProcess, PollLoop
from .server import ServerState, bind, build_app, serve
from .settings import Settings
from .tokens import TokenStore
from .volume import INBOUND_SECRET_FILE, WorkspaceConfig
from .watch import CredentialCheck, signature, wait_for_change

__all__ = ["Phase", "Runtime", "Stopping"]

log = logging.getLogger(__name__)

WATCH_INTERVAL = 1.0
SHUTDOWN_BUDGET = 8.0


def _collect_again() -> None:
    """Turn the garbage collector back on if ``run`` turned it off for the boot; what the
    boot built stays for the process's life, so it is frozen out of every collection."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


class Phase(enum.Enum):
    """Where the process is; transitions only go forward, except FAILED → BOOTING."""

    CREATED = "created"
    BOOTING = "booting"
    RUNNING = "running"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


# the server starts serving once the first register attempt is out, or after this long
_SERVE_AFTER = 1.0
# the gateway serves once the first register and probe are done, or after this long
_GATEWAY_AFTER = 3.0

_ALLOWED = {
    Phase.CREATED: {Phase.BOOTING, Phase.STOPPING},
    Phase.BOOTING: {Phase.RUNNING, Phase.FAILED, Phase.STOPPING},
    Phase.FAILED: {Phase.BOOTING, Phase.STOPPING},
    Phase.RUNNING: {Phase.STOPPING},
    Phase.STOPPING: {Phase.STOPPED},
    Phase.STOPPED: set(),
}


class Stopping:
    """The stop request, and the cancel scopes of the steps it ends.

    ``with stopping.guard(): await step()`` runs the step until it returns or the stop
    is requested, whichever comes first: ``set()`` cancels every guarded scope.
    """

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._scopes: set[anyio.CancelScope] = set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()
        for scope in list(self._scopes):
            scope.cancel()

    async def wait(self) -> None:
        await self._event.wait()

    @contextmanager
    def guard(self) -> Iterator[anyio.CancelScope]:
        with anyio.CancelScope() as scope:
            if self._event.is_set():
                scope.cancel()
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)


class Runtime:
    """One workspace process. ``await Runtime(settings, environ).run()``.

    ``environ`` is the environment as the process started: every plan is
    made from it, never from what an earlier plan applied, so a reboot
    cannot inherit a stale projection. ``platform_transport`` is for tests.
    """

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str],
        *,
        platform_transport: httpx.AsyncBaseTransport | None = None,
        host: str = "0.0.0.0",  # noqa: S104 - the runtime serves the platform's proxy
        settings_error: ConfigError | None = None,
    ) -> None:
        if not settings.workspace_id or not settings.platform_url:
            raise ValueError("Runtime needs WORKSPACE_ID and PLATFORM_URL")
        self.settings = settings
        self.workspace_id: str = settings.workspace_id
        self.platform_url: str = settings.platform_url
        self.environ = dict(environ)
        self.platform_transport = platform_transport
        self.host = host
        self.health = Health()
        self.status = RuntimeStatus()
        self.phase = Phase.CREATED
        self.config: WorkspaceConfig | None = None
        self.plan: EnvPlan | None = None
        self.adapter: BaseAdapter | None = None
        self.context: AdapterContext | None = None
        self.url = ""
        self.advertisement: Advertisement | None = None
        self.heartbeat: Heartbeat | None = None
        self.started = time.monotonic()
        # the credential the platform presents when it calls us (§7), and who may (§12)
        self._inbound = TokenStore(
            settings.config_path,
            on_token=REDACTOR.add,
            file=INBOUND_SECRET_FILE,
            what="platform inbound secret",
        )
        self.server_state = ServerState(
            self.health,
            self.card,
            details=self._details,
            callers=Callers(settings.a2a_auth, secret=lambda: self._inbound.token),
            max_request_bytes=settings.a2a_max_request_bytes,
        )
        self._boot_error = ""
        self._group: anyio.abc.TaskGroup | None = None
        self._boot: Boot | None = None  # the current or last boot attempt
        self._tokens: TokenStore | None = None
        self._read: tuple[tuple[str, int, int], ...] | None = None
        self._boot_quiet = anyio.Event()  # the first register and probe are done
        self.poll: PollLoop | None = None  # DELIVERY_MODE=poll (§14)
        self._stop_serving = anyio.Event()
        self._budget_deadline: float | None = None
        self._in_process: InProcess | None = None
        # the agent's only road to its LLM, and the only holder of the credential (§13)
        self.gateway: Gateway | None = None
        self._gateway_sock: socket.socket | None = None
        if settings.llm_gateway == "on":
            self.gateway = Gateway(
                lambda: self.plan,
                outcomes=Outcomes(success=self._llm_success, failure=self._llm_failure),
                redact=REDACTOR,
            )
        self.adapter_name = ""
        self._boot_reported = False
        self._boot_work: set[str] = set()  # with the collector off until it is done
        self.exit_code = 0
        # a bad setting when WORKSPACE_ID and PLATFORM_URL are still usable: every boot
        # fails with it, and the process reports it instead of exiting (no crash loop)
        self.settings_error = settings_error

    # -- state ------------------------------------------------------------------------

    def _enter(self, phase: Phase) -> None:
        if phase not in _ALLOWED[self.phase]:
            raise RuntimeError(f"lifecycle cannot go from {self.phase.value} to {phase.value}")
        log.debug("phase %s -> %s", self.phase.value, phase.value)
        self.phase = phase

    def card(self) -> dict[str, Any]:
        if self.server_state.booted and self.config is not None and self.adapter is not None:
            adapter = self.adapter
            return build_card(
                self.config,
                self.url,
                name=adapter.display_name or None,
                description=adapter.description,
                skills=list(adapter.skills(self.config)),
                default_name=adapter.name or self.workspace_id,
                streaming=adapter.streaming,
                auth=self.settings.a2a_auth,
            )
        name = (self.config.name if self.config else None) or self.workspace_id
        return minimal_card(name, self.url, f"not running: {self._boot_error}"[:300])

    def _details(self) -> dict[str, Any]:
        return {
            "phase": self.phase.value,
            "provider": self.plan.provider if self.plan else None,
            "model": self.plan.model if self.plan else None,
            "url": self.url,
            "uptime_seconds": int(time.monotonic() - self.started),
        }

    # -- boot -------------------------------------------------------------------------

    async def boot(self) -> bool:
        """One boot attempt (``boot.Boot``), its outcome taken over here. True on success."""
        self._enter(Phase.BOOTING)
        # what the boot is about to read: a change from here on boots again, even one
        # made before the failed boot's watch begins
        self._read = await anyio.to_thread.run_sync(
            signature, self.settings.config_path, self.settings.runtime_secrets_dir
        )
        if self.gateway is not None:
            self.gateway.token = secrets.token_urlsafe(32)  # new every boot
        callers = self.server_state.callers
        settings_error = self.settings_error
        if settings_error is None and callers.mode == "bearer":
            try:
                callers.tokens = await anyio.to_thread.run_sync(self._bearer_tokens)
            except ConfigError as error:
                settings_error = error
        attempt = self._boot = Boot(
            self.settings,
            self.environ,
            health=self.health,
            status=self.status,
            spawn=self._group.start_soon if self._group is not None else None,
            settings_error=settings_error,
            before_start=self._before_start,
            agent_plan=self._agent_plan if self.gateway is not None else None,
            token=lambda: self._tokens.token if self._tokens is not None else None,
            direct=lambda: self.plan,
        )
        try:
            booted = await attempt()
        except BootFailed as failure:
            self.config = attempt.config or self.config
            self.plan = attempt.plan or self.plan
            return self._failed(failure.error, failure.text)
        self.config, self.plan = booted.config, booted.plan
        self.adapter, self.context = booted.adapter, booted.context
        self.adapter_name = booted.adapter.name
        self.health.record_success("config")
        self.health.record_success("runtime")
        self.server_state.set_routes(booted.adapter.routes(booted.context))
        self.server_state.booted = True
        self._boot_error = ""
        self._enter(Phase.RUNNING)
        return True

    def _bearer_tokens(self) -> tuple[str, ...]:
        """``A2A_BEARER_TOKENS``: the variable, else the file of that name in the secrets
        dir; ``A2A_AUTH=bearer`` without any is a settings error (fail closed)."""
        raw = self.settings.a2a_bearer_tokens
        text = raw.get_secret_value() if raw is not None else None
        where = self.settings.runtime_secrets_dir
        if text is None and where is not None:
            with contextlib.suppress(OSError):
                text = (where / "A2A_BEARER_TOKENS").read_bytes()[:65536].decode("utf-8", "replace")
        tokens = bearer_tokens(text)
        if not tokens:
            raise SettingsError(
                "A2A_AUTH=bearer needs the tokens callers may present",
                hint="set A2A_BEARER_TOKENS (comma-separated) or put a file A2A_BEARER_TOKENS "
                "in RUNTIME_SECRETS_DIR; A2A requests are refused until then",
                variable="A2A_BEARER_TOKENS",
            )
        REDACTOR.add(*tokens)
        return tokens

    def _agent_plan(self, plan: EnvPlan) -> EnvPlan:
        """The plan as the agent gets it: the gateway's loopback URL and token."""
        assert self.gateway is not None
        if self._gateway_sock is None:
            self._gateway_sock = bind("127.0.0.1", 0)
        port = self._gateway_sock.getsockname()[1]
        return agent_plan(plan, url=f"http://127.0.0.1:{port}", token=self.gateway.token)

    def _llm_success(self) -> None:
        self.health.record_success("llm_call")
        telemetry.count("llm.outcomes", kind="success")

    def _llm_failure(self, status: int, message: str) -> None:
        llm = LLMContext.from_plan(self.plan) if self.plan is not None else None
        failure = classify_status(status, message, "llm_call", llm, redact=REDACTOR)
        self.health.record_failure(failure)
        telemetry.count("llm.outcomes", kind=failure.kind)

    @property
    def stages(self) -> Stages:
        """The stages of the current (or last) boot attempt."""
        return self._boot.stages if self._boot is not None else Stages()

    async def _before_start(self, adapter: BaseAdapter, context: AdapterContext) -> None:
        self.adapter_name = adapter.name
        self.plan = self._boot.plan if self._boot is not None else context.plan
        await self._start_telemetry()  # before the probe, so the probe is traced
        self._probe_soon(adapter, context)

    def _probe_soon(self, adapter: BaseAdapter, context: AdapterContext) -> None:
        """The credential probe runs beside the rest of the boot; register never waits
        for it, and its outcome reaches the platform as soon as it is known (§8)."""
        stages = self.stages

        async def probe() -> None:
            try:
                with stages("probe"):
                    passed = await adapter.run_probe(context)
            finally:
                self._boot_work_done("probe")
            log.info("credential probe %s", "passed" if passed else "failed")

        if self._group is None:
            return
        self._boot_work.add("probe")
        self._group.start_soon(probe)

    def _boot_work_done(self, name: str) -> None:
        """The first register and the first probe (its SDK import, ~1 s) run with the
        garbage collector off when ``run`` turned it off; it comes back after both."""
        self._boot_work.discard(name)
        if not self._boot_work:
            _collect_again()
            self._boot_quiet.set()

    def _failed(self, error: Any, text: str) -> bool:
        self.health.record_failure(error)
        self._boot_error = REDACTOR(text)
        self.server_state.booted = False
        self.server_state.set_routes([])
        log.error("boot failed, serving /health 503 and reporting: %s", error.summary())
        self._enter(Phase.FAILED)
        return False

    # -- platform ---------------------------------------------------------------------

    def _port(self) -> int:
        return listen_port(self.settings, self.config)

    async def _advertise(self, port: int) -> Advertisement:
        with self.stages("advertise"):
            chosen = await advertise(self.settings, port)
        log.info("%s", chosen.explain())
        if chosen.predicted_refusal:
            log.info(
                "the platform will probably refuse %s (%s) and keep the URL its provisioner "
                "stored; registering anyway",
                chosen.url,
                chosen.predicted_refusal,
            )
        return chosen

    def _running(self) -> tuple[WorkspaceConfig | None, BaseAdapter, AdapterContext] | None:
        if self.phase is not Phase.RUNNING or self.adapter is None or self.context is None:
            return None
        return self.config, self.adapter, self.context

    def _replan(self, plan: EnvPlan) -> None:
        """A changed plan while running: the gateway uses it from the next request on;
        the agent's environment changes only if what the agent gets of it changed (a
        rotated key does not), so a live CLI is kept unless it must go."""
        self.plan = plan
        agent = self._agent_plan(plan) if self.gateway is not None else plan
        apply_plan(agent, os.environ)
        if self.context is not None and agent.target() != self.context.plan.target():
            self.context.plan = agent

    async def _check_reachable(self) -> None:
        """GET <advertised>/health from inside, once, and log what happened."""
        try:
            async with httpx.AsyncClient(timeout=3) as client:
                answer = await client.get(f"{self.url}/health")
            log.info("self-check: GET %s/health answered %s", self.url, answer.status_code)
        except httpx.HTTPError as error:
            log.warning("self-check: GET %s/health failed: %s", self.url, error)

    # -- run --------------------------------------------------------------------------

    async def run(self) -> None:
        """Boot, serve, register and heartbeat until SIGTERM/SIGINT or cancellation.

        One shutdown path: whatever ends the run (a signal, a cancel from outside, a
        port that cannot be bound), the ``finally`` stops accepting work, sends a last
        heartbeat and stops the adapter, within one budget nothing inside extends.
        """
        stopping = Stopping()
        self._protect()
        async with AsyncExitStack() as stack, anyio.create_task_group() as group:
            self._group = group
            try:
                await self._main(stack, group, stopping)
            finally:
                _collect_again()
                await self._shutdown()
                group.cancel_scope.cancel()
        self._enter(Phase.STOPPED)

    def _protect(self) -> None:
        """DESIGN §13: this process holds the credentials, so no agent process may read
        its memory or environ; and say once what isolation from the agent there is."""
        if not isolation.make_non_dumpable():
            log.warning("could not make the runtime non-dumpable (prctl failed)")
        found = isolation.check()
        if found.separate:
            log.info("the agent runs as %s, the runtime as uid %s", found.agent_user, os.getuid())
        elif os.environ.get("AGENT_USER"):
            # the image asked for two users and did not get them
            log.warning("agent isolation: %s; %s", found.missing, found.remedy)

    async def _main(
        self, stack: AsyncExitStack, group: anyio.abc.TaskGroup, stopping: Stopping
    ) -> None:
        group.start_soon(self._signals, stopping)
        self._boot_work.add("register")
        # the platform client first: building it imports httpcore and h11, which is
        # quicker before the probe's import thread starts competing for the GIL
        tokens = self._tokens = TokenStore(self.settings.config_path, on_token=REDACTOR.add)
        await anyio.to_thread.run_sync(self._inbound.refresh)  # one a last run was sent
        log.info("%s", describe(self.server_state.callers))
        client = await stack.enter_async_context(
            PlatformClient(
                self.platform_url,
                self.workspace_id,
                tokens,
                inbound=self._inbound,
                delivery=self.settings.delivery_mode,
                transport=self.platform_transport,
                tls=prefetch.tls_context(),
            )
        )
        booted = False
        with stopping.guard():
            booted = await self.boot()
        if stopping.is_set():
            return
        sock = None
        try:
            with self.stages("listen"):
                sock = bind(self.host, self._port())
            port = sock.getsockname()[1]
        except RuntimeAdapterError as error:
            port = self._port()
            self._cannot_listen(self._port_problem(port, error))
        if self.poll_mode:
            # no inbound route (§14): callers reach us through the platform's proxy
            self.url = f"{self.platform_url.rstrip('/')}/workspaces/{self.workspace_id}/a2a"
            log.info(
                "delivery: poll every %.1f s (DELIVERY_MODE=poll): registered without a URL; "
                "the card names the platform's proxy %s; /health is served on port %s",
                self.settings.poll_interval_seconds,
                self.url,
                port,
            )
        else:
            self.advertisement = await self._advertise(port)
            self.url = self.advertisement.url
        heartbeat = Heartbeat(
            client,
            self.health,
            url=self.url,
            card=self.card,
            interval=self.settings.heartbeat_interval_seconds,
            backoff_cap=self.settings.heartbeat_backoff_cap_seconds,
            status=lambda: self.status,
            started=self.started,
        )
        self.heartbeat = heartbeat
        if sock is None:
            # never register the platform's own address (PORT = its port on this host);
            # otherwise register once so the platform hears why (the last beat in the
            # shutdown follows), then exit
            if not self._is_platform_address(port):
                with anyio.move_on_after(10):
                    await heartbeat.register_once()
            return
        registered = anyio.Event()
        group.start_soon(self._serve, sock, registered, stopping)
        if self.gateway is not None and self._gateway_sock is not None:
            group.start_soon(self._serve_gateway, self.gateway, self._gateway_sock)
        with self.stages("register"), stopping.guard():
            await group.start(heartbeat.run)
        registered.set()
        self._boot_work_done("register")
        await self._report_boot()
        if self.poll_mode:
            self._start_poll(client, group)
        else:
            group.start_soon(self._check_reachable)
        check = CredentialCheck(
            self.settings,
            self.environ,
            self.health,
            running=self._running,
            planned=lambda: self.plan,
            replan=self._replan,
        )
        group.start_soon(check.run)
        while not booted and not stopping.is_set():
            with stopping.guard():
                await wait_for_change(self.settings.config_path, self.settings.runtime_secrets_dir)
                log.info("config volume or secrets changed; booting again")
            if stopping.is_set():
                break
            if self.config is not None and self._port() != port:
                log.warning(
                    "the new config asks for port %s; the server keeps %s until restart",
                    self._port(),
                    port,
                )
            with stopping.guard():
                booted = await self.boot()
        await stopping.wait()

    @property
    def poll_mode(self) -> bool:
        return self.settings.delivery_mode == "poll"

    def _start_poll(self, client: PlatformClient, group: anyio.abc.TaskGroup) -> None:
        """The pull loop (§14): rows go to the adapter's routes in-process, once booted."""
        state = self.server_state
        self._in_process = InProcess(
            limit_body(lambda *args: state._router(*args), state.max_request_bytes)
        )
        self.poll = PollLoop(
            client,
            self.health,
            call=self._in_process,
            cursor=Cursor(self.settings.config_path),
            interval=self.settings.poll_interval_seconds,
            cap=self.settings.heartbeat_backoff_cap_seconds,
            ready=lambda: state.booted and state.accepting,
        )
        group.start_soon(self.poll.run)

    async def _serve(
        self, sock: socket.socket, registered: anyio.Event, stopping: Stopping
    ) -> None:
        """Serve the bound socket once the first register attempt is out (or after
        ``_SERVE_AFTER`` at most): importing uvicorn then does not delay it. Until
        then a connection waits in the listen backlog."""
        with anyio.move_on_after(_SERVE_AFTER):
            await registered.wait()
        try:
            await serve(
                build_app(self.server_state),
                sock,
                stop=self._stop_serving,
                drain_until=lambda: self._budget_deadline,
            )
        except RuntimeAdapterError as error:
            self._cannot_listen(error)
            stopping.set()

    async def _serve_gateway(self, gateway: Gateway, sock: socket.socket) -> None:
        """The gateway on its loopback socket once the boot's own work is done; a
        request meanwhile waits in the backlog."""
        # after the boot's own work (its imports in threads compete for the GIL): no
        # agent request can come before the first A2A message anyway
        with anyio.move_on_after(_GATEWAY_AFTER):
            await self._boot_quiet.wait()
        await anyio.to_thread.run_sync(gateway.open, prefetch.tls_context(0))
        try:
            await serve(gateway.app, sock, drain_until=lambda: self._budget_deadline)
        except RuntimeAdapterError as error:
            self._cannot_listen(error)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await gateway.aclose()

    def _is_platform_address(self, port: int) -> bool:
        """``PLATFORM_URL`` is on this host and on ``port``."""
        platform = httpx.URL(self.platform_url)
        local = platform.host in ("127.0.0.1", "localhost", "::1", "0.0.0.0")  # noqa: S104
        return local and (platform.port or {"http": 80, "https": 443}[platform.scheme]) == port

    def _port_problem(self, port: int, error: RuntimeAdapterError) -> ConfigError:
        """A port that cannot be bound is the operator's to change: say which, and when
        the platform itself listens there (``PLATFORM_URL`` on this host, same port)."""
        same = self._is_platform_address(port)
        return ConfigError(
            f"PORT {port}: {error}"
            + (f"; it is the platform's own port ({self.platform_url})" if same else ""),
            hint="set PORT (or a2a.port in config.yaml) to a free port",
            variable="PORT",
        )

    def _cannot_listen(self, error: RuntimeAdapterError) -> None:
        # reported before the process ends: a silent exit is what §2's incidents were
        if isinstance(error, ConfigError):
            crash = classify(error, "config", redact=REDACTOR)
        else:
            crash = replace(
                classify(error, "runtime", redact=REDACTOR), kind="runtime_crash", severity="error"
            )
        self.health.record_failure(crash, operation="listen")
        self.exit_code = 1
        log.error("%s; reporting it and shutting down", error)

    async def _start_telemetry(self) -> None:
        """OpenTelemetry, when OTEL_* asks for it: the SDK imported in a worker thread,
        the resource naming this workspace, and the boot's stages as spans."""
        if not telemetry.enabled():
            return
        resource: dict[str, str] = {
            "workspace.id": self.workspace_id,
            "runtime_adapter.template": self.adapter_name
            or (self.config.runtime if self.config else None)
            or "",
            "gen_ai.provider.name": (self.plan.provider if self.plan else None) or "",
            "gen_ai.request.model": (self.plan.model if self.plan else None) or "",
        }
        await anyio.to_thread.run_sync(telemetry.setup, resource, REDACTOR)

    async def _report_boot(self) -> None:
        """The boot's stages as spans, once, when telemetry is on."""
        await self._start_telemetry()
        if telemetry.active() and not self._boot_reported:
            self._boot_reported = True
            telemetry.emit_stages(
                "boot", list(self.stages.measured), **{"workspace.id": self.workspace_id}
            )

    async def _signals(self, stopping: Stopping) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for received in signals:
                name = signal.Signals(received).name
                if stopping.is_set():
                    # the receiver stays open: a second signal must not kill the shutdown
                    log.info("received %s again; already shutting down", name)
                    continue
                log.info("received %s; shutting down", name)
                stopping.set()

    async def _shutdown(self) -> None:
        """Stop accepting work, a last heartbeat and a bounded adapter stop, all within
        one shielded budget that nothing inside can extend."""
        if self.phase is Phase.STOPPING:
            return
        self._enter(Phase.STOPPING)
        self.server_state.accepting = False  # new A2A work gets 503 from now on
        self._stop_serving.set()  # no new connection; open ones finish while we stop
        with anyio.CancelScope(shield=True) as budget:
            budget.deadline = anyio.current_time() + SHUTDOWN_BUDGET
            # the server's wait for open connections ends with this budget too
            self._budget_deadline = budget.deadline + 0.5
            if self.poll is not None:
                # before the adapter stops: a row its stop cancels is not done, and not
                # answered "canceled"; the next process runs it
                await self.poll.stop()
            if self.heartbeat is not None:
                with anyio.move_on_after(2):
                    try:
                        await self.heartbeat.beat()
                    except Exception as error:  # best effort on the way out
                        log.warning("last heartbeat failed: %s", error)
            adapter = self.adapter or (self._boot.starting if self._boot else None)
            if adapter is not None:
                await stop_adapter(adapter, budget.deadline)
            if self._in_process is not None:
                with anyio.move_on_after(1):
                    await self._in_process.aclose()
            if telemetry.active():
                await anyio.to_thread.run_sync(telemetry.shutdown, 1.5, abandon_on_cancel=True)
        log.info("stopped")
