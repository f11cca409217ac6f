"""The advertised URL: candidates in order, the platform's verdict predicted, and
never a bind address or a container-id hostname (DESIGN §6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import runtime_adapter.advertise as advertise_module
from runtime_adapter import Settings
from runtime_adapter.advertise import NetworkFacts, choose_url, gather_facts

WS = "212851b5693d4e0f9a8b7c6d5e4f3a2b"
CONTAINER_ID = "212851b5693d"


def choose(facts: NetworkFacts, *, saas: bool = True, **settings: Any) -> Any:
    return choose_url(
        port=8000,
        workspace_id=WS,
        platform_url="https://platform.example",
        saas=saas,
        facts=facts,
        **settings,
    )


DOCKER = NetworkFacts(
    own_addresses=frozenset({"172.18.0.5"}),
    resolved={"platform.example": ["34.1.2.3"]},
    hosts_file_names=frozenset({CONTAINER_ID, "localhost"}),
    route_address="172.18.0.5",
)


def test_container_id_hostname_is_never_advertised_in_self_hosted_docker() -> None:
    chosen = choose(DOCKER, saas=False)
    assert CONTAINER_ID not in chosen.url
    assert chosen.url == "http://172.18.0.5:8000"
    assert (
        chosen.predicted_refusal == "172.18.0.5 is a private address, refused in self-hosted mode"
    )
    assert chosen.explain().splitlines() == [
        "advertised URL http://172.18.0.5:8000 (platform URL rules: self-hosted)",
        "  1. ADVERTISE_URL: skipped (not set)",
        "  2. ADVERTISE_HOST: skipped (not set)",
        "  3. POD_IP: skipped (not set)",
        "  4. network alias: skipped (ws-212851b5693d does not resolve to an address of this "
        "container)",
        "  5. route to the platform: http://172.18.0.5:8000 refused: 172.18.0.5 is a private "
        "address, refused in self-hosted mode",
        "  the platform is expected to refuse it: 172.18.0.5 is a private address, refused in "
        "self-hosted mode",
    ]


def test_container_id_given_as_advertise_host_is_refused_not_used() -> None:
    chosen = choose(DOCKER, saas=True, advertise_host=CONTAINER_ID)
    assert chosen.url == "http://172.18.0.5:8000"
    assert chosen.candidates[1].refusal == (
        f"{CONTAINER_ID} looks like a container id, which only this container resolves"
    )
    assert chosen.predicted_refusal is None  # saas accepts a private address


PUBLIC = NetworkFacts(
    own_addresses=frozenset({"10.0.0.7", "34.9.9.9"}),
    resolved={
        "agent.example.com": ["34.9.9.9"],
        f"ws-{WS[:12]}": ["10.0.0.7"],
        "platform.example": ["34.1.2.3"],
    },
    route_address="10.0.0.7",
)


@pytest.mark.parametrize(
    ("settings", "url", "source"),
    [
        ({"advertise_url": "https://agent.example.com/a2a"}, "https://agent.example.com/a2a", 0),
        ({"advertise_host": "agent.example.com"}, "http://agent.example.com:8000", 1),
        ({"pod_ip": "34.9.9.9"}, "http://34.9.9.9:8000", 2),
        ({}, f"http://ws-{WS[:12]}:8000", 3),
    ],
)
def test_each_candidate_source_wins_when_present(
    settings: dict[str, str], url: str, source: int
) -> None:
    chosen = choose(PUBLIC, saas=True, **settings)
    assert chosen.url == url
    assert chosen.candidates[source].refusal is None
    assert all(c.refusal for c in chosen.candidates[:source])


def test_route_wins_when_nothing_else_is_there() -> None:
    facts = NetworkFacts(own_addresses=frozenset({"34.9.9.9"}), route_address="34.9.9.9")
    assert choose(facts).url == "http://34.9.9.9:8000"


def test_alias_resolving_elsewhere_bind_address_and_hosts_only_names_are_refused() -> None:
    facts = NetworkFacts(
        own_addresses=frozenset({"34.9.9.9"}),
        resolved={f"ws-{WS[:12]}": ["34.7.7.7"], "myself": []},
        hosts_file_names=frozenset({"myself"}),
        route_address="34.9.9.9",
    )
    bind = choose(facts, advertise_host="0.0.0.0")
    assert bind.candidates[1].refusal == "0.0.0.0 is a bind address, not one anyone can reach"
    hosts = choose(facts, advertise_host="myself")
    assert hosts.candidates[1].refusal == "myself resolves only through this container's /etc/hosts"
    assert hosts.candidates[3].refusal == (
        f"ws-{WS[:12]} does not resolve to an address of this container"
    )
    assert hosts.url == "http://34.9.9.9:8000"


def test_loopback_platform_means_local_rules_and_loopback_is_fine() -> None:
    facts = NetworkFacts(own_addresses=frozenset({"127.0.0.1"}), route_address="127.0.0.1")
    chosen = choose_url(
        port=8000, workspace_id=WS, platform_url="http://127.0.0.1:9000", saas=False, facts=facts
    )
    assert (chosen.url, chosen.mode, chosen.predicted_refusal) == (
        "http://127.0.0.1:8000",
        "local",
        None,
    )


def test_loopback_is_refused_when_the_platform_is_elsewhere() -> None:
    facts = NetworkFacts(route_address="127.0.0.1")
    chosen = choose(facts, advertise_url="http://127.0.0.1:8000")
    assert chosen.candidates[0].refusal == "127.0.0.1 is a loopback address"


def test_gather_facts_on_this_machine(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n172.18.0.5 {CONTAINER_ID}  # docker\n")
    facts = gather_facts(
        platform_url="http://127.0.0.1:9000", names=[CONTAINER_ID, "localhost"], hosts_file=hosts
    )
    assert facts.route_address == "127.0.0.1"
    assert "127.0.0.1" in facts.own_addresses
    assert facts.hosts_file_names == frozenset({"localhost", CONTAINER_ID})
    assert facts.resolved[CONTAINER_ID] == []
    chosen = choose_url(
        port=8000,
        workspace_id=WS,
        platform_url="http://127.0.0.1:9000",
        saas=False,
        facts=facts,
        advertise_host=CONTAINER_ID,
    )
    assert chosen.url == "http://127.0.0.1:8000"


@pytest.mark.anyio
async def test_an_advertise_url_with_a_dns_name_is_resolved_and_wins_over_the_pod_ip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An operator's ingress name is judged by what it resolves to, like ADVERTISE_HOST."""
    public = {"ingress.example.com": ["93.184.216.34"]}
    monkeypatch.setattr(advertise_module, "_resolve", lambda host: public.get(host, []))
    for name, value in {
        "WORKSPACE_ID": "ws-1",
        "PLATFORM_URL": "https://platform.example.com",
        "ADVERTISE_URL": "https://ingress.example.com/ws-1",
        "POD_IP": "10.1.2.3",
        "MOLECULE_DEPLOY_MODE": "saas",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    chosen = await advertise_module.advertise(settings, 8000)
    assert chosen.url == "https://ingress.example.com/ws-1"
    assert chosen.predicted_refusal is None
