"""The agent card parses strictly as a2a-sdk's AgentCard (unknown fields refused)."""

from __future__ import annotations

from typing import Any

import pytest
from a2a.types import AgentCard
from google.protobuf import json_format

from runtime_adapter.card import build_card, minimal_card
from runtime_adapter.volume import SkillConfig

from .helpers import config


def parse(card: dict[str, Any]) -> Any:
    return json_format.ParseDict(card, AgentCard())


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
    assert "url" not in card
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


def test_a_top_level_url_would_be_refused_by_the_strict_parse() -> None:
    card = build_card(config(""), "http://h:1")
    with pytest.raises(json_format.ParseError):
        parse({**card, "url": "http://h:1"})
