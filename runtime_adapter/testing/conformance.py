"""A conformance check a template author runs on their own adapter.

``await check_adapter(MyAdapter)`` drives the adapter the way the lifecycle
does (start, routes, card, /health, stop, with the same time limits) and
raises one ``AssertionError`` listing every problem found.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
from starlette.routing import BaseRoute, Route

from ..adapter import AdapterContext, BaseAdapter
from ..card import LEGACY_CARD_FIELDS, build_card
from ..envplan import EnvPlan
from ..health import Health
from ..server import ServerState, build_app
from ..settings import Settings
from ..volume import WorkspaceConfig

__all__ = ["check_adapter"]

_RESERVED = ("/health", "/.well-known/agent-card.json")


def _no_llm_plan() -> EnvPlan:
    return EnvPlan(provider=None, model=None, arm=None, assignments=(), actions={})


async def check_adapter(
    adapter_class: type[BaseAdapter],
    config: WorkspaceConfig | None = None,
    *,
    plan: EnvPlan | None = None,
) -> None:
    """Check ``adapter_class`` against the BaseAdapter contract; AssertionError lists
    every problem. Without ``plan`` the adapter runs with no LLM provider."""
    problems: list[str] = []
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, BaseAdapter)):
        raise AssertionError(f"{adapter_class!r} is not a runtime_adapter.BaseAdapter subclass")
    if not adapter_class.name or not isinstance(adapter_class.name, str):
        problems.append("name must be a non-empty string (it names the runtime)")
    try:
        adapter = adapter_class()
    except Exception as error:
        raise AssertionError(f"{adapter_class.__name__}() failed: {error!r}") from error
    config = config or WorkspaceConfig(name=f"{adapter_class.name} conformance")
    health = Health()
    context = AdapterContext(
        settings=Settings.model_construct(workspace_id="conformance", platform_url=None),
        config=config,
        plan=plan or _no_llm_plan(),
        health=health,
    )
    card: dict[str, Any] = {}
    try:
        card = build_card(
            config,
            "http://127.0.0.1:8000",
            name=adapter.display_name or None,
            description=adapter.description,
            skills=list(adapter.skills(config)),
            default_name=adapter.name,
        )
    except Exception as error:
        problems.append(f"building the agent card failed: {error!r}")
    try:
        from a2a.types import AgentCard
        from google.protobuf import json_format

        modern = {k: v for k, v in card.items() if k not in LEGACY_CARD_FIELDS}
        json_format.ParseDict(modern, AgentCard())  # strict: unknown fields refused
    except ImportError:
        pass  # a2a-sdk not installed: the strict card parse is skipped
    except Exception as error:
        problems.append(f"the agent card does not parse as a2a AgentCard: {error}")

    try:
        with anyio.fail_after(adapter.start_timeout):
            await adapter.start(context)
    except TimeoutError:
        problems.append(f"start() took longer than start_timeout ({adapter.start_timeout} s)")
    except Exception as error:
        problems.append(f"start() raised {error!r}")
    routes: list[BaseRoute] = []
    try:
        routes = list(adapter.routes(context))
    except Exception as error:
        problems.append(f"routes() raised {error!r}")
    for route in routes:
        if not isinstance(route, BaseRoute):
            problems.append(f"routes() returned {route!r}, not a Starlette route")
        elif isinstance(route, Route) and route.path in _RESERVED:
            problems.append(f"route {route.path} shadows the runtime's own endpoint")

    state = ServerState(health, lambda: card, booted=True)
    state.set_routes([r for r in routes if isinstance(r, BaseRoute)])
    transport = httpx.ASGITransport(app=build_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://runtime.test") as http:
        answer = await http.get("/health")
        if answer.status_code != 200:
            problems.append(f"/health answered {answer.status_code} after a clean start")
        served = await http.get("/.well-known/agent-card.json")
        if served.json() != card:
            problems.append("the served agent card differs from the built one")

    try:
        with anyio.fail_after(adapter.stop_timeout):
            await adapter.stop()
    except TimeoutError:
        problems.append(f"stop() took longer than stop_timeout ({adapter.stop_timeout} s)")
    except Exception as error:
        problems.append(f"stop() raised {error!r}")
    if problems:
        raise AssertionError(
            f"{adapter_class.__name__} does not conform:\n- " + "\n- ".join(problems)
        )
