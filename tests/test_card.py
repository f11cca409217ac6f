"""The agent card parses strictly as a2a-sdk's AgentCard (unknown fields refused)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from a2a.client.card_resolver import parse_agent_card
from a2a.types import AgentCard
from google.protobuf import json_format

from runtime_adapter.card import LEGACY_CARD_FIELDS, build_card, minimal_card
from runtime_adapter.volume import SkillConfig

from .helpers import config


def parse(card: dict[str, Any]) -> Any:
    """The strict 1.0 parse of the card without its 0.3 connection fields (§7)."""
    modern = {key: value for key, value in card.items() if key not in LEGACY_CARD_FIELDS}
    return json_format.ParseDict(modern, AgentCard())


def test_card_from_config_parses_strictly_as_a2a_agent_card() -> None:
    cfg = config(
        "name: Coder\ndescription: Writes code\nversion: 2.1.0\n"
        "a2a: {streaming: true}\nskills:\n  - review\n"
        "  - {id: fix, name: Fix bugs, tags: [code], examples: [fix the parser]}\n"
    )
    card = build_card(cfg, "http://10.0.0.7:8000", provider={"organization": "Acme"})
    parsed = parse(card)
    assert parsed.name == "Coder"
    assert parsed.supported_interfaces[0].url == "http://10.0.0.7:8000"
    assert parsed.supported_interfaces[0].protocol_binding == "JSONRPC"
    assert parsed.capabilities.streaming is True
    assert [s.id for s in parsed.skills] == ["review", "fix"]
    # the 0.3 fields beside: what 0.3 clients and the platform's transcript page read
    assert {key: card[key] for key in LEGACY_CARD_FIELDS} == {
        "url": "http://10.0.0.7:8000",
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3.0",
    }
    # a2a-sdk's own client parser accepts the whole card, the advertised URL first
    resolved = parse_agent_card(copy.deepcopy(card))
    assert resolved.supported_interfaces[0].url == "http://10.0.0.7:8000"
    assert card["skills"][1] == {
        "id": "fix",
        "name": "Fix bugs",
        "description": "",
        "tags": ["code"],
        "examples": ["fix the parser"],
    }


def test_adapter_overrides_and_minimal_card() -> None:
    card = build_card(
        config("name: x\n"),
        "http://h:1",
        name="Echo",
        description="echoes",
        skills=[SkillConfig(id="echo")],
    )
    assert (card["name"], card["description"], card["skills"][0]["name"]) == (
        "Echo",
        "echoes",
        "echo",
    )
    parse(card)
    parse(minimal_card("ws-1", "http://h:1", "failed to boot"))


def test_the_strict_parse_is_strict() -> None:
    """The 1.0 check refuses what the protobuf does not define (so the test above could fail)."""
    card = build_card(config(""), "http://h:1")
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(card, AgentCard())  # the 0.3 keys are unknown to 1.0
    with pytest.raises(json_format.ParseError):
        parse({**card, "invented": 1})
