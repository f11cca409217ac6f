"""The agent card (A2A 1.0 shape, DESIGN §7), built from the workspace config.

The 1.0 fields parse strictly as a2a-sdk's ``AgentCard``; beside them the
card carries the three 0.3 connection fields (``url``, ``preferredTransport``,
``protocolVersion``) that 0.3 clients and the Molecule server read (it reaches
a workspace's ``/transcript`` through ``agent_card->>'url'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .volume import SkillConfig, WorkspaceConfig

__all__ = ["A2A_PROTOCOL_VERSION", "LEGACY_CARD_FIELDS", "build_card", "minimal_card"]

A2A_PROTOCOL_VERSION = "1.0"
A2A_LEGACY_VERSION = "0.3.0"
LEGACY_CARD_FIELDS = ("url", "preferredTransport", "protocolVersion")
_TEXT = ["text/plain"]


def _skill(skill: SkillConfig) -> dict[str, Any]:
    return {
        "id": skill.id,
        "name": skill.name or skill.id,
        "description": skill.description,
        "tags": list(skill.tags),
        "examples": list(skill.examples),
    }


def build_card(
    config: WorkspaceConfig,
    url: str,
    *,
    name: str | None = None,
    description: str | None = None,
    skills: Sequence[SkillConfig] | None = None,
    provider: dict[str, str] | None = None,
    default_name: str = "agent",
    streaming: bool = False,
    auth: str = "none",
) -> dict[str, Any]:
    """The card served at ``/.well-known/agent-card.json`` and sent to the platform.

    ``name``/``description``/``skills`` are the adapter's overrides; the
    config's values are used otherwise. ``streaming`` is the adapter's default,
    used when config ``a2a.streaming`` is not set.
    """
    shown = name or config.name or default_name
    said = description if description is not None else config.description
    listed = [_skill(s) for s in (skills if skills is not None else config.skills)]
    card: dict[str, Any] = {
        "name": shown,
        # A2A requires a description and at least one skill: a config without them still
        # gets a card clients accept (a2a-sdk warns about one without)
        "description": said or f"{shown}, an agent workspace",
        "version": config.version,
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": A2A_PROTOCOL_VERSION}
        ],
        "capabilities": {
            "streaming": streaming if config.a2a.streaming is None else config.a2a.streaming,
            "pushNotifications": config.a2a.push_notifications,
        },
        "defaultInputModes": list(_TEXT),
        "defaultOutputModes": list(_TEXT),
        "skills": listed or [dict(_DEFAULT_SKILL)],
        # the 0.3 connection fields, for 0.3 clients and the platform's transcript page
        "url": url,
        "preferredTransport": "JSONRPC",
        "protocolVersion": A2A_LEGACY_VERSION,
    }
    if auth in ("platform", "bearer"):
        # A2A 1.0: callers must present a bearer credential (A2A_AUTH, DESIGN §12)
        card["securitySchemes"] = {
            "bearer": {
                "httpAuthSecurityScheme": {
                    "scheme": "Bearer",
                    "description": "the platform's inbound secret"
                    if auth == "platform"
                    else "a token the workspace's operator issued",
                }
            }
        }
        card["securityRequirements"] = [{"schemes": {"bearer": {"list": []}}}]
    if provider:
        card["provider"] = {
            "organization": provider.get("organization", ""),
            "url": provider.get("url", ""),
        }
    return card


_DEFAULT_SKILL = {
    "id": "message",
    "name": "Answer messages",
    "description": "Answers the messages it is sent.",
    "tags": ["chat"],
    "examples": [],
}


def minimal_card(name: str, url: str, description: str = "") -> dict[str, Any]:
    """The card of a workspace that could not boot (no config to build from)."""
    return build_card(WorkspaceConfig(), url, name=name, description=description)
