"""The URL this workspace advertises to the platform (DESIGN §6).

``choose_url`` is pure: given the settings and the network facts gathered
once (``gather_facts``, which does the DNS and socket work and belongs in a
worker thread), it tries the candidates in order and predicts the
platform's verdict for each. It never advertises a bind address or a
container-id hostname, and it explains every candidate it tried.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx

from ._netrules import address_verdict, url_verdict
from .settings import Settings
from .volume import WorkspaceConfig

__all__ = [
    "DEFAULT_PORT",
    "Advertisement",
    "Candidate",
    "NetworkFacts",
    "advertise",
    "checked_client",
    "choose_url",
    "gather_facts",
    "listen_port",
]

DEFAULT_PORT = 8000

_CONTAINER_ID = re.compile(r"[0-9a-f]{12}([0-9a-f]{52})?\Z")
_BIND_ADDRESSES = frozenset({"0.0.0.0", "::", "[::]"})  # noqa: S104 - refused, not bound


@dataclass(frozen=True)
class NetworkFacts:
    """What this container knows about its network, gathered once (I/O)."""

    own_addresses: frozenset[str] = frozenset()
    resolved: Mapping[str, Sequence[str]] = field(default_factory=dict)
    hosts_file_names: frozenset[str] = frozenset()
    route_address: str | None = None


@dataclass(frozen=True)
class Candidate:
    """One candidate URL, where it came from, and why it was refused (None: accepted)."""

    source: str
    url: str | None
    refusal: str | None
    never: bool = False  # structurally unusable (bind address, container id): never advertised

    def line(self) -> str:
        if self.url is None:
            return f"{self.source}: skipped ({self.refusal})"  # nothing to refuse
        verdict = "accepted" if self.refusal is None else f"refused: {self.refusal}"
        return f"{self.source}: {self.url} {verdict}"


@dataclass(frozen=True)
class Advertisement:
    """The chosen URL, every candidate with its verdict, and whether the platform
    is predicted to refuse it (then registration is still tried: a newer platform
    may accept)."""

    url: str
    candidates: tuple[Candidate, ...]
    predicted_refusal: str | None
    mode: str

    def explain(self) -> str:
        lines = [f"advertised URL {self.url} (platform URL rules: {self.mode})"]
        lines += [f"  {index}. {c.line()}" for index, c in enumerate(self.candidates, 1)]
        if self.predicted_refusal:
            lines.append(f"  the platform is expected to refuse it: {self.predicted_refusal}")
        return "\n".join(lines)


def _host_url(host: str, port: int) -> str:
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            host = f"[{host}]"
    except ValueError:
        pass
    return f"http://{host}:{port}"


def _name_problem(host: str, facts: NetworkFacts) -> tuple[str | None, bool]:
    """(why ``host`` may never be advertised, True) or (None, False)."""
    bare = host.strip("[]").lower()
    if bare in {"0.0.0.0", "::"}:  # noqa: S104 - refused, not bound
        return f"{host} is a bind address, not one anyone can reach", True
    try:
        ipaddress.ip_address(bare)
        return None, False
    except ValueError:
        pass
    if _CONTAINER_ID.match(bare):
        return f"{host} looks like a container id, which only this container resolves", True
    if bare in facts.hosts_file_names and not facts.resolved.get(bare):
        return f"{host} resolves only through this container's /etc/hosts", True
    return None, False


def choose_url(
    *,
    port: int,
    workspace_id: str | None,
    platform_url: str | None,
    saas: bool,
    facts: NetworkFacts,
    advertise_url: str | None = None,
    advertise_host: str | None = None,
    pod_ip: str | None = None,
) -> Advertisement:
    """Try the §6 candidates in order; the first the platform is predicted to accept wins."""
    platform_host = urlsplit(platform_url).hostname if platform_url else None
    mode = "saas" if saas else "self-hosted"
    if platform_host and _is_loopback(platform_host, facts):
        mode = "local"  # the platform shares our loopback (dev): it can reach 127.0.0.1

    def verdict(source: str, url: str | None, missing: str) -> Candidate:
        if url is None:
            return Candidate(source, None, missing, never=True)
        host = urlsplit(url).hostname or ""
        problem, never = _name_problem(host, facts)
        if problem:
            return Candidate(source, url, problem, never=never)
        return Candidate(source, url, url_verdict(url, mode, facts.resolved.get(host.lower())))

    alias = f"ws-{workspace_id[:12]}" if workspace_id else None
    alias_url = None
    alias_missing = "WORKSPACE_ID is not set"
    if alias is not None:
        mine = set(facts.resolved.get(alias, ())) & facts.own_addresses
        if mine:
            alias_url = _host_url(alias, port)
        else:
            alias_missing = f"{alias} does not resolve to an address of this container"
    candidates = (
        verdict("ADVERTISE_URL", advertise_url, "not set"),
        verdict(
            "ADVERTISE_HOST",
            _host_url(advertise_host, port) if advertise_host else None,
            "not set",
        ),
        verdict("POD_IP", _host_url(pod_ip, port) if pod_ip else None, "not set"),
        verdict("network alias", alias_url, alias_missing),
        verdict(
            "route to the platform",
            _host_url(facts.route_address, port) if facts.route_address else None,
            "no interface routes to the platform",
        ),
    )
    for candidate in candidates:
        if candidate.refusal is None and candidate.url is not None:
            return Advertisement(candidate.url, candidates, None, mode)
    usable = [c for c in candidates if not c.never and c.url is not None]
    if usable:
        best = usable[0]
        return Advertisement(best.url or "", candidates, best.refusal, mode)
    fallback = _host_url("127.0.0.1", port)
    return Advertisement(fallback, candidates, "no candidate is reachable from outside", mode)


def _is_loopback(host: str, facts: NetworkFacts) -> bool:
    addresses = [host] if _is_ip(host) else list(facts.resolved.get(host.lower(), ()))
    if host == "localhost":
        addresses.append("127.0.0.1")
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def _route_address(host: str, port: int) -> str | None:
    """The local address of the interface that routes to ``host`` (no packet is sent)."""
    for family, _, _, _, address in _safe_getaddrinfo(host, port):
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect(address)
                return str(probe.getsockname()[0])
            except OSError:
                continue
    return None


def _safe_getaddrinfo(host: str, port: int) -> list[tuple[int, int, int, str, tuple[str, int]]]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return []
    return [(int(f), int(t), p, c, (str(a[0]), int(a[1]))) for f, t, p, c, a in infos]


def _hosts_file_names(path: Path) -> frozenset[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return frozenset()
    names: set[str] = set()
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        names.update(name.lower() for name in fields[1:])
    return frozenset(names)


def gather_facts(
    *,
    platform_url: str | None,
    names: Sequence[str],
    hosts_file: Path = Path("/etc/hosts"),
) -> NetworkFacts:
    """Blocking DNS and socket work: run it in a worker thread (``anyio.to_thread``).

    Names in ``/etc/hosts`` are resolved through DNS only, so a container's own
    hostname (which only its hosts file knows) does not count as resolvable.
    """
    hosts_names = _hosts_file_names(hosts_file)
    resolved: dict[str, list[str]] = {}
    for name in {n.lower() for n in names if n and not _is_ip(n.strip("[]"))}:
        resolved[name] = [] if name in hosts_names else _resolve(name)
    route = None
    own = set(_resolve(socket.gethostname()))
    if platform_url:
        parts = urlsplit(platform_url)
        if parts.hostname:
            if not _is_ip(parts.hostname):
                resolved.setdefault(parts.hostname.lower(), _resolve(parts.hostname))
            route = _route_address(parts.hostname, parts.port or 443)
    if route:
        own.add(route)
    return NetworkFacts(
        own_addresses=frozenset(own),
        resolved=resolved,
        hosts_file_names=hosts_names,
        route_address=route,
    )


def listen_port(settings: Settings, config: WorkspaceConfig | None) -> int:
    """``PORT``, else config ``a2a.port``, else 8000."""
    if settings.port is not None:
        return settings.port
    if config is not None and config.a2a.port is not None:
        return config.a2a.port
    return DEFAULT_PORT


async def advertise(settings: Settings, port: int) -> Advertisement:
    """Gather the network facts in a worker thread, then choose the URL (DESIGN §6)."""
    workspace_id = settings.workspace_id or ""
    # ADVERTISE_URL's host is resolved like ADVERTISE_HOST: an operator's ingress name
    # must not be predicted refused (and lose to the pod IP) just for being a name
    url_host = urlsplit(settings.advertise_url).hostname if settings.advertise_url else None
    names = [n for n in (url_host, settings.advertise_host, f"ws-{workspace_id[:12]}") if n]
    facts = await anyio.to_thread.run_sync(
        lambda: gather_facts(platform_url=settings.platform_url, names=names)
    )
    return choose_url(
        port=port,
        workspace_id=workspace_id or None,
        platform_url=settings.platform_url,
        saas=settings.saas,
        facts=facts,
        advertise_url=settings.advertise_url,
        advertise_host=settings.advertise_host,
        pod_ip=settings.pod_ip,
    )


def platform_mode(settings: Settings) -> str:
    """§6's mode for addresses this workspace calls on a caller's behalf: ``local``
    when the platform is on our loopback (``dev``), else the deploy mode."""
    host = urlsplit(settings.platform_url or "").hostname or ""
    addresses = [host] if _is_ip(host) else _resolve(host) if host else []
    loopback = bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)
    if host == "localhost" or loopback:
        return "local"
    return "saas" if settings.saas else "self-hosted"


async def url_problem(url: str, mode: str) -> str | None:
    """Why a caller-chosen URL (a push webhook) must not be called, by §6's rules in
    ``mode`` (no metadata, link-local, reserved address; loopback only in ``local``),
    every address its host resolves to checked; or None. A host that does not
    resolve is refused: fail closed."""
    try:
        parts = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "not a URL"
    if parts.scheme not in ("http", "https") or not parts.host:
        return "not an http:// or https:// URL with a host"
    host = parts.host
    if _is_ip(host):
        addresses = [host]
    else:
        try:
            with anyio.fail_after(5):
                infos = await anyio.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError, TimeoutError):
            return "its host does not resolve"
        addresses = sorted({str(info[4][0]) for info in infos})
    for address in addresses:
        problem = address_verdict(address, mode)
        if problem is not None:
            return problem
    return None


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Connects only where ``url_problem``'s rules allow, to the very address it checked:
    the host is resolved once per connection and every address checked, so a DNS name
    that answers differently at send time (rebinding) cannot reach a refused address."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if _is_ip(host):
            addresses = [host]
        else:
            try:
                with anyio.fail_after(5):
                    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError, TimeoutError) as error:
                raise httpcore.ConnectError(f"{host} does not resolve") from error
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            problem = address_verdict(address, self.mode)
            if problem is not None:
                raise httpcore.ConnectError(f"refused to connect to {host}: {problem}")
        if not addresses:
            raise httpcore.ConnectError(f"{host} does not resolve")
        return await self._backend.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("a caller-chosen URL never reaches a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def checked_client(mode: str, *, timeout: float = 10.0) -> httpx.AsyncClient:
    """An HTTP client for caller-chosen URLs (push webhooks): no redirects, no proxy
    from the environment, and every connection checked by ``url_problem``'s rules at
    connect time (``_CheckedBackend``)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx builds its httpcore pool without a way to pass a network backend: replace
    # it with one that has ours (tests/test_advertise.py proves the refusal)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        network_backend=_CheckedBackend(mode),
    )
    return httpx.AsyncClient(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
    )
